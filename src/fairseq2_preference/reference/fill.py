"""Filling the cache: the reference model scores a split once, forward-only.

Each data-parallel rank scores its shard of the split in inference mode, under
the same autocast as the training step (so the numbers equal the live
reference's), with the lean log-prob engine (``sequence_logps``) and the
validation token budget (``dataset.max_num_valid_tokens``: no activations are
kept, so it can be much larger than the training one). Progress shows in the
fairseq2 progress bar (with ETA) and in the log every 30 s. The ranks' parts
are then merged into one entry by rank 0 (see :mod:`.store`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

import torch
from fairseq2.datasets import SyncMode
from fairseq2.gang import Gangs
from fairseq2.logging import log
from fairseq2.recipe.config import TrainerSection
from fairseq2.utils.progress import ProgressReporter
from torch.nn import Module

from fairseq2_preference.data import JsonlDataset, PreferenceDataset, ReadOptions
from fairseq2_preference.engine.scoring import sequence_logps
from fairseq2_preference.reference.store import ReferenceCache, new_nonce
from fairseq2_preference.reference.table import ReferenceTable

LOG_EVERY_S = 30.0


@dataclass
class SplitEntry:
    """One split of one dataset and its cache key."""

    role: str
    """``train`` or ``valid``."""
    dataset: PreferenceDataset
    split: str
    key: str
    description: dict[str, Any]


def autocast_dtype(trainer: TrainerSection, world_size: int) -> torch.dtype | None:
    """The autocast dtype fairseq2's trainer runs the step under, or ``None``.

    As in fairseq2 0.8.1: ``auto`` mixed precision is autocast, and so is ``static``
    except under FSDP with several processes (where the parameters are cast instead).
    """
    mp = trainer.mixed_precision
    if mp.mode == "static":
        amp = world_size == 1 or trainer.data_parallelism != "fsdp"
    else:
        amp = mp.mode == "auto"
    return mp.dtype if amp and mp.dtype != torch.float32 else None


def fill(
    model: Module,
    entries: Iterable[SplitEntry],
    cache: ReferenceCache,
    *,
    tokenizer: Any,
    gangs: Gangs,
    options: ReadOptions,
    autocast: torch.dtype | None,
    progress: ProgressReporter,
) -> None:
    """Score every entry's split with ``model`` and publish the entries."""
    nonce: list[object] = [new_nonce()]
    gangs.root.broadcast_objects(nonce)
    options = replace(options, sync_mode=SyncMode.UNTIL_LAST, num_accumulate=1)
    for entry in entries:
        log.info(
            "Scoring the {} data with the reference model into {}.",
            entry.role,
            cache.entry(entry.key),
        )
        reader = entry.dataset.create_reader(entry.split, tokenizer, gangs, options)
        total = _count_rows(entry) // gangs.dp.size
        table = score(model, reader, gangs, autocast, progress, total, entry.role)
        if gangs.tp.rank == 0:
            cache.write_part(entry.key, str(nonce[0]), gangs.dp.rank, table)
        gangs.root.barrier()
        if gangs.root.rank == 0:
            merged = cache.commit(entry.key, str(nonce[0]), gangs.dp.size, entry.description)
            log.info(
                "Reference cache entry {} holds {} examples.", cache.entry(entry.key), len(merged)
            )
        gangs.root.barrier()


def score(
    model: Module,
    reader: Iterable[list[Any]],
    gangs: Gangs,
    autocast: torch.dtype | None,
    progress: ProgressReporter,
    total: int,
    what: str,
) -> ReferenceTable:
    """Per-example reference log-prob sums and token counts of this rank's batches.

    Under ``no_grad`` rather than inference mode: under LoRA ``model`` is the policy
    about to train, and FSDP2 reuses this forward's all-gather buffers in training,
    where inference tensors are refused."""
    ids: list[str] = []
    logps: list[torch.Tensor] = []
    counts: list[torch.Tensor] = []
    device = gangs.root.device
    start = last_log = time.monotonic()
    task = progress.create_task(f"reference log-probs ({what})", total)
    with progress, task, torch.no_grad():
        for batches in reader:
            for batch in batches:
                batch.to(device)
                with _autocast(device.type, autocast):
                    sums, lengths = sequence_logps(model, batch)
                k, n = batch.num_responses, batch.num_examples
                logps.append(sums.float().view(k, n).t().cpu())
                counts.append(lengths.view(k, n).t().to(torch.int32).cpu())
                ids.extend(batch.ids)
                task.step(n)
            now = time.monotonic()
            if now - last_log >= LOG_EVERY_S:
                last_log = now
                _log_progress(what, len(ids), total, now - start)
    _log_progress(what, len(ids), len(ids), time.monotonic() - start)
    if not ids:
        return ReferenceTable([], torch.zeros(0, 2), torch.zeros(0, 2, dtype=torch.int32))
    return ReferenceTable(ids, torch.cat(logps), torch.cat(counts))


def _log_progress(what: str, done: int, total: int, elapsed: float) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate > 0 and total > done else 0.0
    log.info(
        "Reference log-probs ({}): {}/~{} examples on this rank, {:.1f} examples/s, ETA {:.0f} s.",
        what,
        done,
        max(total, done),
        rate,
        eta,
    )


def _count_rows(entry: SplitEntry) -> int:
    """The split's rows: the progress total (filtered examples are not known yet)."""
    dataset = entry.dataset
    if not isinstance(dataset, JsonlDataset):
        splits = getattr(dataset, "splits", {})
        return sum(len(data) for data in splits.values()) if len(splits) == 1 else 0
    count = 0
    for file in dataset.source.files(entry.split):
        with file.open("rb") as f:
            count += sum(1 for line in f if line.strip())
    return count


def _autocast(device_type: str, dtype: torch.dtype | None) -> AbstractContextManager[Any]:
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else nullcontext()
