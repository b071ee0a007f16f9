"""Reading jsonl rows so that a bad row is named by file and line number.

fairseq2's ``read_text`` streams bare lines (resumably, in native code). Line
numbers are only needed when a row is bad, so none are tracked: a row that fails
to parse or validate is located afterwards by scanning its file for the first
identical line (identical lines fail identically), and the error says
``<file>, line <n>`` and what to fix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from fairseq2.data.data_pipeline import DataPipeline, DataPipelineBuilder, read_sequence
from fairseq2.data.text import read_text

from fairseq2_preference.errors import PreferenceDataError


@dataclass(frozen=True)
class RowSchema:
    """The fields a row must carry: text fields (``responses`` non-blank) and,
    optionally, per-example numbers (e.g. a preference weight or margin), which
    reach the criterion as ``SequenceLogps.extras[<name>]``."""

    prompt: str
    responses: tuple[str, ...]
    numbers: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    """Yes/no fields (``true``/``false`` or 1/0), e.g. unpaired feedback's ``label``:
    they reach the criterion as 1.0/0.0 like ``numbers``."""

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.prompt, *self.responses)

    @property
    def values(self) -> tuple[str, ...]:
        """The per-example numbers a row carries: ``numbers`` and ``labels``."""
        return (*self.numbers, *self.labels)

    @property
    def is_pairwise(self) -> bool:
        return len(self.responses) == 2


PREFERENCE_ROW = RowSchema(prompt="src", responses=("tgt_chosen", "tgt_rejected"))

INSTRUCTION_ROW = RowSchema(prompt="src", responses=("tgt",))

UNPAIRED_ROW = RowSchema(prompt="src", responses=("tgt",), labels=("label",))
"""Unpaired feedback: a completion and whether it is desirable."""


def read_jsonl_rows(files: Sequence[Path], schema: RowSchema) -> DataPipelineBuilder:
    """A pipeline of validated rows ``{"id", <schema fields>...}`` from ``files``.

    Blank lines are skipped. A row without an ``id`` gets ``<file name>:<hash of the line>``,
    which stays the same however the data is shuffled or sharded.
    """
    return read_sequence(list(files)).yield_from(partial(_read_file, schema=schema))


def _read_file(file: Path, schema: RowSchema) -> DataPipeline:
    return (
        read_text(file, rtrim=True, skip_empty=True)
        .map(partial(parse_row, file=file, schema=schema))
        .and_return()
    )


def line_number(file: Path, text: str) -> int | None:
    """The 1-based number of the first line of ``file`` equal to ``text`` (right-trimmed)."""
    with file.open(encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, start=1):
            if line.rstrip() == text:
                return number
    return None


def parse_row(text: str, *, file: Path, schema: RowSchema) -> dict[str, Any]:
    """Parse and validate one jsonl line of ``file``."""
    expected = ", ".join(f'"{k}"' for k in (*schema.fields, *schema.values))
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as ex:
        where = _where(file, text)
        raise PreferenceDataError(
            f"{where}: not valid JSON ({ex.msg}, column {ex.colno}). Each line must be one "
            f"JSON object with the keys {expected}; fix or delete this line."
        ) from None
    if not isinstance(obj, dict):
        where = _where(file, text)
        raise PreferenceDataError(
            f"{where}: expected a JSON object with the keys {expected}, "
            f"found a {type(obj).__name__}."
        )
    row_id = obj.get("id")
    missing = [k for k in (*schema.fields, *schema.values) if k not in obj]
    if missing:
        raise PreferenceDataError(
            f"{_where(file, text, row_id)}: missing key(s) {', '.join(repr(k) for k in missing)}. "
            f"Every row needs {expected}.{_other_format_hint(schema, obj)}"
        )
    for key in schema.fields:
        if not isinstance(obj[key], str):
            raise PreferenceDataError(
                f"{_where(file, text, row_id)}: {key!r} must be a string, "
                f"but is a {type(obj[key]).__name__}."
            )
    for key in schema.responses:
        if not obj[key].strip():
            raise PreferenceDataError(
                f"{_where(file, text, row_id)}: {key!r} is empty. A response must have text; "
                "drop this row when preparing the data."
            )
    for key in schema.numbers:
        value = obj[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise PreferenceDataError(
                f"{_where(file, text, row_id)}: {key!r} must be a number, but is {value!r}."
            )
    for key in schema.labels:
        if obj[key] not in (True, False, 0, 1):
            raise PreferenceDataError(
                f"{_where(file, text, row_id)}: {key!r} must be true or false (or 1 or 0), "
                f"but is {obj[key]!r}."
            )
    row: dict[str, Any] = {k: obj[k] for k in (*schema.fields, *schema.numbers)}
    row.update({k: float(obj[k]) for k in schema.labels})
    if row_id is None:
        row_id = f"{file.name}:{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    row["id"] = str(row_id)
    return row


def _other_format_hint(schema: RowSchema, obj: dict[str, Any]) -> str:
    """Where rows of the wrong format belong, for preference schemas."""
    if not schema.is_pairwise:
        return ""
    found = ", ".join(repr(k) for k in obj) or "none"
    return (
        f" The row has {found}. Rows with prompt/chosen/rejected (strings or message "
        "lists, as on the Hugging Face hub) are read as they are by `dataset.family: "
        "hf_preference`, or converted to this format with datasets/hf_preference_data_prep.py."
    )


def _where(file: Path, text: str, row_id: object = None) -> str:
    number = line_number(file, text)
    where = f"{file}, line {number}" if number is not None else str(file)
    return where if row_id is None else f"{where} (example id {row_id!r})"
