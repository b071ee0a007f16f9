"""ORPO — Odds Ratio Preference Optimization (Hong et al., 2024, https://arxiv.org/abs/2403.07691)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from fairseq2.utils.validation import ValidationResult
from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import CriterionConfig, PolicyRewardCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class OrpoConfig(CriterionConfig):
    orpo_lambda: float = 0.1
    """λ: weight of the odds-ratio term relative to the NLL (the paper uses 0.1 to 0.25)."""

    nll_scale: float = 1.0
    """Weight of the SFT NLL on the chosen responses (part of ORPO)."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.orpo_lambda <= 0.0:
            result.add_error(f"`orpo_lambda` must be > 0, but is {self.orpo_lambda}.")
        return result


def log1mexp(x: Tensor) -> Tensor:
    """log(1 − eˣ) for x < 0, accurate for x near 0 and for x ≪ 0 (Mächler, 2012).

    Each branch only sees inputs from its own range, so the unused branch cannot
    put an inf or NaN into the gradient through ``torch.where``.
    """
    near_zero = x > -math.log(2.0)
    near = torch.log(-torch.expm1(torch.where(near_zero, x, -1.0)))
    far = torch.log1p(-torch.exp(torch.where(near_zero, -1.0, x)))
    return torch.where(near_zero, near, far)


def below_zero(x: Tensor) -> Tensor:
    """``x`` capped at −ε (ε = float32's epsilon) in value, with the gradient of ``x``.

    An averaged float32 log-probability reaches exactly 0 when every token is
    memorised (log-softmax rounds p > 1 − 6e-8 to 0); log(1 − eˣ) is then −∞, the
    loss of a rejected response infinite and the gradient of a chosen one NaN.
    Above −ε a log-probability is indistinguishable from 0 in float32 anyway, so
    the odds are evaluated at −ε; the straight-through gradient keeps pushing a
    memorised rejected response down instead of silently dropping it.
    """
    eps = torch.finfo(torch.float32).eps
    return x + (x.clamp(max=-eps) - x).detach()


@register_criterion("orpo", OrpoConfig)
class OrpoCriterion(PolicyRewardCriterion):
    """ORPO: SFT plus a penalty on the odds of the rejected response; no reference.

    Intuition: SFT alone also raises the likelihood of rejected-style responses;
    contrasting the *odds* of chosen and rejected during SFT suppresses them,
    in one stage and without a reference model.

    With per-token averaged policy log-probabilities ac, ar (so that odds are
    odds of a token), log odds(y) = a − log(1 − eᵃ)::

        log_odds = (ac − ar) − (log(1 − e^ac) − log(1 − e^ar)),  ac, ar capped at −ε
        loss = −λ·logσ(log_odds)   (+ NLL, nll_scale 1)
        rewards: λ·ac, λ·ar
        metric orpo/log_odds: log_odds
    """

    display_name = "ORPO Loss"

    config: OrpoConfig

    extra_metric_names = ("log_odds",)

    def _log_odds(self, logps: SequenceLogps) -> Tensor:
        chosen, rejected = below_zero(logps.chosen_mean), below_zero(logps.rejected_mean)
        return (chosen - rejected) - (log1mexp(chosen) - log1mexp(rejected))

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return -self.config.orpo_lambda * logsigmoid(self._log_odds(logps))

    def reward_scale(self) -> float:
        return self.config.orpo_lambda

    def extra_metrics(self, logps: SequenceLogps) -> dict[str, Tensor]:
        return {"log_odds": self._log_odds(logps)}
