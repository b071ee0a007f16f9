"""The Hugging Face preference converter: four row shapes, one result."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairseq2_preference.data_prep.hf_preference import main

from helpers import read_jsonl_dir

# (prompt turns, chosen, rejected); the second conversation is multi-turn.
CONVERSATIONS = [
    ([("user", "Name a prime number.")], "7 is prime.", "8 is prime."),
    (
        [("user", "Hi!"), ("assistant", "Hello! How can I help?"), ("user", "Say bye.")],
        "Bye!",
        "No.",
    ),
    ([("user", "What is 2 + 2?")], "4", "5"),
    ([("user", "Capital of Italy?")], "Rome.", "Milan."),
]


def msgs(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"role": role, "content": text} for role, text in turns]


def hh(turns: list[tuple[str, str]]) -> str:
    names = {"user": "Human", "assistant": "Assistant"}
    return "".join(f"\n\n{names[role]}: {text}" for role, text in turns)


def shape_rows(shape: str) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for turns, chosen, rejected in CONVERSATIONS:
        if shape == "strings":  # single-turn text only: render earlier turns into the prompt
            if len(turns) > 1:
                continue
            rows.append({"prompt": turns[0][1], "chosen": chosen, "rejected": rejected})
        elif shape == "conversational":
            rows.append(
                {"prompt": msgs(turns), "chosen": msgs([("assistant", chosen)]),
                 "rejected": msgs([("assistant", rejected)])}
            )  # fmt: skip
        elif shape == "ultrafeedback":  # prompt string + whole conversations
            rows.append(
                {"prompt": turns[-1][1], "chosen": msgs([*turns, ("assistant", chosen)]),
                 "rejected": msgs([*turns, ("assistant", rejected)]), "score_chosen": 8.0}
            )  # fmt: skip
        elif shape == "hh":
            rows.append(
                {"chosen": hh([*turns, ("assistant", chosen)]),
                 "rejected": hh([*turns, ("assistant", rejected)])}
            )  # fmt: skip
    return rows


def content(data_dir: Path) -> list[tuple[str, str, str]]:
    rows = read_jsonl_dir(data_dir / "preference")
    return sorted((r["src"], r["tgt_chosen"], r["tgt_rejected"]) for r in rows)


def run(source: Path, out: Path, *args: str):  # type: ignore[no-untyped-def]
    return main(
        ["--source", str(source), "--data_dir", str(out / "data"), "--card_dir",
         str(out / "cards"), "--name", "conv", *args]
    )  # fmt: skip


def test_all_shapes_give_the_same_pairs(tmp_path: Path) -> None:
    results = {}
    for shape in ("conversational", "hh"):
        file = tmp_path / f"{shape}.jsonl"
        file.write_text("".join(json.dumps(r) + "\n" for r in shape_rows(shape)))
        run(file, tmp_path / shape, "--dev_size", "0")
        results[shape] = content(tmp_path / shape / "data")
    # UltraFeedback-binarized layout: a local dataset directory with its own splits.
    repo = tmp_path / "ultrafeedback" / "data"
    repo.mkdir(parents=True)
    rows = shape_rows("ultrafeedback")
    pq.write_table(pa.Table.from_pylist(rows[:3]), repo / "train_prefs-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:]), repo / "test_prefs-00000-of-00001.parquet")
    result = run(
        repo.parent, tmp_path / "uf", "--train_split", "train_prefs", "--dev_split", "test_prefs"
    )
    results["ultrafeedback"] = content(tmp_path / "uf" / "data")
    assert result.counts["preference train"] == 3 and result.counts["preference dev"] == 1

    assert results["conversational"] == results["hh"] == results["ultrafeedback"]
    assert len(results["hh"]) == 4
    multi = [r for r in results["hh"] if "Say bye." in r[0]]
    assert multi and "Hello! How can I help?" in multi[0][0]

    strings = tmp_path / "strings.jsonl"
    strings.write_text("".join(json.dumps(r) + "\n" for r in shape_rows("strings")))
    run(strings, tmp_path / "strings", "--dev_size", "0")
    assert set(content(tmp_path / "strings" / "data")) < set(results["hh"])


def test_unusable_rows_are_dropped_and_counted(tmp_path: Path) -> None:
    bad_reply = {
        "prompt": "q",
        "chosen": msgs([("assistant", "a"), ("user", "?")]),
        "rejected": "b",
    }
    rows = [*shape_rows("conversational"), bad_reply, {"prompt": "q", "rejected": "b"}]
    file = tmp_path / "d.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run(file, tmp_path / "out", "--dev_size", "0")
    assert result.drops == {
        "rows: a response is not a single, final assistant turn": 1,
        "rows: missing field 'chosen'": 1,
    }
    assert result.counts["preference train"] == 4
    assert result.counts["instruction train"] == 4


@pytest.mark.parametrize("shape", ["conversational"])
def test_cards_name_the_splits(tmp_path: Path, shape: str) -> None:
    file = tmp_path / "d.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in shape_rows(shape)))
    result = run(file, tmp_path / "out", "--dev_size", "1")
    text = result.card_file.read_text()
    for name in ("conv_preference_train", "conv_preference_dev", "conv_instruction_train"):
        assert f"name: {name}\n" in text
