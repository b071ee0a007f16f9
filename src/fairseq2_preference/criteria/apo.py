"""APO — Anchored Preference Optimization (D'Oosterlinck et al., 2024,
https://arxiv.org/abs/2408.06266): ``apo_zero`` and ``apo_down``."""

from __future__ import annotations

from torch import Tensor

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("apo_zero", BetaConfig)
class ApoZeroCriterion(LogRatioCriterion):
    """APO-zero: raise the chosen likelihood and lower the rejected one, each anchored.

    Intuition: DPO says nothing about the direction of each likelihood; APO
    fixes it. Use ``apo_zero`` when the chosen responses are better than what
    the model produces now (e.g. distilled from a stronger model).

    With ρ summed over response tokens::

        loss = (1 − σ(β·ρc)) + σ(β·ρr)
        rewards: β·ρc, β·ρr
    """

    display_name = "APO-zero Loss"

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        chosen, rejected = self.ratios(logps)
        beta = self.config.beta
        return (1.0 - (beta * chosen).sigmoid()) + (beta * rejected).sigmoid()


@register_criterion("apo_down", BetaConfig)
class ApoDownCriterion(LogRatioCriterion):
    """APO-down: lower both likelihoods, the rejected one more.

    Intuition: use ``apo_down`` when the model is already better than the chosen
    responses: the chosen likelihood is pushed down, while the margin between
    chosen and rejected still grows.

    With ρ summed over response tokens::

        loss = σ(β·ρc) + (1 − σ(β·(ρc − ρr)))
        rewards: β·ρc, β·ρr
    """

    display_name = "APO-down Loss"

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        chosen, rejected = self.ratios(logps)
        beta = self.config.beta
        return (beta * chosen).sigmoid() + (1.0 - (beta * (chosen - rejected)).sigmoid())
