"""How encoded examples become batches: length filtering and token budgets.

An example holds ``k`` sequences that share a prompt (``k = 2`` for a preference
pair, ``1`` for an instruction row) and a batch of ``n`` examples is one padded
``[k·n, W]`` tensor, ``W`` the longest sequence in it. The token budget therefore
counts what the model really processes, padding included: ``k·n·W <=
max_num_tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from fairseq2.logging import log


@dataclass(frozen=True)
class StaticBatching:
    """Every batch holds ``batch_size`` examples (pairs)."""

    batch_size: int


@dataclass(frozen=True)
class LengthBatching:
    """Examples of similar length are batched so that ``k·n·W <= max_num_tokens``."""

    max_num_tokens: int


Batching: TypeAlias = StaticBatching | LengthBatching


def bucket_sizes(
    max_num_tokens: int, num_rows: int, min_seq_len: int, max_seq_len: int
) -> list[tuple[int, int]]:
    """Buckets ``(examples per batch, longest sequence)`` for ``bucket_by_length``.

    An example of length ``L`` (its longest sequence) joins the first bucket whose
    length is ``>= L``; a bucket ``(n, W)`` is emitted when it holds ``n``
    examples, and ``num_rows·n·W <= max_num_tokens`` holds for every bucket.
    """
    budget = max_num_tokens // num_rows
    if budget < max_seq_len:
        raise ValueError(
            f"`max_num_tokens` ({max_num_tokens}) must be at least {num_rows} × "
            f"`max_seq_len` ({max_seq_len}) so that the longest example fits in a batch."
        )
    sizes = []
    num_examples = budget // max(min_seq_len, 1)
    while True:
        seq_len = min(budget // num_examples, max_seq_len)
        sizes.append((num_examples, seq_len))
        if seq_len >= max_seq_len:
            return sizes
        num_examples = budget // (seq_len + 1)


class LengthFilter:
    """Keeps examples whose sequences all fit in ``[min_seq_len, max_seq_len]``.

    Dropped examples are counted, and the count is logged at 1, 2, 4, 8, ...
    drops so that a systematic problem (e.g. a too small ``max_seq_len``) shows
    in the log without flooding it.
    """

    def __init__(self, min_seq_len: int, max_seq_len: int, what: str) -> None:
        self.min_seq_len = min_seq_len
        self.max_seq_len = max_seq_len
        self.what = what
        self.num_dropped = 0

    def __call__(self, example: dict[str, Any]) -> bool:
        lengths = [len(seq) for seq in example["seqs"]]
        if min(lengths) >= self.min_seq_len and max(lengths) <= self.max_seq_len:
            return True
        self.num_dropped += 1
        if self.num_dropped & (self.num_dropped - 1) == 0:
            log.warning(
                "{}: {} example(s) dropped so far for falling outside [min_seq_len={}, "
                "max_seq_len={}] tokens; the latest is id {} with sequence lengths {}.",
                self.what,
                self.num_dropped,
                self.min_seq_len,
                self.max_seq_len,
                example["id"],
                lengths,
            )
        return False
