"""EXO — Efficient Exact Optimization, pairwise form (Ji et al., 2024,
https://arxiv.org/abs/2402.00856)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from fairseq2.utils.validation import ValidationResult
from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class ExoConfig(BetaConfig):
    epsilon: float = 1e-3
    """ε: the target distribution puts 1−ε on the chosen response, ε on the rejected."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if not 0.0 < self.epsilon < 0.5:
            result.add_error(f"`epsilon` must be in (0, 0.5), but is {self.epsilon}.")
        return result


@register_criterion("exo_pair", ExoConfig)
class ExoPairCriterion(LogRatioCriterion):
    """EXO (pair): reverse KL from the policy's pair preference to a near-one-hot target.

    Intuition: DPO minimises a forward KL, which is mean-seeking; EXO minimises
    the reverse KL, which is mode-seeking, and so optimises the RLHF objective
    exactly in the limit instead of approximately.

    With ρ summed over response tokens, h = ρc − ρr and p = σ(β·h)::

        loss = p·(log p − log(1−ε)) + (1−p)·(log(1−p) − log ε)
        rewards: β·ρc, β·ρr

    The loss is a KL divergence: ≥ 0, and 0 only when p = 1 − ε.
    """

    display_name = "EXO Loss"

    config: ExoConfig

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        eps = self.config.epsilon
        z = self.config.beta * self.margins(logps)
        return z.sigmoid() * (logsigmoid(z) - math.log(1.0 - eps)) + (-z).sigmoid() * (
            logsigmoid(-z) - math.log(eps)
        )
