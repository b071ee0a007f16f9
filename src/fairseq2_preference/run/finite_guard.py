"""Stop training at the first non-finite loss or gradient, before it reaches the weights.

fairseq2 0.8.1's trainer does not check: with a learning rate far too high, or
float16 weights without loss scaling, the loss turns NaN, the optimizer writes
NaN into every weight, the run goes on, checkpoints the NaN state and deletes
the last good checkpoint. (Its ``trainer.grad_check`` only compares the norms
of the ranks, and anomaly detection costs a full autograd trace.)

The guard hooks into the two places the trainer offers:

* the train unit (wrapped): each micro-batch's loss is recorded as a finite
  flag on the device, with the example ids of its micro-batch, no host sync;
* the model's data-parallel facade (fairseq2's ``set_data_parallel_facade``):
  the trainer asks it for the clipped gradient norm, which is already the total
  over all ranks, right before the optimizer step.

There the flags and the norm are combined into one device value: reduced over
the data-parallel ranks (a one-element all-reduce) so that every rank stops
together, and read once per step (one host sync, where the trainer itself
syncs nothing). On failure the run stops with :class:`NonFiniteLossError`
before the optimizer step, so the weights, the optimizer and every checkpoint
on disk stay finite (a checkpoint of the previous step still saving in the
background is completed first), and fairseq2 exits with status 2.

Under float16 loss scaling a non-finite gradient is routine (fairseq2 skips
the step and lowers the scale), so the guard is off there.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

import torch
from fairseq2.checkpoint import CheckpointManager
from fairseq2.device import SupportsDeviceTransfer
from fairseq2.gang import Gang, ReduceOperation
from fairseq2.metrics import MetricBag
from fairseq2.nn.data_parallel import (
    DataParallelFacade,
    get_data_parallel_facade,
    set_data_parallel_facade,
)
from fairseq2.recipe.base import RecipeContext
from fairseq2.recipe.error import RecipeError
from fairseq2.trainer import TrainUnit
from torch import Tensor
from typing_extensions import override

from fairseq2_preference.config.sections import PreferenceFinetuneConfig

BatchT = TypeVar("BatchT", bound=SupportsDeviceTransfer)

MAX_IDS_SHOWN = 20


class NonFiniteLossError(RecipeError):
    """The loss or the gradient of a training step is NaN or infinite (exit status 2)."""


class FiniteGuard:
    """The finite flags and example ids of the current step's micro-batches."""

    def __init__(
        self, dp_gang: Gang, checkpoint_dir: str, checkpoints: CheckpointManager | None = None
    ) -> None:
        self._dp_gang = dp_gang
        self._checkpoints = checkpoints
        self._checkpoint_dir = checkpoint_dir
        self._step_nr = 0
        self._losses: list[Tensor] = []
        self._ids: list[list[str]] = []

    def begin_step(self, step_nr: int) -> None:
        self._step_nr = step_nr
        self._losses.clear()
        self._ids.clear()

    def record(self, loss: Tensor, ids: list[str]) -> None:
        self._losses.append(loss.detach().float().sum())
        self._ids.append(ids)

    def check(self, grad_norm: Tensor) -> None:
        """Raise :class:`NonFiniteLossError` unless this step's losses and the
        gradient norm are finite on every rank."""
        finite = torch.isfinite(grad_norm.detach().float())
        if self._losses:
            finite = finite & torch.isfinite(torch.stack(self._losses)).all()
        finite = finite.float()
        if self._dp_gang.size > 1:
            self._dp_gang.all_reduce(finite, ReduceOperation.MIN)
        if not bool(finite.item()):
            if self._checkpoints is not None:
                # The previous step's checkpoint may still be saving in the
                # background; it holds the last finite state: let it finish.
                self._checkpoints.maybe_complete_save_operation(blocking=True)
            raise NonFiniteLossError(self._describe(grad_norm))

    def _describe(self, grad_norm: Tensor) -> str:
        rank = self._dp_gang.rank
        losses = [float(loss) for loss in self._losses]
        bad = [i for i, value in enumerate(losses) if not math.isfinite(value)]
        count = len(losses)
        if bad:
            first = bad[0]
            where = (
                f"the loss of micro-batch {first + 1} of {count} on rank {rank} is "
                f"{losses[first]} (example ids: {_ids(self._ids[first])})"
            )
        elif not math.isfinite(float(grad_norm)):
            where = (
                f"the gradient norm is {float(grad_norm)} with finite losses; the "
                f"{count} micro-batch(es) of rank {rank} held example ids: "
                f"{_ids([i for ids in self._ids for i in ids])}"
            )
        else:
            where = "another rank's loss is not finite (see its logs/rank_<r>.log)"
        return (
            f"Training diverged at step {self._step_nr}: {where}. The optimizer step was "
            "not taken and no checkpoint of this state was written; the checkpoints in "
            f"{self._checkpoint_dir} are intact, and running the same command resumes "
            "from the last one. Lower `optimizer.config.lr`, keep `trainer.max_grad_norm` "
            "set, or train in bfloat16 or float32 instead of float16; if one example is "
            "to blame, remove it from the data."
        )


