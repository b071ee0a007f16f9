"""The metric series a run logged, read back from ``metrics/{train,valid}.jsonl``.

What the run report (:mod:`.report`) and the curves (:mod:`.curves`) both read:
which metrics count (:data:`METRICS`), where a run's files are, and each
metric's values by step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

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
