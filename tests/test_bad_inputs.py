"""The bad-input table: each user mistake exits non-zero with one clear paragraph
naming the file / line / key and what to do, never a stack trace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import FAIRSEQ2, recipe_args, run_cli, train, write_jsonl

GOOD = {"src": "a question", "tgt_chosen": "a good answer", "tgt_rejected": "a bad one"}

Setup = Callable[[Path, Path], list[str]]


def data_at(path: Path) -> list[str]:
    return ["dataset.name=null", "dataset.family=generic_preference",
            f"dataset.config_overrides.path={path}"]  # fmt: skip


def empty_file(tmp: Path, assets: Path) -> list[str]:
    return data_at(write_jsonl(tmp / "data" / "train.jsonl", []))


def all_too_long(tmp: Path, assets: Path) -> list[str]:
    rows = [{**GOOD, "id": f"r{i}", "tgt_chosen": "word " * 200} for i in range(6)]
    return data_at(write_jsonl(tmp / "data" / "train.jsonl", rows))


CASES: list[tuple[str, Setup, list[str]]] = [
    ("empty file", empty_file,
     ["No usable training data in", "it holds no rows", "Nothing was trained"]),
    ("all pairs over max_seq_len", all_too_long,
     ["No usable training data in", "all 6 row(s) read were dropped for falling outside "
      "[min_seq_len=1, max_seq_len=64]", "raise `dataset.max_seq_len`"]),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("setup", "messages"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_paragraph(
    tmp_path: Path, tiny_assets: Path, setup: Setup, messages: list[str]
) -> None:
    overrides = setup(tmp_path, tiny_assets)
    result = run_cli([str(FAIRSEQ2), *recipe_args(tmp_path / "run", tiny_assets, overrides)])
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    for message in messages:
        assert message in output, output[-3000:]
    assert "Traceback" not in output and "file a bug report" not in output
    assert not list((tmp_path / "run").glob("checkpoints/step_*"))


@pytest.mark.slow
def test_identical_pairs_and_repeated_ids_are_counted_and_reported(
    tmp_path: Path, tiny_assets: Path
) -> None:

    rows = [{**GOOD, "id": f"r{i}", "src": f"question {i}"} for i in range(8)]
    rows[2] = {**rows[2], "tgt_rejected": rows[2]["tgt_chosen"]}
    rows[5] = {**rows[5], "id": "r1"}
    out = tmp_path / "run"
    train(out, tiny_assets, *data_at(write_jsonl(tmp_path / "d" / "train.jsonl", rows)),
          "regime.num_steps=3", "regime.validate_every_n_steps=3",
          "regime.checkpoint_every_n_steps=3", "dataset.batch_size=4")  # fmt: skip
    log = (out / "logs" / "rank_0.log").read_text()
    assert "1 pair(s) have identical chosen and rejected responses and carry no " in log
    assert "(ids r2)" in log
    assert "1 row(s) repeat an earlier id (ids r1)" in log
