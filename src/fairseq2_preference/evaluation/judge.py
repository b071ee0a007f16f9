"""Judging model outputs with ``alpaca_eval``, and the results table.

alpaca-eval does the judging and the metrics; this module only prepares its
inputs and keeps it from writing anywhere but the output directory (no
annotation cache, no GLM weights in site-packages). Reported per run:

* WR — ``alpaca_eval.metrics.get_winrate``: the mean preference for the model
  over the reference, × 100 (draws count half);
* LC WR — ``get_length_controlled_winrate``, only when the full 805-instruction
  set was judged (its length model is fitted per instruction) and the
  ``df_gamed.csv`` it needs can be fetched; otherwise it is left out, and the
  summary says why. LC WR from a judge other than GPT-4 Turbo is not comparable
  to the public leaderboard;
* the average output length in characters.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.evaluation.alpaca_data import (
    FULL_SET_SIZE,
    hub_file,
    load_reference_outputs,
)
from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.offline import require_reachable

DEFAULT_ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"

CREDENTIAL_VARIABLES = (
    "OPENAI_API_KEY", "OPENAI_API_KEYS", "OPENAI_CLIENT_CONFIG_PATH", "ANTHROPIC_API_KEY",
    "GOOGLE_API_KEY", "COHERE_API_KEY",
)  # fmt: skip

TABLE_COLUMNS = ("LC WR", "WR", "Loss Function", "Training Config", "Epoch", "Model Initialization")
"""The columns of the seed's results table (the markdown file); the CSV adds more."""


@dataclass(kw_only=True)
class JudgeSection:
    """How ``fairseq2 lm alpaca_eval`` judges the outputs it generated."""

    enabled: bool = True
    """Judge after generating (on rank 0). Outputs are saved first either way."""

    annotator: str = DEFAULT_ANNOTATOR
    """An alpaca_eval annotator config: a built-in name or a path to a configs.yaml."""

    reference_outputs: str | None = None
    """Local JSON of reference outputs; default: the hub's GPT-4 Turbo baseline."""

    base_url: str | None = None
    """An OpenAI-compatible server for the judge (e.g. a local vLLM)."""

    results_table: str = "alpaca_eval_results"
    """Results are appended to ``<results_table>.md`` and ``.csv``."""

    loss_function: str | None = None
    """Results-table fields; by default read from the training run of the checkpoint."""
    training_config: str | None = None
    epoch: int | str | None = None
    model_initialization: str | None = None


@dataclass
class JudgeResult:
    win_rate: float
    standard_error: float
    n_total: int
    avg_length: int
    length_controlled_winrate: float | None = None
    notes: list[str] = field(default_factory=list)


def judge(model_outputs: Path, output_dir: Path, section: JudgeSection) -> JudgeResult:
    """Judge ``model_outputs`` (AlpacaEval JSON) against the reference outputs."""
    import pandas as pd

    outputs = json.loads(model_outputs.read_text(encoding="utf-8"))
    references = _matching_references(outputs, section.reference_outputs, model_outputs)
    _configure_client(section.base_url)
    require_reachable(
        os.environ.get("OPENAI_API_BASE") or "https://api.openai.com",
        f"The judge ({section.annotator})",
        f"{model_outputs} is kept: judge it later with `fairseq2 lm judge_alpaca_eval "
        f"{model_outputs}`, or point --base_url (judge.base_url) at a reachable "
        "OpenAI-compatible server.",
    )

    import alpaca_eval

    _, annotations = alpaca_eval.evaluate(
        model_outputs=pd.DataFrame(outputs),
        reference_outputs=pd.DataFrame(references),
        annotators_config=section.annotator,
        output_path=output_dir,
        precomputed_leaderboard=None,
        is_return_instead_of_print=True,
        fn_metric="get_winrate",  # LC WR is computed in summarize(), where it applies
        sort_by="win_rate",
        is_cache_leaderboard=False,
        caching_path=None,
    )
    return summarize(pd.DataFrame(annotations))


def summarize(annotations: Any) -> JudgeResult:
    """WR, LC WR (full set only) and average length of judged annotations."""
    from alpaca_eval.metrics import get_length_controlled_winrate, get_winrate

    winrate = get_winrate(annotations)
    result = JudgeResult(
        win_rate=float(winrate["win_rate"]),
        standard_error=float(winrate["standard_error"]),
        n_total=int(winrate["n_total"]),
        avg_length=int(annotations["output_2"].str.len().mean()),
    )
    if len(annotations) != FULL_SET_SIZE:
        result.notes.append(
            f"LC WR is defined on the full {FULL_SET_SIZE}-instruction set only; "
            f"{len(annotations)} were judged."
        )
        return result
    try:
        hub_file("df_gamed.csv")
    except OSError as ex:
        result.notes.append(
            f"LC WR not computed: alpaca_eval's df_gamed.csv is unavailable ({ex})."
        )
        return result
    lc = get_length_controlled_winrate(
        annotations.copy(), save_weights_dir=None, is_add_glm_preference_inplace=False
    )
    result.length_controlled_winrate = float(lc["length_controlled_winrate"])
    return result


