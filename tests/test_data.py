"""The generic_preference data path: splits, batching, masks and bad input."""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs
from fairseq2.recipe.error import SplitNotKnownError

from fairseq2_preference.data import (
    PREFERENCE_ROW,
    JsonlDataset,
    JsonlSource,
    LengthBatching,
    PreferenceBatch,
    ReadOptions,
    StaticBatching,
)
from fairseq2_preference.data.batching import bucket_sizes
from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError

from helpers import write_jsonl

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "owls",
    "watch",
]


def random_rows(n: int, seed: int = 0, max_words: int = 12) -> list[dict[str, Any]]:
    rng = random.Random(seed)

    def text() -> str:
        return " ".join(rng.choices(WORDS, k=rng.randint(1, max_words)))

    return [
        {"id": f"r{i}", "src": text(), "tgt_chosen": text(), "tgt_rejected": text()}
        for i in range(n)
    ]


def read_all(
    path: Path, tokenizer: Any, split: str = "train", **options: Any
) -> list[PreferenceBatch]:
    dataset = JsonlDataset(JsonlSource.open(path), PREFERENCE_ROW)
    reader = dataset.create_reader(split, tokenizer, create_fake_gangs(CPU), ReadOptions(**options))
    return [batch for batches in reader for batch in batches]


def test_token_budget_holds_for_every_batch(tmp_path: Path, tokenizer: Any) -> None:
    rows = random_rows(300, max_words=8)
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    batches = read_all(
        path,
        tokenizer,
        batching=LengthBatching(512),
        max_seq_len=128,
        example_shuffle_window=0,
        packed=False,
    )
    assert len(batches) > 10
    for batch in batches:
        assert batch.num_computed_tokens <= 512  # [2N, W], padding included
        assert batch.inputs.seqs.shape[0] == 2 * batch.num_examples
    ids = [i for b in batches for i in b.ids]
    assert sorted(ids) == sorted(r["id"] for r in rows)  # each pair exactly once


def test_bucket_sizes_respect_the_budget() -> None:
    for budget, max_len in [(1024, 64), (16384, 8192), (1000, 37)]:
        sizes = bucket_sizes(budget, 2, 1, max_len)
        assert sizes[-1][1] == max_len
        assert all(2 * n * w <= budget for n, w in sizes)
        assert [w for _, w in sizes] == sorted({w for _, w in sizes})
    with pytest.raises(ValueError, match="max_seq_len"):
        bucket_sizes(100, 2, 1, 64)


def test_static_batching(tmp_path: Path, tokenizer: Any) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", random_rows(10))
    batches = read_all(path, tokenizer, batching=StaticBatching(4))
    assert [b.num_examples for b in batches] == [4, 4, 2]


