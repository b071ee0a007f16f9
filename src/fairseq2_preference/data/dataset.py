"""The datasets behind the dataset families: where rows come from, one pipeline for all.

Every family reads rows of the same shape (a prompt ``src`` plus one or two
responses) through one pipeline: read rows → shuffle → shard over
data-parallel ranks → encode → drop over-long examples → bucket by a token
budget (or a fixed batch size) → shuffle batches → collate → prefetch. A
family only says where its rows come from (:meth:`PreferenceDataset.read_rows`)
and, if it needs to, how a row becomes tokens (:meth:`PreferenceDataset.encoder`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
from fairseq2.data.data_pipeline import DataPipelineBuilder
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.datasets import DataPipelineReader, DataReader, SyncMode
from fairseq2.gang import Gangs
from typing_extensions import override

from fairseq2_preference.data.batch import PreferenceBatch, collate_examples
from fairseq2_preference.data.batching import (
    Batching,
    LengthBatching,
    LengthFilter,
    StaticBatching,
    bucket_sizes,
)
from fairseq2_preference.data.jsonl import RowSchema, read_jsonl_rows
from fairseq2_preference.data.source import JsonlSource
from fairseq2_preference.data.usable import CheckedReader, RowStats


@dataclass(kw_only=True)
class ReadOptions:
    batching: Batching = field(default_factory=lambda: StaticBatching(1))

    example_shuffle_window: int = 1
    """Examples are shuffled in a sliding window of this size (1: no shuffling,
    0: the whole split, loaded into memory)."""

    batch_shuffle_window: int = 1
    """Likewise for batches."""

    min_seq_len: int = 1
    max_seq_len: int = 8192

    mask_source_tokens: bool = True

    packed: bool = True
    """Batches as one stream without padding (see :func:`collate_examples`)."""

    source_encode_mode: str = "prompt"
    target_encode_mode: str = "prompt_response"

    num_accumulate: int = 1
    """Batches handed to the unit per optimizer step (gradient accumulation)."""

    prefetch: int = 4

    batch_transform: Callable[[PreferenceBatch], PreferenceBatch] | None = None
    """Applied to every collated batch, e.g. to attach cached reference log-probs."""

    sync_mode: SyncMode = SyncMode.UNTIL_FIRST

    training: bool = False
    """Refuse a split that yields no batch, and report identical pairs and
    repeated ids (see :mod:`fairseq2_preference.data.usable`)."""

    seed: int = 2


class PreferenceDataset(ABC):
    """Rows of ``schema``, read into :class:`PreferenceBatch` es."""

    schema: RowSchema

    @abstractmethod
    def read_rows(self, split: str) -> DataPipelineBuilder:
        """The rows of ``split``: dicts with ``id`` and the fields of ``schema``."""

    @abstractmethod
    def has_split(self, split: str) -> bool:
        """Whether ``split`` is one of the dataset's named splits."""

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the data is, for messages."""

    def num_examples(self, split: str) -> int | None:
        """The number of rows of ``split``, if known without reading them."""
        return None

    def create_reader(
        self, split: str, tokenizer: Tokenizer, gangs: Gangs, options: ReadOptions
    ) -> DataReader[PreferenceBatch]:
        seed = options.seed

        builder = self.read_rows(split)

        if options.example_shuffle_window != 1:
            builder.shuffle(options.example_shuffle_window, seed=seed)

        builder.shard(gangs.dp.rank, gangs.dp.size, allow_uneven=True)

        stats = RowStats(self.schema.responses)
        if options.training:
            builder.map(stats)

        seed += 1 + gangs.dp.rank

        builder.map(self.encoder(tokenizer, options))

        what = f"{self.location} [{split}]"
        length_filter = LengthFilter(options.min_seq_len, options.max_seq_len, what)
        builder.filter(length_filter)

        batching = options.batching
        if isinstance(batching, LengthBatching):
            sizes = bucket_sizes(
                batching.max_num_tokens,
                len(self.schema.responses),
                options.min_seq_len,
                options.max_seq_len,
            )
            builder.bucket_by_length(sizes, selector="longest")
        else:
            builder.bucket(batching.batch_size)

        if options.batch_shuffle_window != 1:
            builder.shuffle(options.batch_shuffle_window, seed=seed)

        pad_idx = tokenizer.vocab_info.pad_idx
        builder.map(
            partial(
                collate_examples,
                pad_idx=0 if pad_idx is None else pad_idx,
                mask_source_tokens=options.mask_source_tokens,
                packed=options.packed,
            )
        )

        if options.batch_transform is not None:
            builder.map(options.batch_transform)

        builder.prefetch(options.prefetch)

        reader = DataPipelineReader[PreferenceBatch](
            builder.and_return(),
            gangs,
            num_accumulate=options.num_accumulate,
            sync=True,
            sync_mode=options.sync_mode,
        )
        rank = f" (rank {gangs.dp.rank} of {gangs.dp.size})" if gangs.dp.size > 1 else ""
        files = self.files(split)
        return CheckedReader(reader, what, stats, length_filter, rank, files, options.training)

    def files(self, split: str) -> list[Path]:
        """The files holding ``split``, for error messages (none if not file-based)."""
        return []

    def encoder(self, tokenizer: Tokenizer, options: ReadOptions) -> Any:
        """A function from a row to ``{"id", "seqs", "prompt_len", "longest", "numbers"}``:
        the prompt encoded in ``source_encode_mode`` followed by each response in
        ``target_encode_mode``."""
        encode_prompt = tokenizer.create_encoder(mode=options.source_encode_mode)
        encode_response = tokenizer.create_encoder(mode=options.target_encode_mode)
        schema = self.schema

        def encode(row: dict[str, Any]) -> dict[str, Any]:
            prompt = encode_prompt(row[schema.prompt])
            seqs = [torch.cat([prompt, encode_response(row[r])]) for r in schema.responses]
            return {
                "id": row["id"],
                "seqs": seqs,
                "prompt_len": len(prompt),
                "longest": max(seqs, key=len),
                "numbers": {name: float(row[name]) for name in schema.values},
            }

        return encode


class JsonlDataset(PreferenceDataset):
    """Rows of ``schema`` stored as jsonl under a :class:`JsonlSource`."""

    def __init__(self, source: JsonlSource, schema: RowSchema) -> None:
        self.source = source
        self.schema = schema

    @override
    def read_rows(self, split: str) -> DataPipelineBuilder:
        return read_jsonl_rows(self.source.files(split), self.schema)

    @override
    def has_split(self, split: str) -> bool:
        return self.source.has_split(split)

    @override
    def files(self, split: str) -> list[Path]:
        return self.source.files(split)

    @property
    @override
    def location(self) -> str:
        return str(self.source.path)

    @override
    def num_examples(self, split: str) -> int:
        """Non-blank lines: one row each (a bad row stops training later, with its line)."""
        count = 0
        for file in self.source.files(split):
            with file.open("rb") as f:
                count += sum(1 for line in f if line.strip())
        return count
