"""SPPO — Self-Play Preference Optimization, hard-label form (Wu et al., 2024,
https://arxiv.org/abs/2405.00675)."""

from __future__ import annotations

from torch import Tensor

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("sppo_hard", BetaConfig)
class SppoHardCriterion(LogRatioCriterion):
    """SPPO (hard): push each log-ratio to its own target, +1/(2β) or −1/(2β).

    Intuition: SPPO approximates the Nash equilibrium of a two-player preference
    game; with hard labels (the winner's win rate taken as 1, the loser's as 0)
    its square loss sets the chosen log-ratio to +1/(2β) and the rejected one to
    −1/(2β) independently, so the chosen likelihood is raised, not just the gap.

    With ρ summed over response tokens::

        loss = (ρc − 1/(2β))² + (ρr + 1/(2β))²
        rewards: β·ρc, β·ρr
    """

    display_name = "SPPO Loss"

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        chosen, rejected = self.ratios(logps)
        target = 0.5 / self.config.beta
        return (chosen - target) ** 2 + (rejected + target) ** 2
