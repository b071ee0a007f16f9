"""Train and eval units: one forward over chosen + rejected, then the criterion.

Per step, for a batch of N pairs (2N padded rows):

1. one policy forward over all 2N sequences; per-token log-probabilities are
   taken in float32 (``logits.float()``, also under bf16 autocast) and summed
   over the response tokens of each sequence;
2. if the criterion needs it, the same under the frozen reference model, in
   ``torch.no_grad``;
3. ``loss = Σ pair_losses + nll_scale · NLL_sum · N / T_chosen``, returned with
   N so that fairseq2's trainer divides the gradients by the number of pairs over
   all ranks and accumulated micro-batches: every pair weighs the same, and the
   NLL term is a token mean over the chosen responses of each micro-batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from fairseq2.evaluator import EvalUnit
from fairseq2.metrics import MetricBag
from fairseq2.metrics.aggregation import Mean
from fairseq2.trainer import TrainUnit
from torch import Tensor
from torch.nn import Module
from torch.nn.functional import cross_entropy
from typing_extensions import override

from fairseq2_preference.criteria import PreferenceCriterion, SequenceLogps
from fairseq2_preference.data import PreferenceBatch
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.metrics import (
    add_preference_metrics,
    criterion_loss_name,
    update_batch_metrics,
    update_mean,
)


def sequence_logps(model: Module, batch: PreferenceBatch) -> tuple[Tensor, Tensor]:
    """Per-sequence log-probability sums over target tokens (float32) and token counts."""
    inputs, targets = batch.seqs.as_auto_regressive()
    seqs, layout = inputs.as_input()
    logits = model(seqs, layout)
    token_logps = -cross_entropy(logits.float().transpose(1, 2), targets.seqs, reduction="none")
    mask = targets.target_mask
    if mask is None:
        raise ValueError("A preference batch must carry a target mask.")
    return token_logps.masked_fill(~mask, 0.0).sum(-1), mask.sum(-1)


@dataclass
class PreferenceStep:
    """What one batch gives: the loss to back-propagate and what is logged."""

    loss: Tensor
    pair_losses: Tensor
    nll: Tensor
    """NLL summed over the chosen response tokens."""
    logps: SequenceLogps


def check_data_kind(criterion: PreferenceCriterion, pairs: bool) -> None:
    """Instruction data (one response per example) only suits a criterion that is
    all NLL, such as ``sft``."""
    if not pairs and (criterion.has_pair_loss or criterion.needs_reference):
        raise PreferenceConfigError(
            f"Criterion '{criterion.name}' needs preference pairs, but the dataset holds "
            "instruction rows ({src, tgt}); use `criterion: {name: sft}` with it, or a "
            "generic_preference dataset."
        )


class PreferenceComputer:
    """The computation shared by the train and the eval unit."""

    def __init__(
        self,
        model: Module,
        reference_model: Module | None,
        criterion: PreferenceCriterion,
        pairs: bool = True,
    ) -> None:
        check_data_kind(criterion, pairs)
        self.model = model
        self.reference_model = reference_model if criterion.needs_reference else None
        self.criterion = criterion
        self.pairs = pairs
        """``False`` for instruction data: one response per example, no rejected one."""

    def __call__(self, batch: PreferenceBatch) -> PreferenceStep:
        if batch.has_rejected != self.pairs:
            raise ValueError("The batch does not match the data kind the unit was built for.")
        num_pairs = batch.num_examples
        logps, lengths = sequence_logps(self.model, batch)

        ref_chosen = ref_rejected = None
        if self.criterion.needs_reference:
            ref_logps = batch.reference_logps
            if ref_logps is None:
                if self.reference_model is None:
                    raise ValueError(
                        f"Criterion '{self.criterion.name}' needs a reference model or "
                        "batches that carry `reference_logps`."
                    )
                with torch.no_grad():
                    ref_logps, _ = sequence_logps(self.reference_model, batch)
            ref_chosen, ref_rejected = ref_logps[:num_pairs], ref_logps[num_pairs:]

        seq_logps = SequenceLogps(
            chosen=logps[:num_pairs],
            rejected=logps[num_pairs:],
            chosen_lengths=lengths[:num_pairs],
            rejected_lengths=lengths[num_pairs:],
            ref_chosen=ref_chosen,
            ref_rejected=ref_rejected,
            extras=batch.extras,
        )

        pair_losses = self.criterion.pair_losses(seq_logps)
        nll = -seq_logps.chosen.sum()
        loss = pair_losses.sum()
        if self.criterion.nll_scale:
            num_chosen_tokens = seq_logps.chosen_lengths.sum()
            loss = loss + self.criterion.nll_scale * nll * num_pairs / num_chosen_tokens
        return PreferenceStep(loss, pair_losses, nll, seq_logps)

    def prepare_metric_bag(self, bag: MetricBag) -> None:
        add_preference_metrics(bag, self.criterion, self.pairs)

    @torch.inference_mode()
    def update_metrics(self, bag: MetricBag, batch: PreferenceBatch, step: PreferenceStep) -> None:
        num_pairs = batch.num_examples
        logps = step.logps
        num_chosen_tokens = int(logps.chosen_lengths.sum())

        bag.get("loss", Mean).update(step.loss.detach() / num_pairs, weight=num_pairs)
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
    def __init__(self, computer: PreferenceComputer) -> None:
        self._computer = computer

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        self._computer.prepare_metric_bag(metric_bag)

    @override
    def process_batch(self, batch: PreferenceBatch, metric_bag: MetricBag) -> tuple[Tensor, int]:
        step = self._computer(batch)
        self._computer.update_metrics(metric_bag, batch, step)
        return step.loss, batch.num_examples


class PreferenceEvalUnit(EvalUnit[PreferenceBatch]):
    def __init__(self, computer: PreferenceComputer) -> None:
        self._computer = computer

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        self._computer.prepare_metric_bag(metric_bag)

    @override
    def process_batch(self, batch: PreferenceBatch, metric_bag: MetricBag) -> None:
        step = self._computer(batch)
        self._computer.update_metrics(metric_bag, batch, step)
