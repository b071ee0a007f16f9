"""CPO — Contrastive Preference Optimization (Xu et al., 2024, https://arxiv.org/abs/2401.08417)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from fairseq2_preference.criteria.base import (
    PolicyRewardCriterion,
    SequenceLogps,
    SmoothedBetaConfig,
    logsigmoid_loss,
)
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class CpoConfig(SmoothedBetaConfig):
    nll_scale: float = 1.0
    """Weight of the behaviour-cloning NLL on the chosen responses (part of CPO)."""


@register_criterion("cpo", CpoConfig)
class CpoCriterion(PolicyRewardCriterion):
    """CPO: DPO with a uniform reference, plus an NLL term that anchors the policy.

    Intuition: the reference model of DPO costs memory and compute; CPO shows
    that dropping it (a uniform prior) works when a behaviour-cloning NLL on the
    chosen responses keeps the policy close to the preferred data instead.

    With summed policy log-probabilities sc, sr (no reference)::

        loss = −(1−ε)·logσ(β·(sc − sr)) − ε·logσ(−β·(sc − sr))   (+ NLL, nll_scale 1)
        rewards: β·sc, β·sr
    """

    display_name = "CPO Loss"

    config: CpoConfig

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        margin = self.config.beta * (logps.chosen - logps.rejected)
        return logsigmoid_loss(margin, self.config.label_smoothing)

    def reward_scale(self) -> float:
        return self.config.beta

    def length_normalized(self) -> bool:
        return False
