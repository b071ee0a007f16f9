"""The criterion interface: what every preference loss receives and returns.

A criterion sees one number per sequence, never tokens: the train unit runs the
model(s), reduces token log-probabilities to per-sequence sums in float32 and
hands them over as :class:`SequenceLogps`. That keeps each loss a few lines of
tensor algebra that can be unit-tested against an independent formula, and lets
a user add a loss without touching the model, the data or the trainer.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import ClassVar

from fairseq2.utils.validation import ValidationResult
from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.errors import PreferenceConfigError


@dataclass(frozen=True)
class SequenceLogps:
    """Per-pair sequence log-probabilities, all 1-D float32 tensors of length N.

    ``chosen`` and ``rejected`` are policy log-probabilities **summed** over the
    response tokens only (prompt and padding masked out). ``ref_chosen`` and
    ``ref_rejected`` are the same sums under the frozen reference model, or
    ``None`` when the criterion needs no reference.
    """

    chosen: Tensor
    rejected: Tensor
    chosen_lengths: Tensor
    """Number of response tokens of each chosen sequence (>= 1)."""
    rejected_lengths: Tensor
    """Number of response tokens of each rejected sequence (>= 1)."""
    ref_chosen: Tensor | None = None
    ref_rejected: Tensor | None = None
    extras: Mapping[str, Tensor] = field(default_factory=dict)
    """Per-pair numbers from the data, ``[N]`` float32, for datasets whose row
    schema declares them (e.g. ``{"weight": ...}``); empty otherwise."""

    @property
    def num_pairs(self) -> int:
        return int(self.chosen.numel())

    @property
    def chosen_mean(self) -> Tensor:
        """Policy log-probabilities averaged over response tokens."""
        return self.chosen / self.chosen_lengths

    @property
    def rejected_mean(self) -> Tensor:
        return self.rejected / self.rejected_lengths

    def chosen_ratio(self, length_normalized: bool = False) -> Tensor:
        """ρc = log πθ(yc|x) − log πref(yc|x), summed or per-token averaged."""
        ratio = self.chosen - self._ref("ref_chosen", self.ref_chosen)
        return ratio / self.chosen_lengths if length_normalized else ratio

    def rejected_ratio(self, length_normalized: bool = False) -> Tensor:
        """ρr = log πθ(yr|x) − log πref(yr|x), summed or per-token averaged."""
        ratio = self.rejected - self._ref("ref_rejected", self.ref_rejected)
        return ratio / self.rejected_lengths if length_normalized else ratio

    def _ref(self, name: str, value: Tensor | None) -> Tensor:
        if value is None:
            raise ValueError(
                f"`{name}` is None: this criterion needs reference log-probabilities. "
                "Configure `reference_model` in the recipe config."
            )
        return value


@dataclass(kw_only=True)
class CriterionConfig:
    """Fields every criterion config has; subclass it to add hyper-parameters."""

    nll_scale: float = 0.0
    """Weight of the NLL of the chosen responses, added by the train unit: each
    pair's token-mean NLL, summed over pairs (RPO's regularisation; 0 disables
    it), or for an all-NLL criterion (``sft``) the global token mean."""

    def validate(self) -> ValidationResult:
        result = ValidationResult()
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                result.add_error(f"`{item.name}` must be a finite number, but is {value}.")
        if self.nll_scale < 0.0:
            result.add_error(f"`nll_scale` must be >= 0, but is {self.nll_scale}.")
        return result


@dataclass(kw_only=True)
class BetaConfig(CriterionConfig):
    """A criterion config with a positive temperature β."""

    beta: float = 0.1
    """β: scale of the implicit reward (for reference-based criteria, the strength
    of the KL constraint to the reference; smaller lets the policy drift further)."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.beta <= 0.0:
            result.add_error(f"`beta` must be > 0, but is {self.beta}.")
        return result


