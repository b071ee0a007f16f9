"""Reference log-probs per example, looked up by example id and attached to batches.

A table holds, for ``n`` examples with ``k`` responses each (``k = 2`` for
preference pairs: chosen, rejected), the reference model's log-probability of
each response summed over its target tokens (float32 ``[n, k]``) and, when it
was computed here, the number of those tokens (``[n, k]``). Whatever order,
batching, shuffling or packing the data pipeline uses, :meth:`attach` gives a
batch the entries of its own examples in the batch's row order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from fairseq2_preference.data import PreferenceBatch
from fairseq2_preference.errors import PreferenceDataError


@dataclass
class ReferenceTable:
    ids: list[str]
    logps: Tensor
    """float32 ``[n, k]``: summed reference log-prob of response ``j`` of example ``i``."""

    counts: Tensor | None = None
    """``[n, k]`` target-token counts, or ``None`` when the scores came with the data."""

    source: str = "the reference cache"
    """Where the numbers come from, for error messages."""

    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.logps.dim() != 2 or self.logps.shape[0] != len(self.ids):
            raise ValueError("`logps` must be [len(ids), num_responses].")
        self.logps = self.logps.to(torch.float32)
        self._index = {example_id: i for i, example_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_responses(self) -> int:
        return int(self.logps.shape[1])

    def rows(self, ids: Sequence[str]) -> Tensor:
        """The ``[len(ids), k]`` entries of ``ids``; an unknown id is an error."""
        try:
            index = [self._index[example_id] for example_id in ids]
        except KeyError as ex:
            raise PreferenceDataError(
                f"Example id {ex.args[0]!r} has no reference log-prob in {self.source}. The "
                "entry was made for other data: refill it (`reference_model.cache: auto`, or "
                "`fairseq2 lm preference_reference_logps`), or give every row its scores."
            ) from None
        return self.logps[torch.tensor(index, dtype=torch.long)]

    def attach(self, batch: PreferenceBatch) -> PreferenceBatch:
        """Set ``batch.reference_logps``: ``[k·N]``, ``[j·N + i]`` = response j of example i."""
        if batch.num_responses != self.num_responses:
            raise PreferenceDataError(
                f"{self.source} holds {self.num_responses} response(s) per example, but the "
                f"data has {batch.num_responses}."
            )
        batch.reference_logps = self.rows(batch.ids).t().reshape(-1)
        return batch


def merge_tables(tables: Sequence[ReferenceTable]) -> ReferenceTable:
    """One table from per-rank parts. An id seen twice must have the same numbers
    (a repeated row); different numbers mean two different rows share an id."""
    ids: list[str] = []
    keep: list[int] = []
    seen: dict[str, int] = {}
    logps = torch.cat([t.logps for t in tables]) if tables else torch.zeros(0, 2)
    counts_parts = [t.counts for t in tables if t.counts is not None]
    counts = torch.cat(counts_parts) if len(counts_parts) == len(tables) and tables else None
    row = 0
    for table in tables:
        for example_id in table.ids:
            first = seen.get(example_id)
            if first is None:
                seen[example_id] = row
                ids.append(example_id)
                keep.append(row)
            elif not torch.allclose(logps[first], logps[row], rtol=1e-5, atol=1e-4):
                raise PreferenceDataError(
                    f"Example id {example_id!r} appears twice in the data with different "
                    "content. Reference log-probs are stored by id: give every row a unique "
                    '"id" (or none: a missing id is derived from the row\'s text).'
                )
            row += 1
    index = torch.tensor(keep, dtype=torch.long)
    return ReferenceTable(ids, logps[index], None if counts is None else counts[index])
