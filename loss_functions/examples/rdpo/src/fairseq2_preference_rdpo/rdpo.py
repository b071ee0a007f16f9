"""R-DPO — length-regularised DPO (Park et al., 2024, https://arxiv.org/abs/2403.19159)."""

from __future__ import annotations

from dataclasses import dataclass

from fairseq2.utils.validation import ValidationResult
from torch import Tensor

from fairseq2_preference.criteria import (
    BetaConfig,
    LogRatioCriterion,
    SequenceLogps,
    logsigmoid_loss,
    register_criterion,
)


@dataclass(kw_only=True)
class RdpoConfig(BetaConfig):
    alpha: float = 0.01
    """α: penalty per token of length difference (the paper sweeps 0.005 to 0.05)."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.alpha < 0.0:
            result.add_error(f"`alpha` must be >= 0, but is {self.alpha}.")
        return result


@register_criterion("rdpo", RdpoConfig)
class RdpoCriterion(LogRatioCriterion):
    """R-DPO: DPO whose margin is charged for the chosen response being longer.

    Intuition: preference data often favour longer answers, and DPO learns that
    shortcut (verbosity). Subtracting α·(|yc| − |yr|) from the margin makes a
    pair whose chosen response is longer count as less separated, so length
    alone no longer lowers the loss.

    With ρ summed over response tokens, h = ρc − ρr and |y| response lengths::

        loss = −logσ(β·h − α·(|yc| − |yr|))
        rewards: β·ρc, β·ρr
        metric rdpo/length_gap: |yc| − |yr|
    """

    display_name = "R-DPO Loss"

    config: RdpoConfig

    extra_metric_names = ("length_gap",)

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        gap = logps.chosen_lengths - logps.rejected_lengths
        return logsigmoid_loss(self.config.beta * self.margins(logps) - self.config.alpha * gap)

    def extra_metrics(self, logps: SequenceLogps) -> dict[str, Tensor]:
        return {"length_gap": logps.chosen_lengths - logps.rejected_lengths}