@dataclass(kw_only=True)
class SmoothedBetaConfig(BetaConfig):
    """A β config with label smoothing, for the Bradley–Terry style losses."""

    label_smoothing: float = 0.0
    """ε: the assumed probability that a preference label is flipped (cDPO); 0 trusts
    every label."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if not 0.0 <= self.label_smoothing < 0.5:
            result.add_error(
                f"`label_smoothing` must be in [0, 0.5), but is {self.label_smoothing}."
            )
        return result


class PreferenceCriterion(ABC):
    """Base class of a preference loss.

    Subclass it, decorate the subclass with
    :func:`~fairseq2_preference.criteria.register_criterion`, and name it in the
    recipe config (``criterion: {name: ..., config: {...}}``).

    Normalisation: :meth:`pair_losses` returns one loss per pair, *not* averaged.
    The unit sums them and fairseq2's trainer divides the gradients by the number
    of pairs over all ranks and accumulated micro-batches, so every pair weighs
    the same however the data is split. The optional NLL term is added by the
    unit, weighted by ``config.nll_scale``.
    """

    name: ClassVar[str] = ""
    """Set by :func:`register_criterion`."""

    display_name: str | None = None
    """How the criterion's loss metric is labelled in logs (default: the name)."""

    needs_reference: bool = True
    """Whether :meth:`pair_losses` reads ``ref_chosen`` / ``ref_rejected``. The
    recipe refuses to start a criterion that needs one without a reference model,
    and never loads a reference model for one that does not."""

    has_pair_loss: bool = True
    """``False`` for criteria whose whole loss is the unit's NLL term (SFT): their
    pair loss is not logged."""

    extra_metric_names: tuple[str, ...] = ()
    """Keys of :meth:`extra_metrics`, logged as ``<name>/<key>``."""

    def __init__(self, config: CriterionConfig) -> None:
        check_criterion_config(self.name or type(self).__name__, config)
        self.config = config

    @property
    def nll_scale(self) -> float:
        return self.config.nll_scale

    @property
    def reports_rewards(self) -> bool:
        """Whether :meth:`chosen_rewards` and :meth:`rejected_rewards` return values."""
        return type(self).chosen_rewards is not PreferenceCriterion.chosen_rewards

    @abstractmethod
    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        """Return the per-pair loss, shape ``[N]``, without any NLL term."""

    def chosen_rewards(self, logps: SequenceLogps) -> Tensor | None:
        """The implicit reward of each chosen response, for metrics (or None)."""
        return None

    def rejected_rewards(self, logps: SequenceLogps) -> Tensor | None:
        """The implicit reward of each rejected response, for metrics (or None)."""
        return None

    def extra_metrics(self, logps: SequenceLogps) -> Mapping[str, Tensor]:
        """Per-pair values of ``extra_metric_names``, logged as ``<name>/<key>`` means."""
        return {}


class LogRatioCriterion(PreferenceCriterion):
    """Base of the reference-based criteria: functions of ρ = log πθ − log πref.

    The implicit reward of a response is β·ρ (DPO's reparameterisation); ρ is
    summed over response tokens unless :meth:`length_normalized` says otherwise.
    """

    config: BetaConfig

    def length_normalized(self) -> bool:
        """Whether ρ is averaged over response tokens instead of summed."""
        return False

    def ratios(self, logps: SequenceLogps) -> tuple[Tensor, Tensor]:
        """(ρc, ρr), per :meth:`length_normalized`."""
        norm = self.length_normalized()
        return logps.chosen_ratio(norm), logps.rejected_ratio(norm)

    def margins(self, logps: SequenceLogps) -> Tensor:
        """h = ρc − ρr."""
        chosen, rejected = self.ratios(logps)
        return chosen - rejected

    def chosen_rewards(self, logps: SequenceLogps) -> Tensor:
        return self.config.beta * self.ratios(logps)[0]

    def rejected_rewards(self, logps: SequenceLogps) -> Tensor:
        return self.config.beta * self.ratios(logps)[1]


class PolicyRewardCriterion(PreferenceCriterion):
    """Base of the reference-free criteria: the implicit reward of a response is a
    scaled policy log-probability, summed or per-token averaged."""

    needs_reference = False

    @abstractmethod
    def reward_scale(self) -> float:
        """The factor of the reward (β for SimPO and CPO, λ for ORPO)."""

    def length_normalized(self) -> bool:
        """Whether the reward uses per-token averaged log-probabilities."""
        return True

    def chosen_rewards(self, logps: SequenceLogps) -> Tensor:
        chosen = logps.chosen_mean if self.length_normalized() else logps.chosen
        return self.reward_scale() * chosen

    def rejected_rewards(self, logps: SequenceLogps) -> Tensor:
        rejected = logps.rejected_mean if self.length_normalized() else logps.rejected
        return self.reward_scale() * rejected


def check_criterion_config(name: str, config: CriterionConfig) -> None:
    """Refuse an invalid config wherever a criterion is built, not only in a recipe
    config that fairseq2 validates: ``beta: -1`` or rDPO's ε = 0.5 would train on
    a loss that is wrong or infinite."""
    result = config.validate()
    if result.has_error():
        raise PreferenceConfigError(
            f"`criterion.config` for '{name}' is not valid: {result} "
            "Fix the value in the `criterion.config` section of the recipe config."
        )


def logsigmoid_loss(logits: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """−(1−ε)·logσ(z) − ε·logσ(−z): the Bradley–Terry loss with label noise ε.

    Written with ``logsigmoid`` so that it stays finite for any finite ``z``.
    """
    loss = -logsigmoid(logits)
    if label_smoothing:
        loss = (1.0 - label_smoothing) * loss - label_smoothing * logsigmoid(-logits)
    return loss
