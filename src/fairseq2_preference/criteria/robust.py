"""Robust DPO — rDPO (Chowdhury et al., 2024, https://arxiv.org/abs/2403.00409)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import LogRatioCriterion, SequenceLogps, SmoothedBetaConfig
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class RobustConfig(SmoothedBetaConfig):
    label_smoothing: float = 0.1
    """ε: the rate at which preference labels are assumed flipped (here 0.1 by default)."""


@register_criterion("robust", RobustConfig)
class RobustCriterion(LogRatioCriterion):
    """rDPO: an unbiased estimate of the DPO loss under label noise of rate ε.

    Intuition: cDPO (label smoothing) only shrinks the target; rDPO de-biases
    the loss itself, so that in expectation over flipped labels it equals the
    clean DPO loss, which makes the learned policy robust to noisy preferences.

    With ρ summed over response tokens and h = ρc − ρr::

        loss = (−(1−ε)·logσ(β·h) + ε·logσ(−β·h)) / (1 − 2ε)
        rewards: β·ρc, β·ρr

    Unlike DPO's, this loss can be negative (the ε term rewards confident pairs).
    """

    display_name = "rDPO Loss"

    config: RobustConfig

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        eps = self.config.label_smoothing
        z = self.config.beta * self.margins(logps)
        return (-(1.0 - eps) * logsigmoid(z) + eps * logsigmoid(-z)) / (1.0 - 2.0 * eps)
