"""The bad-input table: each user mistake exits non-zero with one clear paragraph
naming the file / line / key and what to do, never a stack trace."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import REPO, recipe_args, run_cli, run_in_process, train, write_jsonl

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


def not_utf8(tmp: Path, assets: Path) -> list[str]:
    path = write_jsonl(tmp / "data" / "train.jsonl", [{**GOOD, "id": f"r{i}"} for i in range(3)])
    with path.open("ab") as f:
        f.write(b'{"src": "caf\xe9", "tgt_chosen": "a", "tgt_rejected": "b"}\n')
    return data_at(path)


def cards_copy(tmp: Path, assets: Path, edit: Callable[[str], str]) -> list[str]:
    cards = tmp / "cards"
    cards.mkdir()
    text = (assets / "cards" / "tiny.yaml").read_text()
    # Relative paths in the card are relative to its file: make them absolute.
    text = text.replace(": ../", f": {assets}/")
    (cards / "tiny.yaml").write_text(edit(text))
    return [f"common.assets.extra_paths=[{cards}]"]


def corrupt_card(tmp: Path, assets: Path) -> list[str]:
    return cards_copy(tmp, assets, lambda t: t + "---\nname: broken\n  model_family: [llama\n")


def card_missing_file(tmp: Path, assets: Path) -> list[str]:
    return cards_copy(tmp, assets, lambda t: t.replace("model/model.pt", "model/gone.pt"))


def missing_prev_checkpoint_dir(tmp: Path, assets: Path) -> list[str]:
    return [f"common.assets.prev_checkpoint_dir={tmp / 'runs' / 'sft' / 'checkpoints'}"]


CASES: list[tuple[str, Setup, list[str]]] = [
    ("non-UTF-8 byte", not_utf8,
     ["train.jsonl, line 4: byte 0xe9 at byte 13 of the line is not UTF-8", "re-encode"]),
    ("corrupt card", corrupt_card,
     ["tiny.yaml, line", "mapping values are not allowed here", "fix the YAML"]),
    ("card naming a missing file", card_missing_file,
     ["Asset card 'tiny_llama' names a file that does not exist", "model/gone.pt"]),
    ("missing prev_checkpoint_dir", missing_prev_checkpoint_dir,
     ["`common.assets.prev_checkpoint_dir` is", "which does not exist"]),
    ("empty file", empty_file,
     ["No usable training data in", "it holds no rows", "Nothing was trained"]),
    ("all pairs over max_seq_len", all_too_long,
     ["No usable training data in", "all 6 row(s) read were dropped for falling outside "
      "[min_seq_len=1, max_seq_len=64]", "raise `dataset.max_seq_len`"]),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("setup", "messages"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_exits_2_with_one_clear_paragraph(
    tmp_path: Path,
    tiny_assets: Path,
    setup: Setup,
    messages: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    overrides = setup(tmp_path, tiny_assets)
    status, output = run_in_process(recipe_args(tmp_path / "run", tiny_assets, overrides), capfd)
    assert status == 2, output[-3000:]
    for message in messages:
        assert message in output, output[-3000:]
    assert "Traceback" not in output and "file a bug report" not in output
    assert not list((tmp_path / "run").glob("checkpoints/step_*"))


@pytest.mark.slow
def test_an_unwritable_output_dir_exits_2(
    tmp_path: Path, tiny_assets: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    status, output = run_in_process(recipe_args(blocker / "run", tiny_assets, []), capfd)
    assert status == 2, output[-3000:]
    assert f"{blocker} is a file, not a directory. Choose another output" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("cut", ["gzip stream", "json line"])
def test_a_truncated_jsonl_gz_export_in_data_prep_exits_2(tmp_path: Path, cut: str) -> None:
    import gzip

    from oasst_formats import SAMPLE

    data = gzip.compress(SAMPLE.read_bytes())
    if cut == "json line":
        text = SAMPLE.read_text()
        data = gzip.compress(text[: text.index("\n", len(text) // 2) + 20].encode())
    else:
        data = data[: len(data) // 2]
    source = tmp_path / "oasst2.messages.jsonl.gz"
    source.write_bytes(data)
    result = run_cli([sys.executable, str(REPO / "datasets" / "openassistant2_llama3_data_prep.py"),
                      "--source", str(source), "--data_dir", str(tmp_path / "data"),
                      "--card_dir", str(tmp_path / "cards")])  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{source}" in result.stderr and "Download it again" in result.stderr.replace(
        "download the file again", "Download it again"
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data").exists() or not list((tmp_path / "data").rglob("*.jsonl"))


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
