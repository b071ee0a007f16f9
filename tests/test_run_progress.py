"""Epoch-based runs know their length: steps per epoch counted, the progress bar given a total."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fairseq2.utils.progress import ProgressReporter, ProgressTask

from fairseq2_preference.data.size import show_total_steps

from helpers import train


class Recorder(ProgressReporter):
    def __init__(self) -> None:
        self.calls: list[tuple[str, int | None, int]] = []

    def create_task(
        self, name: str, total: int | None, completed: int = 0, *, start: bool = True
    ) -> ProgressTask:
        self.calls.append((name, total, completed))
        return None  # type: ignore[return-value]

    def __enter__(self) -> None:  # type: ignore[override]
        return None

    def __exit__(self, *args: object) -> None:
        return None


def test_the_train_bar_gets_the_total() -> None:
    reporter = Recorder()
    show_total_steps(reporter, 84)
    reporter.create_task("train", total=None, completed=3)  # as fairseq2's trainer calls it
    reporter.create_task("valid", total=None)
    reporter.create_task("train", total=10)
    assert reporter.calls == [("train", 84, 3), ("valid", None, 0), ("train", 10, 0)]


@pytest.mark.slow
def test_an_epoch_based_run_trains_the_counted_steps(tmp_path: Path, tiny_assets: Path) -> None:
    out = tmp_path / "run"
    metrics = train(
        out, tiny_assets, "regime.num_steps=null", "regime.num_data_epochs=1",
        "regime.validate_every_n_steps=100", "regime.checkpoint_every_n_steps=100",
    )  # fmt: skip
    log = (out / "logs" / "rank_0.log").read_text()
    counted = re.search(r"Counted (\d+) steps per epoch", log)
    assert counted is not None
    steps = int(counted.group(1))
    assert f"1 epoch(s) = {steps} steps" in log
    assert [m["Step"] for m in metrics] == list(range(1, steps + 1))