def test_over_long_pairs_are_dropped_and_counted(
    tmp_path: Path, tokenizer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    rows = random_rows(20, max_words=4)
    for row in rows[:3]:
        row["tgt_rejected"] = " ".join(WORDS * 10)
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    with caplog.at_level(logging.WARNING):
        batches = read_all(path, tokenizer, batching=StaticBatching(8), max_seq_len=80)
    ids = {i for b in batches for i in b.ids}
    assert ids == {r["id"] for r in rows[3:]}
    assert "2 example(s) dropped so far" in caplog.text  # logged at 1, 2, 4, ... drops
    assert "r2" in caplog.text or "r1" in caplog.text


@pytest.mark.parametrize("packed", [True, False])
def test_layout_and_scored_tokens(tmp_path: Path, tokenizer: Any, packed: bool) -> None:
    """Every sequence's inputs and scored targets, read back from the batch."""
    rows = random_rows(6, seed=3)
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    decode = tokenizer.create_decoder(skip_special_tokens=True)
    encode_prompt = tokenizer.create_encoder(mode="prompt")
    encode_response = tokenizer.create_encoder(mode="prompt_response")
    by_id = {r["id"]: r for r in rows}

    for mask_source in (True, False):
        (batch,) = read_all(
            path,
            tokenizer,
            batching=StaticBatching(6),
            mask_source_tokens=mask_source,
            packed=packed,
        )
        assert batch.inputs.packed == packed
        inputs = batch.inputs.seqs.flatten()
        scored = batch.scored
        n = batch.num_examples
        for i, row_id in enumerate(batch.ids):
            row = by_id[row_id]
            prompt = encode_prompt(row["src"])
            for j, key in ((i, "tgt_chosen"), (n + i, "tgt_rejected")):
                seq = torch.cat([prompt, encode_response(row[key])])
                start = len(prompt) if mask_source else 1
                mine = scored.rows == j
                assert scored.targets[mine].tolist() == seq[start:].tolist()
                # each scored position holds the token just before its target
                assert inputs[scored.positions[mine]].tolist() == seq[start - 1 : -1].tolist()
                assert decode(scored.targets[mine]).strip().endswith(row[key])
                assert batch.token_counts[j] == len(seq) - start


def test_splits_file_flat_dir_and_named(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "named" / "train" / "a.jsonl", random_rows(2))
    write_jsonl(tmp_path / "named" / "dev" / "sub" / "b.jsonl", random_rows(2))
    named = JsonlSource.open(tmp_path / "named")
    assert named.splits == ("dev", "train")
    assert named.has_split("dev")
    assert [f.name for f in named.files("dev")] == ["b.jsonl"]
    with pytest.raises(SplitNotKnownError):
        named.files("test")

    write_jsonl(tmp_path / "flat" / "c1.jsonl", random_rows(2))
    write_jsonl(tmp_path / "flat" / "c0.jsonl", random_rows(2))
    flat = JsonlSource.open(tmp_path / "flat")
    assert flat.splits == () and not flat.has_split("dev")
    assert [f.name for f in flat.files("train")] == ["c0.jsonl", "c1.jsonl"]

    single = JsonlSource.open(tmp_path / "flat" / "c0.jsonl")
    assert single.files("anything") == [tmp_path / "flat" / "c0.jsonl"]


def test_bad_paths_are_explained(tmp_path: Path) -> None:
    with pytest.raises(PreferenceConfigError, match="does not exist"):
        JsonlSource.open(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreferenceConfigError, match=r"no \.jsonl"):
        JsonlSource.open(tmp_path / "empty")
    write_jsonl(tmp_path / "mixed" / "top.jsonl", random_rows(1))
    write_jsonl(tmp_path / "mixed" / "train" / "a.jsonl", random_rows(1))
    with pytest.raises(PreferenceConfigError, match="both"):
        JsonlSource.open(tmp_path / "mixed")


GOOD = {"id": "ok", "src": "q", "tgt_chosen": "a", "tgt_rejected": "b"}


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"src": "q", "tgt_chosen": "a"', r"line 4: not valid JSON"),
        ('["q", "a", "b"]', r"line 4: expected a JSON object"),
        (
            {"id": 7, "src": "q", "tgt_chosen": "a"},
            r"line 4 \(example id 7\): missing key\(s\) 'tgt_rejected'",
        ),
        (
            {"id": "e", "src": "q", "tgt_chosen": " ", "tgt_rejected": "b"},
            r"line 4 \(example id 'e'\): 'tgt_chosen' is empty",
        ),
        (
            {"src": "q", "tgt_chosen": "a", "tgt_rejected": 3},
            r"line 4: 'tgt_rejected' must be a string",
        ),
    ],
)
def test_bad_rows_name_file_and_line(
    tmp_path: Path, tokenizer: Any, bad_line: object, message: str
) -> None:
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, "", GOOD, bad_line, GOOD])  # type: ignore[list-item]
    with pytest.raises(PreferenceDataError, match=rf"bad\.jsonl, {message}"):
        read_all(path, tokenizer, batching=StaticBatching(2))


def test_rows_without_id_get_a_stable_one(tmp_path: Path, tokenizer: Any) -> None:
    row = {"src": "q", "tgt_chosen": "a", "tgt_rejected": "b"}
    path = write_jsonl(tmp_path / "d.jsonl", [row, {**row, "src": "other"}])
    first = read_all(path, tokenizer, batching=StaticBatching(2))[0].ids
    again = read_all(path, tokenizer, batching=StaticBatching(2))[0].ids
    assert first == again and len(set(first)) == 2 and all(i.startswith("d.jsonl:") for i in first)