def _ids(ids: list[str]) -> str:
    shown = ", ".join(map(str, ids[:MAX_IDS_SHOWN]))
    more = len(ids) - MAX_IDS_SHOWN
    return f"{shown}, and {more} more" if more > 0 else shown


class GuardedFacade(DataParallelFacade):
    """The model's own data-parallel facade, checking the gradient norm it returns."""

    def __init__(self, inner: DataParallelFacade, guard: FiniteGuard) -> None:
        self._inner = inner
        self._guard = guard

    @override
    def state_dict(self) -> dict[str, object]:
        return self._inner.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self._inner.load_state_dict(state_dict)

    @override
    def no_sync(self) -> AbstractContextManager[None]:
        return self._inner.no_sync()

    @override
    def clip_grad_norm(self, max_norm: float | None) -> Tensor:
        grad_norm = self._inner.clip_grad_norm(max_norm)
        self._guard.check(grad_norm)
        return grad_norm

    @override
    def summon_full_parameters(self) -> AbstractContextManager[None]:
        return self._inner.summon_full_parameters()


class GuardedTrainUnit(TrainUnit[BatchT], Generic[BatchT]):
    """A train unit whose losses the guard records, with its batches' ``ids``."""

    def __init__(self, inner: TrainUnit[BatchT], guard: FiniteGuard) -> None:
        self._inner = inner
        self._guard = guard

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        self._inner.prepare_metric_bag(metric_bag)

    @override
    def set_step_nr(self, step_nr: int) -> None:
        self._guard.begin_step(step_nr)
        self._inner.set_step_nr(step_nr)

    @override
    def set_data_epoch_nr(self, data_epoch_nr: int) -> None:
        self._inner.set_data_epoch_nr(data_epoch_nr)

    @override
    def process_batch(self, batch: BatchT, metric_bag: MetricBag) -> tuple[Tensor, int | None]:
        loss, num_targets = self._inner.process_batch(batch, metric_bag)
        self._guard.record(loss, list(getattr(batch, "ids", [])))
        return loss, num_targets

    @override
    def process_metric_values(self, values: MutableMapping[str, object]) -> None:
        self._inner.process_metric_values(values)


def guard_training(
    context: RecipeContext, config: PreferenceFinetuneConfig, unit: TrainUnit[BatchT]
) -> TrainUnit[BatchT]:
    """Install the guard on the data-parallel model the trainer will train and
    return ``unit`` wrapped; call it before creating the trainer."""
    mp = config.trainer.mixed_precision
    dtype = config.model.dtype if mp.mode == "off" else mp.dtype
    if dtype == torch.float16:  # as fairseq2 decides to scale the loss
        return unit
    model = context.get_data_parallel_model()
    guard = FiniteGuard(
        context.gangs.dp,
        str(context.output_dir / "checkpoints"),
        context.get_checkpoint_manager(),
    )
    set_data_parallel_facade(model, GuardedFacade(get_data_parallel_facade(model), guard))
    return GuardedTrainUnit(unit, guard)