def _matching_references(
    outputs: Sequence[Mapping[str, Any]], path: str | None, model_outputs: Path
) -> list[Mapping[str, Any]]:
    """The reference output of each model output, in the same order."""
    by_instruction = {r["instruction"]: r for r in load_reference_outputs(path)}
    missing = [o["instruction"] for o in outputs if o["instruction"] not in by_instruction]
    if missing:
        raise PreferenceConfigError(
            f"{len(missing)} instruction(s) of {model_outputs} have no reference output "
            f"(e.g. {missing[0][:60]!r}); judge with the reference outputs of the same "
            "instruction set (judge.reference_outputs)."
        )
    return [by_instruction[o["instruction"]] for o in outputs]


def _configure_client(base_url: str | None) -> None:
    """Point alpaca-eval's OpenAI client at ``base_url``; it reads the environment when
    its decoder is first imported, so this must run before the first evaluation."""
    if base_url is not None:
        os.environ["OPENAI_API_BASE"] = base_url
        if not os.environ.get("OPENAI_API_KEY"):
            os.environ["OPENAI_API_KEY"] = (
                "sk-local"  # the client requires one; local servers ignore it
            )
    elif not any(os.environ.get(name) for name in CREDENTIAL_VARIABLES):
        raise PreferenceConfigError(
            "The judge needs API credentials: set OPENAI_API_KEY (AlpacaEval 2's judge is "
            "GPT-4 Turbo), or point judge.base_url at an OpenAI-compatible server."
        )


# -- results table ----------------------------------------------------------------


def run_row(section: JudgeSection, model: str, checkpoint_dir: str | None) -> dict[str, str]:
    """The results-table fields, defaulting to what the checkpoint's training run says."""
    row = {"Loss Function": "", "Training Config": "", "Epoch": "", "Model Initialization": model}
    run_config = Path(checkpoint_dir).parent / "config.yaml" if checkpoint_dir else None
    if run_config is not None and run_config.is_file():
        trained = yaml.safe_load(run_config.read_text())
        criterion = (trained.get("criterion") or {}).get("name", "")
        row["Loss Function"] = str(criterion).upper()
        row["Training Config"] = str(run_config)
        init = (trained.get("model") or {}).get("name") or ""
        previous = ((trained.get("common") or {}).get("assets") or {}).get("prev_checkpoint_dir")
        row["Model Initialization"] = f"{init} of {Path(previous).parent}" if previous else init
    for key, value in (
        ("Loss Function", section.loss_function),
        ("Training Config", section.training_config),
        ("Epoch", None if section.epoch is None else str(section.epoch)),
        ("Model Initialization", section.model_initialization),
    ):
        if value is not None:
            row[key] = value
    return row


def append_result(
    table: Path, result: JudgeResult, row: Mapping[str, str], extra: Mapping[str, str]
) -> tuple[Path, Path]:
    """Add a row to ``<table>.csv`` and rewrite ``<table>.md`` from it (both atomically)."""
    csv_file, md_file = table.with_suffix(".csv"), table.with_suffix(".md")
    rows = list(csv.DictReader(io.StringIO(csv_file.read_text()))) if csv_file.is_file() else []
    lc = result.length_controlled_winrate
    rows.append(
        {
            "LC WR": "n/a" if lc is None else f"{lc:.3f}",
            "WR": f"{result.win_rate:.3f}",
            **row,
            "Standard Error": f"{result.standard_error:.3f}",
            "Instructions": str(result.n_total),
            "Average Length": str(result.avg_length),
            **extra,
        }
    )
    columns = list(dict.fromkeys(key for r in rows for key in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(csv_file, buffer.getvalue())

    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + " --- |" * len(TABLE_COLUMNS)]
    for r in rows:
        cells = [r.get(c, "") for c in TABLE_COLUMNS]
        config = r.get("Training Config", "")
        if config:
            cells[3] = f"[{Path(config).name}]({config})"
        lines.append("| " + " | ".join(cells) + " |")
    atomic_write_text(md_file, "\n".join(lines) + "\n")
    return csv_file, md_file


def report(result: JudgeResult, files: Sequence[Path]) -> str:
    lc = result.length_controlled_winrate
    lines = [
        f"AlpacaEval: WR {result.win_rate:.3f} (± {result.standard_error:.3f}), "
        f"LC WR {'n/a' if lc is None else f'{lc:.3f}'}, "
        f"{result.n_total} instructions, average length {result.avg_length} characters",
        *result.notes,
        *(f"results: {f}" for f in files),
    ]
    return "\n".join(lines)
