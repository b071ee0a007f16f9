"""The reference log-prob cache: lookup by id, atomic entries, keys that miss on any change."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs
from fairseq2.recipe.config import ReferenceModelSection

from fairseq2_preference.data import (
    PREFERENCE_ROW,
    JsonlDataset,
    JsonlSource,
    LengthBatching,
    ReadOptions,
)
from fairseq2_preference.errors import PreferenceDataError
from fairseq2_preference.reference.fingerprint import (
    DigestMemo,
    data_description,
    model_description,
)
from fairseq2_preference.reference.rows import read_row_scores
from fairseq2_preference.reference.store import MANIFEST, ReferenceCache
from fairseq2_preference.reference.table import ReferenceTable

from helpers import write_jsonl
from test_data import random_rows


def numbered_table(ids: list[str]) -> ReferenceTable:
    """Example ``i`` gets chosen ``-i`` and rejected ``-1000 - i``: easy to recognise."""
    logps = torch.tensor([[-float(i), -1000.0 - i] for i in range(len(ids))])
    return ReferenceTable(ids, logps, torch.ones(len(ids), 2, dtype=torch.int32))


def test_every_batch_gets_its_own_examples_numbers(tmp_path: Path, tokenizer: Any) -> None:
    rows = random_rows(40, seed=3)
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    table = numbered_table(sorted(str(r["id"]) for r in rows))
    expected = {example_id: table.logps[i].tolist() for i, example_id in enumerate(table.ids)}
    options = ReadOptions(
        batching=LengthBatching(512),
        example_shuffle_window=0,
        batch_shuffle_window=0,
        max_seq_len=256,
        batch_transform=table.attach,
    )
    dataset = JsonlDataset(JsonlSource.open(path), PREFERENCE_ROW)
    reader = dataset.create_reader("train", tokenizer, create_fake_gangs(CPU), options)
    seen = []
    for batches in reader:
        for batch in batches:
            n = batch.num_examples
            assert batch.reference_logps is not None and batch.reference_logps.shape == (2 * n,)
            for i, example_id in enumerate(batch.ids):
                chosen, rejected = batch.reference_logps[i], batch.reference_logps[n + i]
                assert [float(chosen), float(rejected)] == expected[example_id]
            seen += batch.ids
    assert sorted(seen) == table.ids and seen != table.ids  # all of them, shuffled


def test_an_unknown_example_id_is_an_error() -> None:
    with pytest.raises(PreferenceDataError, match="Example id 'zz' has no reference log-prob"):
        numbered_table(["a", "b"]).rows(["a", "zz"])


def test_commit_merges_the_ranks_parts(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path)
    full = numbered_table(["a", "b", "c"])
    cache.write_part("k", "n1", 0, ReferenceTable(full.ids[:2], full.logps[:2], full.counts[:2]))  # type: ignore[index]
    cache.write_part("k", "n1", 1, ReferenceTable(full.ids[1:], full.logps[1:], full.counts[1:]))  # type: ignore[index]
    assert cache.load("k") is None  # parts only: not an entry yet
    cache.commit("k", "n1", 2, {"what": "test"})
    loaded = cache.load("k")
    assert loaded is not None and loaded.ids == ["a", "b", "c"]
    assert torch.equal(loaded.logps, full.logps) and loaded.logps.dtype == torch.float32
    assert not (tmp_path / "k" / "fill.n1").exists()
    assert json.loads((tmp_path / "k" / MANIFEST).read_text())["num_examples"] == 3


def test_a_half_written_entry_is_never_read(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path)
    cache.write_part("k", "n1", 0, numbered_table(["a", "b"]))
    cache.commit("k", "n1", 1, {})
    manifest = tmp_path / "k" / MANIFEST
    table_file = tmp_path / "k" / json.loads(manifest.read_text())["table"]
    assert cache.load("k") is not None

    # A run killed after writing its table but before its manifest: nothing to read.
    manifest.unlink()
    assert cache.load("k") is None

    # A table cut short (or replaced) under a manifest: its hash no longer matches.
    cache.write_part("k", "n2", 0, numbered_table(["a", "b"]))
    cache.commit("k", "n2", 1, {})
    table_file = tmp_path / "k" / json.loads(manifest.read_text())["table"]
    table_file.write_bytes(table_file.read_bytes()[:-10])
    assert cache.load("k") is None

    # A manifest copied from another key.
    shutil.copytree(tmp_path / "k", tmp_path / "other")
    assert cache.load("other") is None


def test_two_rows_with_one_id_and_different_content_are_an_error(tmp_path: Path) -> None:
    cache = ReferenceCache(tmp_path)
    cache.write_part("k", "n", 0, numbered_table(["a", "b"]))
    cache.write_part("k", "n", 1, numbered_table(["b", "a"]))
    with pytest.raises(PreferenceDataError, match="'b' appears twice in the data"):
        cache.commit("k", "n", 2, {})


def rewrite_keeping_stat(path: Path, data: bytes) -> None:
    """Rewrite ``path`` with the same size and modification time, as ``cp -p`` could."""
    st = path.stat()
    assert len(data) == st.st_size
    path.write_bytes(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_one_changed_data_row_is_a_miss(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d" / "data.jsonl", random_rows(10, seed=1))
    dataset = JsonlDataset(JsonlSource.open(path.parent), PREFERENCE_ROW)
    memo_file = tmp_path / "digests.json"
    memo = DigestMemo(memo_file)
    before = data_description(dataset, "train", memo)
    memo.save()
    assert data_description(dataset, "train", DigestMemo(memo_file)) == before

    text = path.read_text()
    rewrite_keeping_stat(path, text.replace("a", "b", 1).encode())
    assert data_description(dataset, "train", DigestMemo(memo_file)) != before


def test_one_changed_checkpoint_tensor_is_a_miss(tmp_path: Path, tiny_assets: Path) -> None:
    checkpoint = tmp_path / "model.pt"
    shutil.copy(tiny_assets / "model" / "model.pt", checkpoint)
    section = ReferenceModelSection(path=checkpoint, family="llama")
    memo_file = tmp_path / "digests.json"
    memo = DigestMemo(memo_file)
    before = model_description(section, None, memo)  # type: ignore[arg-type]
    memo.save()
    assert model_description(section, None, DigestMemo(memo_file)) == before  # type: ignore[arg-type]

    # Change one weight of one tensor in the file's bytes: same size, same timestamps.
    state = torch.load(checkpoint)
    name = next(iter(state))
    tensor = state[name].contiguous()
    changed = tensor.clone()
    changed.view(-1)[0] += 1.0
    data = checkpoint.read_bytes()
    old, new = tensor.numpy().tobytes(), changed.numpy().tobytes()
    assert data.count(old) == 1
    rewrite_keeping_stat(checkpoint, data.replace(old, new))
    assert torch.equal(torch.load(checkpoint)[name], changed)
    assert model_description(section, None, DigestMemo(memo_file)) != before  # type: ignore[arg-type]

    other_dtype = ReferenceModelSection(path=checkpoint, family="llama", dtype=torch.bfloat16)
    assert model_description(other_dtype, None, DigestMemo(memo_file)) != before  # type: ignore[arg-type]


def test_reference_scores_from_the_rows(tmp_path: Path) -> None:
    rows = [
        {"id": f"r{i}", "src": "p", "tgt_chosen": "c", "tgt_rejected": "r",
         "reference_score_chosen": -1.5 - i, "reference_score_rejected": -7}
        for i in range(3)
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "scored.jsonl", rows)
    table = read_row_scores([path], PREFERENCE_ROW)
    assert table is not None and table.ids == ["r0", "r1", "r2"]
    assert table.rows(["r1"]).tolist() == [[-2.5, -7.0]]

    del rows[1]["reference_score_rejected"]
    write_jsonl(path, rows)
    with pytest.raises(PreferenceDataError, match=r"scored.jsonl, line 2 \(example id 'r1'\)"):
        read_row_scores([path], PREFERENCE_ROW)

    plain = [{k: v for k, v in row.items() if not k.startswith("reference")} for row in rows]
    assert read_row_scores([write_jsonl(path, plain)], PREFERENCE_ROW) is None


def test_old_configs_with_scores_in_the_data_translate() -> None:
    """fairseq2 0.4.6: ``criterion_config.reference_model: null`` meant scores in the rows."""
    from fairseq2_preference.config.legacy import translate

    raw = {"criterion": "dpo", "criterion_config": {"reference_model": None, "beta": 0.2}}
    translation = translate(raw, "old.yaml", preference=True)
    assert translation.config["reference_model"] is None
    assert translation.config["criterion"]["config"]["beta"] == 0.2
    assert any("reference_score_chosen" in note for note in translation.notes)


def test_an_unknown_cache_mode_is_a_config_error() -> None:
    from fairseq2_preference.config.sections import PreferenceReferenceModelSection

    result = PreferenceReferenceModelSection(name="x", cache="sometimes").validate()
    assert "`cache` must be 'auto', 'read' or 'off'" in str(result)
    assert not PreferenceReferenceModelSection(name="x", cache="auto").validate().has_error()


def test_hf_preference_data_is_keyed_by_its_loaded_content(tmp_path: Path) -> None:
    from fairseq2_preference.data import HfPreferenceDatasetConfig
    from fairseq2_preference.data.hf_dataset import open_hf_preference_dataset

    rows = [{"prompt": f"p{i}", "chosen": "good", "rejected": "bad"} for i in range(4)]
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    memo = DigestMemo(tmp_path / "digests.json")

    def describe() -> dict[str, Any]:
        dataset = open_hf_preference_dataset(HfPreferenceDatasetConfig(path=str(path)))
        return data_description(dataset, "train", memo)

    before = describe()
    assert before["files"] and before["fields"]["chosen"] == "chosen"
    assert describe() == before
    rows[2]["chosen"] = "better"
    write_jsonl(path, rows)
    assert describe() != before
