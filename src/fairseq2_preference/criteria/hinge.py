"""Hinge loss on the log-ratio margin, as in SLiC (Zhao et al., 2023,
https://arxiv.org/abs/2305.10425) and RSO (Liu et al., 2023, https://arxiv.org/abs/2309.06657)."""

from __future__ import annotations

from torch import Tensor
from torch.nn.functional import relu

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("hinge", BetaConfig)
class HingeCriterion(LogRatioCriterion):
    """Hinge: a margin classifier on the reference-normalised margin.

    Intuition: like DPO it ranks chosen above rejected, but pairs already
    separated by a margin of 1/β contribute nothing, so training concentrates
    on the pairs still ranked wrongly or narrowly.

    With ρ summed over response tokens and h = ρc − ρr::

        loss = max(0, 1 − β·h)
        rewards: β·ρc, β·ρr
    """

    display_name = "Hinge Loss"

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return relu(1.0 - self.config.beta * self.margins(logps))
