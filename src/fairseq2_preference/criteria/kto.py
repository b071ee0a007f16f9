"""KTO — Kahneman-Tversky Optimization, on unpaired desirable/undesirable completions.

Ethayarajh et al., 2024, https://arxiv.org/abs/2402.01306 (eq. 7); the reference
point and weights as in TRL 1.16's ``KTOTrainer`` (``loss_type="kto"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fairseq2.utils.validation import ValidationResult
from torch import Tensor
from typing_extensions import override

from fairseq2_preference.criteria.base import BetaConfig
from fairseq2_preference.criteria.registry import register_criterion
from fairseq2_preference.criteria.unpaired import UnpairedCriterion, UnpairedLogps


@dataclass(kw_only=True)
class KtoConfig(BetaConfig):
    desirable_weight: float = 1.0
    """λ_D, the weight of a desirable example's loss."""

    undesirable_weight: float = 1.0
    """λ_U, the weight of an undesirable example's loss. With imbalanced data keep
    λ_D·n_D / (λ_U·n_U) between 1 and 4/3 (the paper's advice)."""

    @override
    def validate(self) -> ValidationResult:
        result = super().validate()
        for name in ("desirable_weight", "undesirable_weight"):
            if getattr(self, name) <= 0:
                result.add_error(f"`{name}` must be > 0.")
        return result


@register_criterion("kto", KtoConfig)
class KtoCriterion(UnpairedCriterion):
    """KTO: a prospect-theory value of each completion's reward against a reference point.

    Intuition: humans judge outcomes as gains or losses relative to a reference
    point, and saturate; KTO maximises such a utility of the implicit reward
    β·ρ, ρ = log πθ(y|x) − log πref(y|x), using only whether y is desirable. The
    reference point z₀ is the policy's KL from the reference, estimated on
    mismatched (prompt, completion) pairs of the step, clamped at 0, with no
    gradient::

        desirable:    loss = λ_D · (1 − σ(β·(ρ − z₀)))
        undesirable:  loss = λ_U · (1 − σ(β·(z₀ − ρ)))
        rewards: β·ρ

    At initialisation (policy = reference, z₀ = 0) every loss is λ/2.
    """

    display_name = "KTO Loss"

    config: KtoConfig

    def example_losses(self, logps: UnpairedLogps) -> Tensor:
        beta, config = self.config.beta, self.config
        ratio, kl = logps.ratio, logps.kl
        desirable = 1 - torch.sigmoid(beta * (ratio - kl))
        undesirable = 1 - torch.sigmoid(beta * (kl - ratio))
        return torch.where(
            logps.desirable,
            config.desirable_weight * desirable,
            config.undesirable_weight * undesirable,
        )
