"""What a finished run says: final and best metrics, where its checkpoint is, what to run next.

Read from the files fairseq2 writes (``metrics/{train,valid}.jsonl``,
``checkpoints/step_<N>``, ``config.yaml``), so it works for any run directory,
finished or interrupted, and after the fact (``fairseq2 lm plot_runs``).
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.errors import PreferenceConfigError

CURVES_FILE = "curves.png"

METRICS = (
    ("Loss", "loss", min),
    ("Rewards/Accuracies", "reward accuracy", max),
    ("Rewards/Margins", "reward margin", max),
)
"""(metric key, label, which value is best)."""

SPLITS = ("train", "valid")


@dataclass(frozen=True)
class Series:
    steps: list[int]
    values: list[float]


def find_run_dir(output_dir: Path) -> Path:
    """``output_dir`` itself, or its newest fairseq2 sweep sub-directory (``ws_<N>.<hash>``)."""
    if (output_dir / "metrics").is_dir():
        return output_dir
    sweeps = sorted(output_dir.glob("*/metrics"), key=lambda p: p.stat().st_mtime)
    if not sweeps:
        raise PreferenceConfigError(
            f"{output_dir} holds no training run: expected {output_dir / 'metrics'} "
            "(fairseq2 writes metrics/train.jsonl there once a step has been published)."
        )
    return sweeps[-1].parent


def read_series(run_dir: Path) -> dict[tuple[str, str], Series]:
    """``(split, metric key) → Series`` for each metric of :data:`METRICS` the run logged."""
    series: dict[tuple[str, str], Series] = {}
    for split in SPLITS:
        file = run_dir / "metrics" / f"{split}.jsonl"
        rows = [json.loads(ln) for ln in file.read_text().splitlines()] if file.is_file() else []
        for key, _, _ in METRICS:
            points = [(int(r["Step"]), float(r[key])) for r in rows if key in r and "Step" in r]
            if points:
                series[split, key] = Series([s for s, _ in points], [v for _, v in points])
    return series


def last_checkpoint(run_dir: Path) -> Path | None:
    steps = [
        (int(m.group(1)), p)
        for p in (run_dir / "checkpoints").glob("step_*")
        if (m := re.fullmatch(r"step_(\d+)", p.name)) and p.is_dir()
    ]
    return max(steps)[1] if steps else None


def summary(run_dir: Path) -> str:
    """A few lines: each metric's final and best value per split, the checkpoint, next steps."""
    series = read_series(run_dir)
    lines = [f"Run summary ({run_dir}):", f"  {'':<24}{'final':>12}{'best':>12}  (step)"]
    for split in SPLITS:
        for key, label, best_of in METRICS:
            s = series.get((split, key))
            if s is None:
                continue
            best = best_of(s.values)
            step = s.steps[s.values.index(best)]
            name = f"{'held-out' if split == 'valid' else 'train'} {label}"
            lines.append(f"  {name:<24}{s.values[-1]:>12.4f}{best:>12.4f}  ({step})")
    checkpoint = last_checkpoint(run_dir)
    if checkpoint is None:
        lines.append("No checkpoint was saved (see regime.checkpoint_every_n_steps).")
    else:
        tokenizer = _tokenizer_name(run_dir)
        lines += [
            f"Last checkpoint: {checkpoint}",
            f"  export:   fairseq2 lm export_hf {run_dir} {run_dir / 'hf'}",
            f"  evaluate: fairseq2 lm alpaca_eval {run_dir / 'alpaca_eval'} --config "
            f"model.name=last_checkpoint tokenizer.name={tokenizer} "
            f"common.assets.prev_checkpoint_dir={run_dir / 'checkpoints'}",
        ]
    if (run_dir / CURVES_FILE).is_file():
        lines.append(f"Curves: {run_dir / CURVES_FILE}")
    return "\n".join(lines)


def _tokenizer_name(run_dir: Path) -> str:
    file = run_dir / "config.yaml"
    config: Any = yaml.safe_load(file.read_text()) if file.is_file() else None
    tokenizer = config.get("tokenizer") if isinstance(config, dict) else None
    name = tokenizer.get("name") if isinstance(tokenizer, dict) else None
    return str(name or "<tokenizer card>")


def report_after_training(output_dir: Path) -> None:
    """After a training command: draw ``curves.png``, print the summary and keep it in
    ``summary.txt`` (rank 0 only). A failure here is reported, never fatal: the run is done."""
    from fairseq2_preference.curves import plot_runs
    from fairseq2_preference.io import atomic_write_text

    if int(os.environ.get("RANK", "0")) != 0:
        return
    try:
        run_dir = find_run_dir(output_dir)
    except PreferenceConfigError as ex:
        print(f"No run summary: {ex}", file=sys.stderr)
        return
    try:
        plot_runs([run_dir], run_dir / CURVES_FILE)
    except (PreferenceConfigError, OSError, ValueError, ImportError) as ex:
        print(f"No curves drawn: {ex}", file=sys.stderr)
    text = summary(run_dir)
    atomic_write_text(run_dir / "summary.txt", text + "\n")
    print(text)
