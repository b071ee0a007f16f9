"""Train and eval units: one policy forward over chosen + rejected, then the criterion.

Per step, for a batch of N examples (k·N sequences, packed or padded):

1. if the criterion needs reference log-probabilities and the batch does not
   carry them (a reference cache, or scores in the data rows), the frozen
   reference model scores the batch first, under ``torch.inference_mode``, so
   that its transient memory is freed before the policy keeps activations;
2. one policy forward; :func:`~fairseq2_preference.engine.scoring.sequence_logps`
   projects only the scored (response) positions and sums their float32
   log-probabilities per sequence;
3. the loss and the count it is normalised by, both independent of how the
   global batch is split over ranks and accumulated micro-batches (the trainer
   divides the summed gradients by the global count):

   * a criterion with a pair loss: ``Σ_pairs [pair_loss + nll_scale · NLL_i / |y_i|]``
     over the number of pairs, ``NLL_i / |y_i|`` being the token-mean NLL of pair
     i's chosen response (RPO's per-pair, length-normalised NLL);
   * a criterion that is all NLL (``sft``): ``nll_scale · Σ NLL`` over the number
     of chosen response tokens, the global token mean of fairseq2's own SFT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from fairseq2.evaluator import EvalUnit
from fairseq2.metrics import MetricBag
from fairseq2.metrics.aggregation import Mean
from fairseq2.trainer import TrainUnit
from torch import Tensor
from torch.nn import Module
from typing_extensions import override

from fairseq2_preference.criteria import PreferenceCriterion, SequenceLogps, UnpairedCriterion
from fairseq2_preference.data import PreferenceBatch
from fairseq2_preference.engine.scoring import prepare_for_scoring, sequence_logps
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.lora import adapters_disabled
from fairseq2_preference.recipe.metrics import (
    add_preference_metrics,
    criterion_loss_name,
    update_batch_metrics,
    update_mean,
)


@dataclass
class PreferenceStep:
    """What one batch gives: the loss to back-propagate and what is logged."""

    loss: Tensor
    num_targets: int
    """What the trainer normalises ``loss`` by: pairs, or chosen tokens for ``sft``."""
    pair_losses: Tensor
    nll: Tensor
    """NLL summed over the chosen response tokens."""
    logps: SequenceLogps


def check_data_kind(criterion: PreferenceCriterion, pairs: bool, labelled: bool = False) -> None:
    """Instruction data (one response per example) only suits a criterion that is
    all NLL, such as ``sft``; unpaired feedback (``labelled``) only an unpaired one."""
    if isinstance(criterion, UnpairedCriterion):
        if not (pairs or labelled):
            raise PreferenceConfigError(
                f"Criterion '{criterion.name}' trains on feedback, but the dataset holds "
                "instruction rows ({src, tgt}) with no label; use generic_unpaired / "
                "hf_unpaired rows (prompt, completion, label) or preference pairs."
            )
        return
    if labelled:
        raise PreferenceConfigError(
            f"The dataset holds unpaired feedback (a completion and a label), which "
            f"criterion '{criterion.name}' cannot train on; use `criterion: {{name: kto}}`."
        )
    if not pairs and (criterion.has_pair_loss or criterion.needs_reference):
        raise PreferenceConfigError(
            f"Criterion '{criterion.name}' needs preference pairs, but the dataset holds "
            "instruction rows ({src, tgt}); use `criterion: {name: sft}` with it, or a "
            "generic_preference dataset."
        )


class StepComputer(Protocol):
    """What the train and eval units need: a step's loss, its count, its metrics."""

    def __call__(self, batch: PreferenceBatch) -> Any: ...

    def prepare_metric_bag(self, bag: MetricBag) -> None: ...

    def update_metrics(self, bag: MetricBag, batch: PreferenceBatch, step: Any) -> None: ...


