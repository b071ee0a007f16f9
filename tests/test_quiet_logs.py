"""A run's console says what matters; the run directory keeps everything."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fairseq2_preference.data import StaticBatching
from fairseq2_preference.data.dataset import ReadOptions
from fairseq2_preference.data.size import steps_per_epoch

from helpers import FAIRSEQ2, recipe_args, regime, run_cli


def test_steps_per_epoch() -> None:
    options = ReadOptions(batching=StaticBatching(8), num_accumulate=2)
    # 672 pairs over 2 ranks: 336 each, 42 batches of 8, 21 optimizer steps.
    assert steps_per_epoch(672, 2, options) == 21
    assert steps_per_epoch(673, 2, options) == math.ceil(math.ceil(337 / 8) / 2)
    assert steps_per_epoch(672, 1, ReadOptions()) == 672  # default: one pair per batch


@pytest.mark.slow
def test_a_piped_run_is_short_unwrapped_and_complete_on_disk(
    tmp_path: Path, tiny_assets: Path
) -> None:
    out = tmp_path / "run"
    overrides = [*regime(4, 2), "dataset.batch_size=8"]
    args = recipe_args(out, tiny_assets, overrides)
    args.remove("--no-rich")  # piped output alone must give plain, unwrapped lines
    result = run_cli([str(FAIRSEQ2), *args])
    assert result.returncode == 0, result.stderr[-3000:]
    console = result.stderr

    for noise in ("DeprecationWarning", "No calls to update()", "Environment Variables",
                  "'model': {", "(decoder_frontend)"):  # fmt: skip
        assert noise not in console
    train_rows = sum(
        1
        for file in (tiny_assets / "data" / "preference" / "train").glob("*.jsonl")
        for line in file.read_text().splitlines()
        if line.strip()
    )
    steps = math.ceil(train_rows / 8)
    assert f"Training data: {train_rows:,} examples" in console
    assert f"{steps:,} steps per epoch; 4 steps = {4 / steps:.2f} epochs" in console
    step_line = next(ln for ln in console.splitlines() if "Train Metrics (step 1)" in ln)
    assert "Loss:" in step_line and "Wall Time" in step_line  # one line, not wrapped
    assert len(console.splitlines()) < 120

    log = (out / "logs" / "rank_0.log").read_text()
    assert "Config: {" in log and "Environment Variables - " in log and "(decoder_frontend)" in log
