"""Preference pairs with a per-pair weight, and a DPO that uses it.

Rows of the ``weighted_preference`` family are ordinary preference rows plus a
number: ``{"src", "tgt_chosen", "tgt_rejected", "weight", "id"?}`` — e.g. the
score gap of a rated dataset, or a confidence. The weight reaches criteria as
``logps.extras["weight"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from fairseq2.runtime.dependency import DependencyContainer
from torch import Tensor

from fairseq2_preference.criteria import SequenceLogps, register_criterion
from fairseq2_preference.criteria.dpo import DpoConfig, DpoCriterion
from fairseq2_preference.data import RowSchema, register_jsonl_family

WEIGHTED_PREFERENCE_ROW = RowSchema(
    prompt="src", responses=("tgt_chosen", "tgt_rejected"), numbers=("weight",)
)


def register_extension(container: DependencyContainer) -> None:
    """The ``fairseq2.extension`` entry point: adds the ``weighted_preference`` family."""
    register_jsonl_family(container, "weighted_preference", WEIGHTED_PREFERENCE_ROW)


@dataclass(kw_only=True)
class WeightedDpoConfig(DpoConfig):
    weight_field: str = "weight"
    """The per-pair number of the dataset that scales each pair's loss."""


@register_criterion("weighted_dpo", WeightedDpoConfig)
class WeightedDpoCriterion(DpoCriterion):
    """DPO with a per-pair weight w from the data: loss = w · DPO loss.

    Weights are used as given (not renormalised): the trainer still divides by
    the number of pairs, so a batch of weight-0.5 pairs takes half a DPO step.
    """

    display_name = "Weighted DPO Loss"

    config: WeightedDpoConfig

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        weight = logps.extras.get(self.config.weight_field)
        if weight is None:
            raise ValueError(
                f"weighted_dpo needs a '{self.config.weight_field}' number per pair: use a "
                "dataset of the weighted_preference family."
            )
        return weight * super().pair_losses(logps)
