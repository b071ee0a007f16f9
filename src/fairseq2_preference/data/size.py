"""How much training data there is and how many steps an epoch takes, said at the start."""

from __future__ import annotations

import math
import time

from fairseq2.data.tokenizers import Tokenizer
from fairseq2.gang import Gangs
from fairseq2.logging import log
from fairseq2.recipe.config import RegimeSection
from fairseq2.utils.progress import ProgressReporter, ProgressTask

from fairseq2_preference.data.batching import StaticBatching
from fairseq2_preference.data.dataset import PreferenceDataset, ReadOptions


def steps_per_epoch(num_examples: int, dp_size: int, options: ReadOptions) -> int | None:
    """Optimizer steps per pass over ``num_examples`` with a fixed batch size (``None``
    with a token budget: the number of pairs per batch then depends on their lengths)."""
    batching = options.batching
    if not isinstance(batching, StaticBatching):
        return None
    per_rank = math.ceil(num_examples / dp_size)
    return math.ceil(math.ceil(per_rank / batching.batch_size) / options.num_accumulate)


def epoch_steps(
    dataset: PreferenceDataset,
    split: str,
    tokenizer: Tokenizer,
    gangs: Gangs,
    options: ReadOptions,
    regime: RegimeSection,
) -> int | None:
    """Optimizer steps per epoch: computed from the row count with a fixed batch size;
    with a token budget, counted by one pass over the data when the run is epoch-based
    (the lengths decide the batches), else unknown."""
    count = dataset.num_examples(split)
    if count is not None and (steps := steps_per_epoch(count, gangs.dp.size, options)):
        return steps
    if regime.num_steps is not None or regime.num_data_epochs is None:
        return None
    start = time.perf_counter()
    steps = sum(1 for _ in dataset.create_reader(split, tokenizer, gangs, options))
    log.info("Counted {:,} steps per epoch in {:.1f} s.", steps, time.perf_counter() - start)
    return steps


def log_data_size(
    dataset: PreferenceDataset, split: str, dp_size: int, regime: RegimeSection, steps: int | None
) -> None:
    """One line: examples, steps per epoch (or why unknown) and the run's length in epochs."""
    count = dataset.num_examples(split)
    size = "unknown number of" if count is None else f"{count:,}"
    if steps is None:
        per_epoch = (
            "steps per epoch depend on lengths (token budget per batch; "
            "set dataset.batch_size for a fixed number)"
        )
    else:
        per_epoch = f"{steps:,} steps per epoch"
    length = ""
    if regime.num_steps is not None and steps:
        length = f"; {regime.num_steps:,} steps = {regime.num_steps / steps:.2f} epochs"
    elif regime.num_data_epochs is not None and steps:
        length = f"; {regime.num_data_epochs} epoch(s) = {regime.num_data_epochs * steps:,} steps"
    log.info(
        "Training data: {} examples in {} [{}] on {} data-parallel process(es): {}{}.",
        size, dataset.location, split, dp_size, per_epoch, length,
    )  # fmt: skip


def show_total_steps(reporter: ProgressReporter, num_steps: int) -> None:
    """Give the trainer's ``train`` progress bar a total (and so an ETA).

    fairseq2 sizes the bar from ``regime.num_steps`` only; an epoch-based run gets
    a bare counter. The reporter is the run's singleton, so setting the total on
    it before the trainer starts is enough.
    """
    create_task = reporter.create_task

    def with_total(
        name: str, total: int | None, completed: int = 0, *, start: bool = True
    ) -> ProgressTask:
        if name == "train" and total is None:
            total = num_steps
        return create_task(name, total, completed, start=start)

    reporter.create_task = with_total  # type: ignore[method-assign,assignment]
