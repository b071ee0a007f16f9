"""Data preparation rebuilds all-or-nothing, and never trains on a dev prompt."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from fairseq2_preference.data_prep import layout, writer
from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.formatting import make_formatter
from fairseq2_preference.data_prep.writer import PrepRequest, PrepResult, prepare

from helpers import read_jsonl_dir


def examples() -> tuple[list[Example], list[Example]]:
    """20 conversation groups; groups 3 and 13 ask the same question."""
    pairs, instructions = [], []
    for g in range(20):
        prompt = "What is the same question?" if g in (3, 13) else f"Question number {g}?"
        turns = (("user", prompt),)
        pairs.append(Example(f"p{g}", f"g{g}", turns, f"good {g}", f"bad {g}"))
        instructions.append(Example(f"i{g}", f"g{g}", turns, f"good {g}"))
    return pairs, instructions


def build(drops: Counter[str]) -> tuple[list[Example], list[Example]]:
    return examples()


def run(tmp: Path, seed: int, dev_size: int = 5) -> PrepResult:
    request = PrepRequest(
        name="toy", data_dir=tmp / "data", card_dir=tmp / "cards", source="toy",
        options={}, formatter=make_formatter(None), dev_size=dev_size, seed=seed,
    )  # fmt: skip
    return prepare(request, build, log=lambda _: None)


def snapshot(data: Path) -> dict[str, str]:
    return {
        str(f.relative_to(data)): f.read_text()
        for f in sorted(data.rglob("*"))
        if f.is_file() and not any(p.startswith(".") for p in f.relative_to(data).parts)
    }


def srcs(path: Path) -> set[str]:
    return {row["src"] for row in read_jsonl_dir(path)} if path.exists() else set()


def split_of_rows(data: Path) -> dict[str, str]:
    return {
        row["id"]: split
        for kind in ("preference", "instruction")
        for split in ("train", "dev")
        for row in (read_jsonl_dir(data / kind / split) if (data / kind / split).exists() else [])
    }


class Interrupt(BaseException):
    """Stands for the process being killed."""


def interrupt_on_call(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, n: int) -> None:
    original = getattr(target, name)
    calls = {"n": 0}

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            raise Interrupt()
        return original(*args, **kwargs)

    monkeypatch.setattr(target, name, flaky)


def test_a_rebuild_interrupted_while_writing_keeps_the_previous_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(tmp_path, seed=0)
    before = snapshot(tmp_path / "data")
    # Killed after the preference files of the new build are written.
    interrupt_on_call(monkeypatch, layout, "atomic_write_jsonl", 3)
    with pytest.raises(Interrupt):
        run(tmp_path, seed=1)
    monkeypatch.undo()
    assert snapshot(tmp_path / "data") == before
    assert run(tmp_path, seed=0).up_to_date


def test_a_rebuild_interrupted_while_swapping_is_rebuilt_not_up_to_date(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(tmp_path, seed=0)
    first = split_of_rows(tmp_path / "data")
    # Killed between the renames: preference replaced, instruction not yet.
    interrupt_on_call(monkeypatch, Path, "rename", 3)
    with pytest.raises(Interrupt):
        run(tmp_path, seed=1)
    monkeypatch.undo()
    assert not (tmp_path / "data" / "prep.json").exists()
    again = run(tmp_path, seed=0)
    assert not again.up_to_date
    assert split_of_rows(tmp_path / "data") == first
    # Every kind agrees on each group's split: no mix of the two builds.
    splits = split_of_rows(tmp_path / "data")
    assert all(splits.get(f"p{g}") == splits.get(f"i{g}") for g in range(20))


@pytest.mark.parametrize("seed", range(6))
def test_no_dev_prompt_is_ever_in_a_training_file(tmp_path: Path, seed: int) -> None:
    result = run(tmp_path, seed=seed, dev_size=8)
    data = tmp_path / "data"
    dev = srcs(data / "preference" / "dev") | srcs(data / "instruction" / "dev")
    train = srcs(data / "preference" / "train") | srcs(data / "instruction" / "train")
    assert dev and train and not dev & train
    # When the split separates the twins, the training one is dropped, and counted.
    dropped = {"p3", "p13"} - set(split_of_rows(data))
    assert len(dropped) == result.drops.get("pairs: training prompt is also a dev prompt", 0)
    assert len(dropped) <= 1


def test_the_check_refuses_rows_that_leak_a_dev_prompt() -> None:
    outputs = {
        "preference": {"dev": [{"id": "a", "src": "q"}], "train": []},
        "instruction": {"train": [{"id": "b", "src": "q"}]},
    }
    with pytest.raises(RuntimeError, match=r"1 training row\(s\) repeat a dev prompt \(ids b\)"):
        writer.check_no_dev_prompt_in_train(outputs)
