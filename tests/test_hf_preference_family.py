"""The ``hf_preference`` family: TRL-style preference data trained on as it comes."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs

from fairseq2_preference.data import (
    PREFERENCE_ROW,
    HfPreferenceDatasetConfig,
    JsonlDataset,
    JsonlSource,
    ReadOptions,
)
from fairseq2_preference.data.hf_dataset import open_hf_preference_dataset
from fairseq2_preference.data_prep.formatting import Llama3Formatter
from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError
from test_data_prep_hf import CONVERSATIONS, msgs, shape_rows

from helpers import FAIRSEQ2, read_metrics, recipe_args, regime, run_cli, train, write_jsonl

HF_FAMILY = ("dataset.name=null", "dataset.family=hf_preference")
SHORT = regime(2, 2)


def encoded(path: Path, tokenizer: Any, split: str = "train") -> list[dict[str, Any]]:
    """Every row of ``path`` as the family encodes it, in file order."""
    dataset = open_hf_preference_dataset(HfPreferenceDatasetConfig(path=str(path)))
    encode = dataset.encoder(tokenizer, ReadOptions())
    return [encode(row) for row in dataset.read_rows(split).and_return()]


def test_conversations_are_masked_at_the_chat_template_boundary(
    tmp_path: Path, tokenizer: Any
) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", shape_rows("conversational"))
    decode = tokenizer.create_decoder()
    rows = encoded(path, tokenizer)
    assert len(rows) == len(CONVERSATIONS)
    for row, (turns, chosen, rejected) in zip(rows, CONVERSATIONS, strict=True):
        # The converter's independent rendering of the Llama 3 format is the prompt ...
        prompt = "<|begin_of_text|>" + Llama3Formatter()(turns)
        for seq, reply in zip(row["seqs"], (chosen, rejected), strict=True):
            assert decode(seq[: row["prompt_len"]]) == prompt
            # ... and every token after it, up to the end-of-turn token, is the reply.
            assert decode(seq[row["prompt_len"] :]) == reply + "<|eot_id|>"


def test_whole_conversations_and_transcripts_give_the_same_tokens(
    tmp_path: Path, tokenizer: Any
) -> None:
    reference = encoded(write_jsonl(tmp_path / "c.jsonl", shape_rows("conversational")), tokenizer)
    for shape in ("ultrafeedback", "hh"):
        rows = encoded(write_jsonl(tmp_path / f"{shape}.jsonl", shape_rows(shape)), tokenizer)
        for a, b in zip(rows, reference, strict=True):
            assert a["prompt_len"] == b["prompt_len"]
            assert all(torch.equal(x, y) for x, y in zip(a["seqs"], b["seqs"], strict=True))


def test_plain_strings_are_encoded_like_generic_preference_rows(
    tmp_path: Path, tokenizer: Any
) -> None:
    rows = shape_rows("strings")
    hf_rows = encoded(write_jsonl(tmp_path / "s.jsonl", rows), tokenizer)
    encode_prompt = tokenizer.create_encoder(mode="prompt")
    encode_response = tokenizer.create_encoder(mode="prompt_response")
    for row, got in zip(rows, hf_rows, strict=True):
        prompt = encode_prompt(row["prompt"])
        assert got["prompt_len"] == len(prompt)
        for seq, key in zip(got["seqs"], ("chosen", "rejected"), strict=True):
            assert torch.equal(seq, torch.cat([prompt, encode_response(row[key])]))


def test_a_parquet_directory_with_splits(tmp_path: Path, tokenizer: Any) -> None:
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    rows = shape_rows("ultrafeedback")
    (tmp_path / "data").mkdir()
    pq.write_table(pa.Table.from_pylist(rows[:3]), tmp_path / "data" / "train-0.parquet")
    pq.write_table(pa.Table.from_pylist(rows[3:]), tmp_path / "data" / "test-0.parquet")
    dataset = open_hf_preference_dataset(HfPreferenceDatasetConfig(path=str(tmp_path)))
    assert dataset.has_split("train") and dataset.has_split("test")
    assert not dataset.has_split("dev")
    assert len(encoded(tmp_path, tokenizer, "test")) == 1


@pytest.mark.parametrize(
    ("columns", "advice"),
    [
        (("src", "tgt_chosen", "tgt_rejected"), "set `dataset.family: generic_preference`"),
        (("src", "tgt"), "set `dataset.family: generic_instruction`"),
        (("question", "good", "bad"), "hf_preference_data_prep.py"),
    ],
)
def test_a_wrong_schema_names_the_columns_and_where_to_go(
    tmp_path: Path, columns: tuple[str, ...], advice: str
) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", [dict.fromkeys(columns, "x")])
    with pytest.raises(PreferenceConfigError) as error:
        open_hf_preference_dataset(HfPreferenceDatasetConfig(path=str(path)))
    message = str(error.value)
    assert "expects the columns 'prompt' (optional), 'chosen', 'rejected'" in message
    assert "the data has " + ", ".join(repr(c) for c in columns) in message
    assert advice in message


def test_other_field_names(tmp_path: Path, tokenizer: Any) -> None:
    rows = [{"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]}
            for r in shape_rows("strings")]  # fmt: skip
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    config = HfPreferenceDatasetConfig(
        path=str(path), prompt_field="question", chosen_field="good", rejected_field="bad"
    )
    dataset = open_hf_preference_dataset(config)
    assert len(list(dataset.read_rows("train").and_return())) == len(rows)


def test_a_bad_row_is_named(tmp_path: Path) -> None:
    rows = shape_rows("conversational")
    rows[1]["chosen"] = msgs([("assistant", "a"), ("user", "?")])
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    dataset = open_hf_preference_dataset(HfPreferenceDatasetConfig(path=str(path)))
    with pytest.raises(PreferenceDataError, match=r"row 1 \(example id 'train:1'\): a response"):
        list(dataset.read_rows("train").and_return())


def test_generic_preference_points_to_the_new_family(tmp_path: Path, tokenizer: Any) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", shape_rows("strings"))
    dataset = JsonlDataset(JsonlSource.open(path), PREFERENCE_ROW)
    reader = dataset.create_reader("train", tokenizer, create_fake_gangs(CPU), ReadOptions())
    with pytest.raises(PreferenceDataError) as error:
        next(iter(reader))
    message = str(error.value)
    assert "The row has 'prompt', 'chosen', 'rejected'" in message
    assert "`dataset.family: hf_preference`" in message
    assert "hf_preference_data_prep.py" in message


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["strings", "conversational"])
def test_trains_on_data_as_it_comes(tmp_path: Path, tiny_assets: Path, shape: str) -> None:
    path = write_jsonl(tmp_path / "d.jsonl", shape_rows(shape) * 8)
    metrics = train(
        tmp_path / "run", tiny_assets, *HF_FAMILY, f"dataset.config_overrides.path={path}", *SHORT
    )
    assert [m["Step"] for m in metrics] == [1, 2]
    assert float(metrics[0]["Loss"]) == pytest.approx(math.log(2), abs=1e-5)  # type: ignore[arg-type]
    assert float(metrics[1]["Loss"]) < math.log(2)  # type: ignore[arg-type]


def populate_hub_cache(cache: Path, repo_id: str, splits: dict[str, Path]) -> None:
    """Lay out ``splits`` in ``cache`` as ``datasets`` leaves a downloaded hub dataset."""
    import datasets

    files = {name: str(path) for name, path in splits.items()}
    builder = datasets.load_dataset_builder("json", data_files=files, cache_dir=str(cache / "tmp"))
    builder.download_and_prepare()
    prepared = Path(builder.cache_dir)  # tmp/json/<config>/<version>/<hash>
    namespace, name = repo_id.split("/")
    target = cache / f"{namespace}___{name}" / "default" / prepared.parent.name / prepared.name
    target.parent.mkdir(parents=True)
    shutil.move(prepared, target)
    for arrow in target.glob("json-*.arrow"):
        arrow.rename(target / arrow.name.replace("json-", f"{name}-", 1))


@pytest.mark.slow
def test_a_hub_dataset_id_from_the_cache_offline(tmp_path: Path, tiny_assets: Path) -> None:
    rows = shape_rows("strings") * 8
    train_file = write_jsonl(tmp_path / "src" / "train.jsonl", rows)
    test_file = write_jsonl(tmp_path / "src" / "test.jsonl", rows[:4])
    populate_hub_cache(tmp_path / "cache", "acme/prefs", {"train": train_file, "test": test_file})

    out = tmp_path / "run"
    overrides = (*HF_FAMILY, "dataset.config_overrides.path=acme/prefs", "dataset.valid_split=test")
    env = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(tmp_path / "cache")}
    result = run_cli([str(FAIRSEQ2), *recipe_args(out, tiny_assets, (*overrides, *SHORT))], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [m["Step"] for m in read_metrics(out, "valid")] == [2]

    env["HF_DATASETS_CACHE"] = str(tmp_path / "empty")
    out = tmp_path / "uncached"
    result = run_cli([str(FAIRSEQ2), *recipe_args(out, tiny_assets, (*overrides, *SHORT))], env=env)
    assert result.returncode == 2
    assert "Dataset 'acme/prefs' (not a local file or directory)" in result.stderr
    assert "HF_HUB_OFFLINE=1 is set and the Hugging Face cache has no copy" in result.stderr
    assert "Point to local .jsonl/.parquet files" in result.stderr
