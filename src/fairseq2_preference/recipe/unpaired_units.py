"""The step of an unpaired criterion (KTO): a reference point for the step, then the losses.

A batch is pair-shaped (:mod:`fairseq2_preference.data.unpaired`): the first
half holds the examples' completions, the second the mismatched completions
that estimate KL(πθ ‖ πref). Per optimizer step:

1. at the step's first micro-batch, every micro-batch of the step on this rank
   is scored without gradients: the reference (model, LoRA base or cache) over
   both halves, the policy over the mismatched half; the sums of
   ``log πθ − log πref`` over the mismatched completions and their count are
   all-reduced over the data-parallel ranks, and z₀ = max(0, mean). The
   mismatched pairs are fixed by the data, so z₀ is the same for 1 rank × 8
   examples as for 2 ranks × 4, or 2 micro-batches × 4;
2. each micro-batch: one policy forward with gradients over its completions,
   the criterion's per-example losses, summed, normalised by the trainer over
   the examples of all ranks and micro-batches.

Over one batch of 2·N examples this is TRL's KTO, whose KL estimate is the
mean over the per-device batch gathered over processes, with the mismatch
within the batch instead of fixed by the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fairseq2.gang import Gang, ReduceOperation
from fairseq2.metrics import MetricBag
from torch import Tensor
from torch.nn import Module

from fairseq2_preference.criteria import UnpairedCriterion, UnpairedLogps
from fairseq2_preference.data.batch import PreferenceBatch, StepGroup, response_half
from fairseq2_preference.engine.scoring import prepare_for_scoring, sequence_logps
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.lora import adapters_disabled
from fairseq2_preference.recipe.metrics import add_unpaired_metrics, update_unpaired_metrics

KL = "kl"


@dataclass
class UnpairedStep:
    loss: Tensor
    num_targets: int
    """Examples: the trainer normalises ``loss`` by their number over the step."""
    example_losses: Tensor
    logps: UnpairedLogps
    rewards: Tensor


class UnpairedComputer:
    """The computation shared by the train and eval units of an unpaired criterion."""

    def __init__(
        self,
        model: Module,
        reference_model: Module | None,
        criterion: UnpairedCriterion,
        dp_gang: Gang,
        reference_is_base: bool = False,
    ) -> None:
        self.model = model
        self.reference_model = reference_model
        self.criterion = criterion
        self.dp_gang = dp_gang
        self.reference_is_base = reference_is_base
        prepare_for_scoring(model)
        if reference_model is not None:
            prepare_for_scoring(reference_model)

    def attach_reference(self, batch: PreferenceBatch) -> None:
        """Give ``batch`` its reference sums (both halves), unless it carries them."""
        if batch.reference_logps is not None:
            return
        if self.reference_is_base:
            with torch.no_grad(), adapters_disabled(self.model):
                batch.reference_logps = sequence_logps(self.model, batch)[0]
        elif self.reference_model is not None:
            with torch.inference_mode():
                sums = sequence_logps(self.reference_model, batch)[0]
            batch.reference_logps = sums.clone()
        else:
            raise PreferenceConfigError(
                f"Criterion '{self.criterion.name}' needs reference log-probabilities: set "
                "`reference_model` (or use `lora`, whose base is the reference)."
            )

    def reference_point(self, batch: PreferenceBatch) -> Tensor:
        """z₀ of ``batch``'s optimizer step (computed once per step, see the module)."""
        group = batch.step or StepGroup([batch])
        if KL in group.values:
            return group.values[KL]
        device = batch.scored.targets.device
        totals = torch.zeros(2, device=device, dtype=torch.float64)
        for member in group.batches:
            member.to(device)
            self.attach_reference(member)
            assert member.reference_logps is not None
            n = member.num_examples
            with torch.no_grad():
                policy = sequence_logps(self.model, response_half(member, 1))[0]
            totals[0] += (policy - member.reference_logps[n:]).sum()
            totals[1] += n
        if self.dp_gang.size > 1:
            self.dp_gang.all_reduce(totals, ReduceOperation.SUM)
        value = (totals[0] / totals[1]).clamp(min=0).float()
        group.values[KL] = value
        return value

    def __call__(self, batch: PreferenceBatch) -> UnpairedStep:
        kl = self.reference_point(batch)
        self.attach_reference(batch)
        assert batch.reference_logps is not None
        n = batch.num_examples
        logps, lengths = sequence_logps(self.model, response_half(batch, 0))
        unpaired = UnpairedLogps(
            policy=logps,
            reference=batch.reference_logps[:n],
            lengths=lengths,
            desirable=batch.extras["label"] > 0.5,
            kl=kl,
            extras={k: v for k, v in batch.extras.items() if k != "label"},
        )
        losses = self.criterion.example_losses(unpaired)
        return UnpairedStep(losses.sum(), n, losses, unpaired, self.criterion.rewards(unpaired))

    def prepare_metric_bag(self, bag: MetricBag) -> None:
        add_unpaired_metrics(bag, self.criterion)

    def update_metrics(self, bag: MetricBag, batch: PreferenceBatch, step: UnpairedStep) -> None:
        update_unpaired_metrics(bag, response_half(batch, 0), self.criterion, step)
