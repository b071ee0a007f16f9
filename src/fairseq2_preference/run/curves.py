"""Loss, reward-accuracy and margin curves of one run, or of several side by side.

Written as ``curves.png`` into every run directory when training ends, and by
``fairseq2 lm plot_runs RUN_DIR [RUN_DIR ...]`` for any runs afterwards (e.g. a
β sweep: one colour per run, training solid, held-out dashed with markers).
Uses matplotlib's Agg backend: no display needed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.io import atomic_write_bytes
from fairseq2_preference.run.series import CURVES_FILE, METRICS, find_run_dir, read_series


def plot_runs(run_dirs: Sequence[Path], output: Path, labels: Sequence[str] | None = None) -> Path:
    """Draw the runs' curves into ``output`` (PNG); one panel per metric any run logged."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [
        (label, read_series(d))
        for label, d in zip(_labels(run_dirs, labels), run_dirs, strict=True)
    ]
    keys = [
        (key, title) for key, title, _ in METRICS if any(k == key for _, s in runs for _, k in s)
    ]
    if not keys:
        raise PreferenceConfigError(
            f"No metrics to plot in {', '.join(map(str, run_dirs))}: no metrics/train.jsonl "
            "or valid.jsonl rows with Loss, Rewards/Accuracies or Rewards/Margins."
        )
    figure, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 3.8), squeeze=False)
    for ax, (key, title) in zip(axes[0], keys, strict=True):
        for index, (label, series) in enumerate(runs):
            colour = f"C{index % 10}"
            if (train := series.get(("train", key))) is not None:
                ax.plot(train.steps, train.values, color=colour, label=f"{label} train")
            if (valid := series.get(("valid", key))) is not None:
                ax.plot(valid.steps, valid.values, "--o", color=colour, markersize=3,
                        label=f"{label} held-out")  # fmt: skip
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    atomic_write_bytes(output, buffer.getvalue())
    return output


def _labels(run_dirs: Sequence[Path], labels: Sequence[str] | None) -> list[str]:
    if labels:
        if len(labels) != len(run_dirs):
            raise PreferenceConfigError(
                f"--labels gives {len(labels)} label(s) for {len(run_dirs)} run(s); give one each."
            )
        return list(labels)
    if len(run_dirs) == 1:
        return [""]
    return [d.name for d in run_dirs]


def main(argv: Sequence[str]) -> None:
    """``fairseq2 lm plot_runs RUN_DIR [RUN_DIR ...] [--output FILE] [--labels ...]``."""
    parser = argparse.ArgumentParser(
        prog="fairseq2 lm plot_runs",
        description="Plot loss / reward accuracy / margin curves (train and held-out) of "
        "one or more training runs into a PNG.",
    )
    parser.add_argument("run_dirs", type=Path, nargs="+", help="training OUTPUT_DIRs")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"the PNG (default: RUN_DIR/{CURVES_FILE} for one run, ./runs.png for several)",
    )
    parser.add_argument("--labels", nargs="+", help="one legend label per run")
    args = parser.parse_args(argv)
    run_dirs = [find_run_dir(d) for d in args.run_dirs]
    default = run_dirs[0] / CURVES_FILE if len(run_dirs) == 1 else Path(os.getcwd(), "runs.png")
    print(f"Curves written to {plot_runs(run_dirs, args.output or default, args.labels)}")
