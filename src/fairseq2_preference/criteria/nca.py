"""NCA — Noise Contrastive Alignment, pairwise form (Chen et al., 2024,
https://arxiv.org/abs/2402.05369)."""

from __future__ import annotations

from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("nca_pair", BetaConfig)
class NcaPairCriterion(LogRatioCriterion):
    """NCA (pair): classify each response's absolute reward, not just their difference.

    Intuition: DPO only fixes the reward *gap*, so both likelihoods can fall
    together (the chosen one just falls less). NCA scores each response against
    the reference on its own, which keeps the chosen likelihood from decreasing.

    With ρ summed over response tokens and rewards rc = β·ρc, rr = β·ρr::

        loss = −logσ(rc) − ½·logσ(−rc) − ½·logσ(−rr)
        rewards: rc, rr
    """

    display_name = "NCA Loss"

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        chosen = self.chosen_rewards(logps)
        rejected = self.rejected_rewards(logps)
        return -logsigmoid(chosen) - 0.5 * logsigmoid(-chosen) - 0.5 * logsigmoid(-rejected)
