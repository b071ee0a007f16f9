"""SimPO — Simple Preference Optimization (Meng et al., 2024, https://arxiv.org/abs/2405.14734)."""

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
class SimpoConfig(SmoothedBetaConfig):
    beta: float = 2.0
    """β: scale of the length-normalised reward (the paper uses 2.0 to 2.5)."""

    gamma: float = 1.0
    """γ: target reward margin; the paper suggests γ/β ≈ 0.5."""


@register_criterion("simpo", SimpoConfig)
class SimpoCriterion(PolicyRewardCriterion):
    """SimPO: the average log-likelihood is the reward; no reference model.

    Intuition: the quantity generation actually ranks responses by is the
    per-token average log-probability, so SimPO uses it directly as the reward
    (no reference forward, no length bias) and asks the chosen reward to beat
    the rejected one by a margin γ.

    With per-token averaged policy log-probabilities ac, ar::

        z = β·(ac − ar) − γ
        loss = −(1−ε)·logσ(z) − ε·logσ(−z)
        rewards: β·ac, β·ar
        metric simpo/logits: z
    """

    display_name = "SimPO Loss"

    config: SimpoConfig

    extra_metric_names = ("logits",)

    def _logits(self, logps: SequenceLogps) -> Tensor:
        return self.config.beta * (logps.chosen_mean - logps.rejected_mean) - self.config.gamma

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return logsigmoid_loss(self._logits(logps), self.config.label_smoothing)

    def reward_scale(self) -> float:
        return self.config.beta

    def extra_metrics(self, logps: SequenceLogps) -> dict[str, Tensor]:
        return {"logits": self._logits(logps)}
