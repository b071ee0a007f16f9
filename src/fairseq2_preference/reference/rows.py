"""Reference log-probs carried by the data rows, as fairseq2 0.4.6 accepted them.

A preference row may carry the reference model's summed log-probs of its two
responses in ``reference_score_chosen`` and ``reference_score_rejected``. With
``reference_model: null`` and a criterion that needs a reference, the recipe
reads them into a :class:`ReferenceTable` and trains with no reference model,
exactly as from the cache. Either every row of the data carries both scores or
none does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from fairseq2_preference.data import RowSchema
from fairseq2_preference.data.jsonl import line_number, parse_row
from fairseq2_preference.errors import PreferenceDataError
from fairseq2_preference.reference.table import ReferenceTable, merge_tables

SCORE_FIELDS = ("reference_score_chosen", "reference_score_rejected")


def read_row_scores(files: Sequence[Path], schema: RowSchema) -> ReferenceTable | None:
    """The scores of every row of ``files``, or ``None`` when no row has any."""
    if len(schema.responses) != len(SCORE_FIELDS):
        return None
    ids: list[str] = []
    scores: list[list[float]] = []
    first: tuple[Path, str] | None = None
    for file in files:
        with file.open(encoding="utf-8") as f:
            for line in f:
                text = line.rstrip()
                if not text:
                    continue
                row = parse_row(text, file=file, schema=schema)
                obj = json.loads(text)
                present = [name for name in SCORE_FIELDS if name in obj]
                if first is None:
                    first = (file, row["id"])
                    if not present:
                        return None
                if len(present) != len(SCORE_FIELDS):
                    raise _missing(file, text, row["id"], first)
                values = [obj[name] for name in SCORE_FIELDS]
                if not all(_is_number(v) for v in values):
                    raise PreferenceDataError(
                        f"{file}, line {line_number(file, text)} (example id {row['id']!r}): "
                        f"{SCORE_FIELDS[0]!r} and {SCORE_FIELDS[1]!r} must be finite numbers "
                        f"(summed reference log-probs), but are {values[0]!r}, {values[1]!r}."
                    )
                ids.append(row["id"])
                scores.append([float(v) for v in values])
    if not ids:
        return None
    table = merge_tables([ReferenceTable(ids, torch.tensor(scores, dtype=torch.float32))])
    table.source = "the data rows' reference scores"
    return table


def _missing(file: Path, text: str, row_id: str, first: tuple[Path, str]) -> PreferenceDataError:
    return PreferenceDataError(
        f"{file}, line {line_number(file, text)} (example id {row_id!r}): the row lacks "
        f"{' or '.join(repr(n) for n in SCORE_FIELDS)}, but the first row ({first[0]}, example "
        f"id {first[1]!r}) carries reference scores. Either every row carries both scores "
        "or none does (then set `reference_model` to compute them)."
    )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
