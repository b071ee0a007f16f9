"""IPO — Identity Preference Optimisation (Azar et al., 2023, https://arxiv.org/abs/2310.12036)."""

from __future__ import annotations

from torch import Tensor

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("ipo", BetaConfig)
class IpoCriterion(LogRatioCriterion):
    """IPO: regress the log-ratio margin onto a fixed target instead of pushing it to ∞.

    Intuition: with deterministic or near-deterministic preferences DPO's
    logistic loss keeps rewarding larger margins, so the policy can drift far
    from the reference whatever β is; IPO's squared loss stops at the margin
    1/(2β), so β (the paper's τ) really regularises.

    With per-token averaged ratios ρ = (log πθ − log πref)/|y|::

        loss = (ρc − ρr − 1/(2β))²
        rewards: β·ρc, β·ρr (averaged, as in the loss)

    Averaging follows the IPO implementations in TRL and the IPO authors' note
    that summed log-probs make the target scale with length.
    """

    display_name = "IPO Loss"

    def length_normalized(self) -> bool:
        return True

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return (self.margins(logps) - 1.0 / (2.0 * self.config.beta)) ** 2
