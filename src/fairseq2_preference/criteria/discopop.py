"""DiscoPOP — a discovered preference loss (Lu et al., 2024, https://arxiv.org/abs/2406.08414)."""

from __future__ import annotations

from dataclasses import dataclass

from fairseq2.utils.validation import ValidationResult
from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class DiscoPopConfig(BetaConfig):
    tau: float = 0.05
    """τ: temperature of the sigmoid that blends the two components."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if not 0.0 < self.tau < 1.0:
            result.add_error(f"`tau` must be in (0, 1), but is {self.tau}.")
        return result


@register_criterion("discopop", DiscoPopConfig)
class DiscoPopCriterion(LogRatioCriterion):
    """DiscoPOP (log-ratio modulated loss): logistic and exponential losses, blended.

    Intuition: found by an LLM-driven search over objectives; it behaves like
    DPO's logistic loss for negative margins and like an exponential loss for
    positive ones, switching sharply (temperature τ) around a zero margin.

    With ρ summed over response tokens, z = β·(ρc − ρr) and m = σ(z/τ)::

        loss = (1 − m)·(−logσ(z)) + m·exp(−z)
        rewards: β·ρc, β·ρr
        metric discopop/modulation: m

    ``m·exp(−z)`` is computed as exp(logσ(z/τ) − z), which stays finite where a
    direct product would give ∞·0 for very negative z.

    Unlike the other losses here it is not monotone in the margin: its slope at
    z = 0 is (1 − ln 2)/(4τ) − 3/4, positive for τ < 0.102 (the default 0.05
    included), so near policy = reference a gradient step can shrink a margin.
    """

    display_name = "DiscoPOP Loss"

    config: DiscoPopConfig

    extra_metric_names = ("modulation",)

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        z = self.config.beta * self.margins(logps)
        scaled = z / self.config.tau
        logistic = -logsigmoid(z) * (-scaled).sigmoid()
        exponential = (logsigmoid(scaled) - z).exp()
        return logistic + exponential

    def extra_metrics(self, logps: SequenceLogps) -> dict[str, Tensor]:
        z = self.config.beta * self.margins(logps)
        return {"modulation": (z / self.config.tau).sigmoid()}
