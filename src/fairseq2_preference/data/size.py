"""How much training data there is and how many steps an epoch takes, said at the start."""

from __future__ import annotations

import math

from fairseq2.logging import log
from fairseq2.recipe.config import RegimeSection

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


def log_data_size(
    dataset: PreferenceDataset,
    split: str,
    options: ReadOptions,
    dp_size: int,
    regime: RegimeSection,
) -> None:
    """One line: examples, steps per epoch (or why unknown) and the run's length in epochs."""
    count = dataset.num_examples(split)
    if count is None:
        return
    steps = steps_per_epoch(count, dp_size, options)
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
        "Training data: {:,} examples in {} [{}] on {} data-parallel process(es): {}{}.",
        count, dataset.location, split, dp_size, per_epoch, length,
    )  # fmt: skip
