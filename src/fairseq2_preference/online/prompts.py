"""The prompts online training samples from: ``{src, id?, ...}`` jsonl rows.

Any of our jsonl datasets serves (``generic_preference``, ``generic_instruction``,
a plain prompt file): ``src`` is the formatted prompt, exactly as training sees
it; each distinct ``src`` is one prompt (a preference set's repeated prompts
count once), and the row's other fields ride along for the judge — ``expected``
for the ``contains`` rule, ``answer`` for ``gsm8k``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairseq2_preference.data.source import JsonlSource
from fairseq2_preference.errors import PreferenceDataError

DROPPED_FIELDS = ("tgt", "tgt_chosen", "tgt_rejected", "label")
"""Responses of the source dataset: online training makes its own."""


def load_prompts(path: str | Path, split: str) -> list[dict[str, Any]]:
    """The distinct prompts of ``path`` (its ``split`` sub-directory if it has splits),
    in file order; each row keeps its ``id`` (default ``<file>:<line>``)."""
    source = JsonlSource.open(path)
    prompts: dict[str, dict[str, Any]] = {}
    for file in source.files(split):
        for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            where = f"{file}, line {number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise PreferenceDataError(f"{where}: not valid JSON ({error.msg}).") from None
            if not isinstance(row, dict) or not isinstance(row.get("src"), str):
                raise PreferenceDataError(
                    f"{where}: a prompt row needs a 'src' string (the formatted prompt)."
                )
            if not row["src"].strip():
                raise PreferenceDataError(f"{where}: 'src' is empty.")
            row = {k: v for k, v in row.items() if k not in DROPPED_FIELDS}
            row.setdefault("id", f"{file.name}:{number}")
            prompts.setdefault(row["src"], row)
    if not prompts:
        raise PreferenceDataError(f"{source.path} [{split}]: no prompts.")
    return list(prompts.values())
