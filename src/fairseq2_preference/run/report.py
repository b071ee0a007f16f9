"""What a finished run says: final and best metrics, where its checkpoint is, what to run next.

Read from the files fairseq2 writes (``metrics/{train,valid}.jsonl``,
``checkpoints/step_<N>``, ``config.yaml``), so it works for any run directory,
finished or interrupted, and after the fact (``fairseq2 lm plot_runs``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.run.curves import plot_runs
from fairseq2_preference.run.series import CURVES_FILE, METRICS, SPLITS, find_run_dir, read_series


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
    elif _run_config(run_dir).get("lora") is not None:  # adapters only: export, then evaluate
        lines += [
            f"Last checkpoint: {checkpoint} (LoRA adapters)",
            f"  export:   fairseq2 lm export_hf {run_dir} {run_dir / 'hf'}   (merged; "
            "--peft: the adapters in PEFT's format)",
            f"  evaluate: fairseq2 lm alpaca_eval {run_dir / 'alpaca_eval'} --config "
            f"model.path={run_dir / 'hf'}",
        ]
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


def _run_config(run_dir: Path) -> dict[str, Any]:
    file = run_dir / "config.yaml"
    config: Any = yaml.safe_load(file.read_text()) if file.is_file() else None
    return config if isinstance(config, dict) else {}


def _tokenizer_name(run_dir: Path) -> str:
    tokenizer = _run_config(run_dir).get("tokenizer")
    name = tokenizer.get("name") if isinstance(tokenizer, dict) else None
    return str(name or "<tokenizer card>")


def report_after_training(output_dir: Path) -> None:
    """After a training command: draw ``curves.png``, print the summary and keep it in
    ``summary.txt`` (rank 0 only). A failure here is reported, never fatal: the run is done."""
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
