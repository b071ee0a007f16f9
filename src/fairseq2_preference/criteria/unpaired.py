"""The interface of losses on unpaired feedback: one completion, desirable or not.

Feedback as it mostly comes is a thumbs up or down on a single response, not a
ranking of two. An :class:`UnpairedCriterion` sees, per example, the policy's
and the reference's summed log-probabilities of its completion, whether it is
desirable, and a reference point ``kl``: the batch's estimate of
KL(πθ ‖ πref) from mismatched (prompt, completion) pairs, one number for the
whole optimizer step (see :mod:`fairseq2_preference.recipe.unpaired_units`).
Preference pairs are usable too: each pair gives one desirable and one
undesirable example.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field

from torch import Tensor

from fairseq2_preference.criteria.base import BetaConfig, PreferenceCriterion, SequenceLogps


@dataclass(frozen=True)
class UnpairedLogps:
    """Per-example sequence log-probabilities, 1-D float32 tensors of length N."""

    policy: Tensor
    """log πθ(y|x), summed over the completion's tokens."""
    reference: Tensor
    """log πref(y|x), likewise."""
    lengths: Tensor
    desirable: Tensor
    """``True`` for a thumbs up, ``False`` for a thumbs down (bool ``[N]``)."""
    kl: Tensor
    """The reference point z₀ ≥ 0 (a scalar, no gradient)."""
    extras: Mapping[str, Tensor] = field(default_factory=dict)

    @property
    def ratio(self) -> Tensor:
        """ρ = log πθ(y|x) − log πref(y|x)."""
        return self.policy - self.reference


class UnpairedCriterion(PreferenceCriterion):
    """Base class of a loss on unpaired examples (register it like any criterion).

    :meth:`example_losses` returns one loss per example, not averaged: the unit
    sums them and the trainer divides by the number of examples over all ranks
    and micro-batches, as for pairs.
    """

    config: BetaConfig

    @abstractmethod
    def example_losses(self, logps: UnpairedLogps) -> Tensor:
        """The per-example loss, shape ``[N]``."""

    def rewards(self, logps: UnpairedLogps) -> Tensor:
        """The implicit reward β·ρ of each completion, for metrics."""
        return self.config.beta * logps.ratio

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        raise TypeError(
            f"Criterion '{self.name}' is a loss on unpaired examples: the recipe gives it "
            "one completion at a time (a preference pair becomes two examples)."
        )
