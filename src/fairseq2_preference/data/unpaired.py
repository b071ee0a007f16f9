"""Unpaired examples for KTO-style losses, from unpaired rows or from preference pairs.

:class:`UnpairedDataset` wraps any dataset of the recipe: rows of unpaired
feedback (``generic_unpaired``, ``hf_unpaired``: a prompt, a completion, a
label) are taken as they are; each preference pair becomes two examples, the
chosen response desirable and the rejected one not (as TRL does).

Each example also carries a *mismatched* completion, another example's, for
the KL reference point: the partners are fixed once per split, in the order
the rows are read (each row takes the next row's completion with another
prompt), before shuffling and sharding. So the set of mismatched pairs of an
optimizer step does not depend on how its examples are split over ranks and
micro-batches, and neither does the KL estimate over it. The example is then
pair-shaped: ``tgt_chosen`` its completion, ``tgt_rejected`` the mismatched one,
and the ``label`` among its numbers; collated, the first half of a batch holds
the completions and the second half the mismatched ones. The split's rows are
held in memory (their text) for the pairing.

:class:`StepGroupReader` lets a unit see all micro-batches of its optimizer step.
"""

from __future__ import annotations

from typing import Any

from fairseq2.data.data_pipeline import DataPipelineBuilder, read_sequence
from fairseq2.data.tokenizers import Tokenizer
from typing_extensions import override

from fairseq2_preference.data.batch import PreferenceBatch, StepGroup
from fairseq2_preference.data.dataset import PreferenceDataset, ReadOptions
from fairseq2_preference.data.hf_dataset import chat_or_plain_encoder
from fairseq2_preference.data.jsonl import RowSchema
from fairseq2_preference.data.reader import WrappedReader
from fairseq2_preference.errors import PreferenceDataError

LABEL = "label"

UNPAIRED_PAIR_SHAPE = RowSchema(
    prompt="src", responses=("tgt_chosen", "tgt_rejected"), labels=(LABEL,)
)
"""An unpaired example as the pipeline carries it: completion, mismatched completion."""


class UnpairedDataset(PreferenceDataset):
    """The unpaired examples of ``inner`` (see the module docstring)."""

    schema = UNPAIRED_PAIR_SHAPE

    def __init__(self, inner: PreferenceDataset) -> None:
        self.inner = inner

    @override
    def read_rows(self, split: str) -> DataPipelineBuilder:
        rows = [row for pair in self.inner.read_rows(split).and_return() for row in unpair(pair)]
        if len({prompt_key(row) for row in rows}) < 2:
            raise PreferenceDataError(
                f"{self.inner.location} [{split}]: the KL reference point needs completions "
                "of at least two different prompts; add data."
            )
        return read_sequence(with_mismatched_completions(rows))

    @override
    def has_split(self, split: str) -> bool:
        return self.inner.has_split(split)

    @property
    @override
    def location(self) -> str:
        return self.inner.location

    @override
    def files(self, split: str) -> list[Any]:
        return self.inner.files(split)

    @override
    def encoder(self, tokenizer: Tokenizer, options: ReadOptions) -> Any:
        """A pair-shaped row encoded like a preference pair: plain text as it is, a
        conversation with the tokenizer's chat template (as ``hf_preference``)."""
        encode_plain = PreferenceDataset.encoder(self, tokenizer, options)
        return chat_or_plain_encoder(encode_plain, tokenizer, (LABEL,))


def unpair(row: dict[str, Any]) -> list[dict[str, Any]]:
    """A row as unpaired examples ``{id, src|chat, tgt, label}``: itself, or a pair's two."""
    context = {k: v for k, v in row.items() if k in ("src", "chat")}
    if LABEL not in row and "tgt_rejected" not in row:
        raise PreferenceDataError(
            f"Example id {row['id']!r} has one response and no {LABEL!r}: instruction rows "
            "carry no feedback. An unpaired criterion (kto) trains on generic_unpaired / "
            "hf_unpaired rows (prompt, completion, label) or on preference pairs."
        )
    if "tgt_chosen" in row and "tgt_rejected" in row:
        return [
            {**context, "id": f"{row['id']}/chosen", "tgt": row["tgt_chosen"], LABEL: 1.0},
            {**context, "id": f"{row['id']}/rejected", "tgt": row["tgt_rejected"], LABEL: 0.0},
        ]
    return [{**context, "id": row["id"], "tgt": row["tgt"], LABEL: float(row[LABEL])}]


def prompt_key(row: dict[str, Any]) -> str:
    return str(row.get("src", row.get("chat")))


def with_mismatched_completions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair-shaped rows: each row's completion, and the next row's (cyclically) whose
    prompt differs, as TRL's KL dataset does with a +1 offset within a batch."""
    out = []
    for index, row in enumerate(rows):
        step = 1
        while prompt_key(rows[(index + step) % len(rows)]) == prompt_key(row):
            step += 1
        partner = rows[(index + step) % len(rows)]
        shaped = {k: v for k, v in row.items() if k != "tgt"}
        out.append({**shaped, "tgt_chosen": row["tgt"], "tgt_rejected": partner["tgt"]})
    return out


class StepGroupReader(WrappedReader[PreferenceBatch]):
    """Tags every batch of an optimizer step with the :class:`StepGroup` of that step."""

    @override
    def __next__(self) -> list[PreferenceBatch]:
        batches = next(self._inner)
        group = StepGroup(list(batches))
        for batch in batches:
            batch.step = group
        return batches
