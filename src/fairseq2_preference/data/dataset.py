"""The jsonl dataset behind ``generic_preference`` and ``generic_instruction``.

Both families read rows of the same shape (a prompt ``src`` plus one or two
responses) through one pipeline: read with line numbers → shuffle → shard over
data-parallel ranks → encode → drop over-long examples → bucket by a token
budget (or a fixed batch size) → shuffle batches → collate → prefetch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import torch
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.datasets import DataPipelineReader, SyncMode
from fairseq2.gang import Gangs

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

    source_encode_mode: str = "prompt"
    target_encode_mode: str = "prompt_response"

    num_accumulate: int = 1
    """Batches handed to the unit per optimizer step (gradient accumulation)."""

    prefetch: int = 4

    sync_mode: SyncMode = SyncMode.UNTIL_FIRST

    seed: int = 2


class JsonlDataset:
    """Rows of ``schema`` stored as jsonl under a :class:`JsonlSource`."""

    def __init__(self, source: JsonlSource, schema: RowSchema) -> None:
        self.source = source
        self.schema = schema

    def create_reader(
        self, split: str, tokenizer: Tokenizer, gangs: Gangs, options: ReadOptions
    ) -> DataPipelineReader[PreferenceBatch]:
        seed = options.seed

        builder = read_jsonl_rows(self.source.files(split), self.schema)

        if options.example_shuffle_window != 1:
            builder.shuffle(options.example_shuffle_window, seed=seed)

        builder.shard(gangs.dp.rank, gangs.dp.size, allow_uneven=True)

        seed += 1 + gangs.dp.rank

        builder.map(self._encoder(tokenizer, options))

        what = f"{self.source.path} [{split}]"
        builder.filter(LengthFilter(options.min_seq_len, options.max_seq_len, what))

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
            )
        )

        builder.prefetch(options.prefetch)

        return DataPipelineReader[PreferenceBatch](
            builder.and_return(),
            gangs,
            num_accumulate=options.num_accumulate,
            sync=True,
            sync_mode=options.sync_mode,
        )

    def _encoder(self, tokenizer: Tokenizer, options: ReadOptions) -> Any:
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
                "numbers": {name: float(row[name]) for name in schema.numbers},
            }

        return encode
