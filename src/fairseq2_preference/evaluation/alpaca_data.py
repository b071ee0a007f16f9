"""The AlpacaEval instructions and reference outputs: from the hub, or local files.

Both default to the files of the ``tatsu-lab/alpaca_eval`` dataset repository,
fetched with ``huggingface_hub`` (its loading script no longer runs with
``datasets>=4``). The set is CC-BY-NC-4.0 and is not shipped here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fairseq2_preference.offline import from_hub

HUB_REPO = "tatsu-lab/alpaca_eval"
INSTRUCTIONS_FILE = "alpaca_eval.json"
REFERENCE_FILE = "alpaca_eval_gpt4_baseline.json"
"""GPT-4 Turbo outputs, the AlpacaEval 2 baseline."""

FULL_SET_SIZE = 805

LOCAL_ALTERNATIVES = {
    INSTRUCTIONS_FILE: "Give a local copy with "
    "`--config alpaca_eval.instructions=<alpaca_eval.json>`.",
    REFERENCE_FILE: "Give a local copy with --reference_outputs <alpaca_eval_gpt4_baseline.json> "
    "(in `lm alpaca_eval`: `--config judge.reference_outputs=<file>`).",
}


def hub_file(filename: str) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id=HUB_REPO, filename=filename, repo_type="dataset"))


def load_records(path: str | Path | None, default_file: str) -> list[dict[str, Any]]:
    """A JSON list or jsonl of objects with an ``instruction`` string."""
    if path is None:
        with from_hub(f"AlpacaEval's {default_file}", LOCAL_ALTERNATIVES[default_file]):
            file = hub_file(default_file)
    else:
        file = Path(path).expanduser()
    text = file.read_text(encoding="utf-8")
    records: list[dict[str, Any]]
    if text.lstrip().startswith("["):
        records = json.loads(text)
    else:
        records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for i, record in enumerate(records):
        if not isinstance(record, dict) or not isinstance(record.get("instruction"), str):
            raise ValueError(f"{file}, record {i}: needs an 'instruction' string.")
    return records


def load_instructions(path: str | Path | None) -> list[dict[str, str]]:
    """``[{"instruction", "dataset"}]`` in the file's order (AlpacaEval's canonical order)."""
    return [
        {"instruction": r["instruction"], "dataset": str(r.get("dataset", "custom"))}
        for r in load_records(path, INSTRUCTIONS_FILE)
    ]


def load_reference_outputs(path: str | Path | None) -> list[dict[str, Any]]:
    records = load_records(path, REFERENCE_FILE)
    for i, record in enumerate(records):
        if not isinstance(record.get("output"), str):
            raise ValueError(f"Reference outputs, record {i}: needs an 'output' string.")
    return records