class PreferenceComputer:
    """The computation shared by the train and the eval unit.

    ``reference_model`` may be ``None`` for a criterion that needs a reference
    when every batch carries ``reference_logps``, or with ``reference_is_base``:
    the policy's LoRA base (its adapters off) is then the reference.
    """

    def __init__(
        self,
        model: Module,
        reference_model: Module | None,
        criterion: PreferenceCriterion,
        pairs: bool = True,
        reference_is_base: bool = False,
    ) -> None:
        check_data_kind(criterion, pairs)
        self.model = model
        self.reference_model = reference_model if criterion.needs_reference else None
        self.reference_is_base = reference_is_base and criterion.needs_reference
        self.criterion = criterion
        self.pairs = pairs
        """``False`` for instruction data: one response per example, no rejected one."""
        prepare_for_scoring(model)
        if self.reference_model is not None:
            prepare_for_scoring(self.reference_model)

    def reference_logps(self, batch: PreferenceBatch) -> Tensor | None:
        """The batch's summed reference log-probabilities, if the criterion reads them."""
        if not self.criterion.needs_reference:
            return None
        if batch.reference_logps is not None:
            return batch.reference_logps
        if self.reference_is_base:
            # no_grad, not inference mode: FSDP2 keeps the all-gather buffers of this
            # forward for the policy's own, which must not be inference tensors.
            with torch.no_grad(), adapters_disabled(self.model):
                sums, _ = sequence_logps(self.model, batch)
            return sums
        if self.reference_model is None:
            raise PreferenceConfigError(
                f"Criterion '{self.criterion.name}' needs reference log-probabilities: set "
                "`reference_model`, or fill the reference cache for this data."
            )
        with torch.inference_mode():
            sums, _ = sequence_logps(self.reference_model, batch)
        return sums.clone()  # a normal tensor, usable in the policy's autograd graph

    def __call__(self, batch: PreferenceBatch) -> PreferenceStep:
        if batch.has_rejected != self.pairs:
            raise ValueError("The batch does not match the data kind the unit was built for.")
        n = batch.num_examples
        ref = self.reference_logps(batch)
        logps, lengths = sequence_logps(self.model, batch)

        seq_logps = SequenceLogps(
            chosen=logps[:n],
            rejected=logps[n:],
            chosen_lengths=lengths[:n],
            rejected_lengths=lengths[n:],
            ref_chosen=None if ref is None else ref[:n],
            ref_rejected=None if ref is None else ref[n:],
            extras=batch.extras,
        )

        criterion = self.criterion
        pair_losses = criterion.pair_losses(seq_logps)
        nll = -seq_logps.chosen.sum()
        if not criterion.has_pair_loss:
            return PreferenceStep(
                criterion.nll_scale * nll, batch.num_chosen_tokens, pair_losses, nll, seq_logps
            )
        loss = pair_losses.sum()
        if criterion.nll_scale:
            loss = loss - criterion.nll_scale * seq_logps.chosen_mean.sum()
        return PreferenceStep(loss, n, pair_losses, nll, seq_logps)

    def prepare_metric_bag(self, bag: MetricBag) -> None:
        add_preference_metrics(bag, self.criterion, self.pairs)

    @torch.inference_mode()
    def update_metrics(self, bag: MetricBag, batch: PreferenceBatch, step: PreferenceStep) -> None:
        """Device-side updates only: no host sync per batch."""
        logps = step.logps
        num_chosen_tokens = batch.num_chosen_tokens

        bag.get("loss", Mean).update(step.loss.detach() / step.num_targets, weight=step.num_targets)
        if self.criterion.has_pair_loss:
            update_mean(bag, criterion_loss_name(self.criterion), step.pair_losses)
        bag.get("nll_loss", Mean).update(
            step.nll.detach() / num_chosen_tokens, weight=num_chosen_tokens
        )
        update_mean(bag, "logps/chosen", logps.chosen)
        update_batch_metrics(bag, batch)
        if not self.pairs:
            return
        update_mean(bag, "logps/rejected", logps.rejected)

        chosen_rewards = self.criterion.chosen_rewards(logps)
        rejected_rewards = self.criterion.rejected_rewards(logps)
        if chosen_rewards is not None and rejected_rewards is not None:
            update_mean(bag, "rewards/chosen", chosen_rewards)
            update_mean(bag, "rewards/rejected", rejected_rewards)
            update_mean(bag, "rewards/margins", chosen_rewards - rejected_rewards)
            update_mean(bag, "rewards/accuracies", (chosen_rewards > rejected_rewards).float())

        for key, values in self.criterion.extra_metrics(logps).items():
            update_mean(bag, f"{self.criterion.name}/{key}", values)


class PreferenceTrainUnit(TrainUnit[PreferenceBatch]):
    def __init__(self, computer: StepComputer) -> None:
        self._computer = computer

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        self._computer.prepare_metric_bag(metric_bag)

    @override
    def process_batch(self, batch: PreferenceBatch, metric_bag: MetricBag) -> tuple[Tensor, int]:
        step = self._computer(batch)
        self._computer.update_metrics(metric_bag, batch, step)
        return step.loss, step.num_targets


class PreferenceEvalUnit(EvalUnit[PreferenceBatch]):
    def __init__(self, computer: StepComputer) -> None:
        self._computer = computer

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        self._computer.prepare_metric_bag(metric_bag)

    @override
    def process_batch(self, batch: PreferenceBatch, metric_bag: MetricBag) -> None:
        step = self._computer(batch)
        self._computer.update_metrics(metric_bag, batch, step)
