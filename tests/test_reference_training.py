"""End to end: fill the reference cache once, then train from it with no reference model."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs
from fairseq2.recipe.base import RecipeContext

from fairseq2_preference.cli import main
from fairseq2_preference.data import (
    PREFERENCE_ROW,
    JsonlDataset,
    JsonlSource,
    ReadOptions,
    StaticBatching,
)
from fairseq2_preference.engine.scoring import sequence_logps
from fairseq2_preference.reference.store import ReferenceCache
from fairseq2_preference.reference.table import ReferenceTable

from helpers import FAIRSEQ2, read_metrics, recipe_args, regime, run_cli, train, write_jsonl
from test_units import load_tiny, one_by_one

pytestmark = pytest.mark.slow

SHORT = regime(2, 2)


@pytest.fixture
def reference_loads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every model the recipe obtains, by config section: the reference model is
    loaded (and can run) only if ``"reference_model"`` appears."""
    calls: list[str] = []
    get_model = RecipeContext.get_model

    def spy(self: RecipeContext, section_name: str = "model") -> Any:
        calls.append(section_name)
        return get_model(self, section_name)

    monkeypatch.setattr(RecipeContext, "get_model", spy)
    yield calls


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, tiny_assets: Path) -> dict[str, list[Any]]:
    out = tmp_path_factory.mktemp("live")
    train(out, tiny_assets, *SHORT)
    return {split: read_metrics(out, split) for split in ("train", "valid")}


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, tiny_assets: Path) -> Path:
    """A cache filled by ``fairseq2 lm preference_reference_logps`` for the tiny config."""
    cache = tmp_path_factory.mktemp("cache")
    out = tmp_path_factory.mktemp("fill")
    args = recipe_args(
        out,
        tiny_assets,
        [f"reference_model.cache_dir={cache}"],
        command="preference_reference_logps",
    )
    main([*args, "--no-exit-on-error"])
    (cache / "summary.json").write_text((out / "reference_logps.json").read_text())
    return cache


def entry_tables(cache: Path) -> dict[str, ReferenceTable]:
    """The filled tables by split (``train``, ``dev``), as the fill command listed them."""
    tables = {}
    for entry in json.loads((cache / "summary.json").read_text()):
        table = ReferenceCache(cache).load(entry["key"])
        assert table is not None
        tables[entry["split"]] = table
    assert list(tables) == ["train", "dev"]
    return tables


def assert_same_losses(metrics: dict[str, list[Any]], out: Path) -> None:
    for split, expected in metrics.items():
        got = read_metrics(out, split)
        assert len(got) == len(expected) > 0
        for a, b in zip(got, expected, strict=True):
            assert a["Loss"] == pytest.approx(b["Loss"], abs=1e-5)


def test_cached_values_equal_the_live_reference(
    filled: Path, tiny_assets: Path, tokenizer: Any
) -> None:
    table = entry_tables(filled)["train"]
    model = load_tiny(tiny_assets)
    path = tiny_assets / "data" / "preference"
    dataset = JsonlDataset(JsonlSource.open(path), PREFERENCE_ROW)
    options = ReadOptions(batching=StaticBatching(16), max_seq_len=64)
    reader = dataset.create_reader("train", tokenizer, create_fake_gangs(CPU), options)
    checked = 0
    with torch.no_grad():
        for batches in reader:
            for batch in batches:
                # The live reference, as the train unit runs it on a training batch.
                live_sums, live_counts = sequence_logps(model, batch)
                n = batch.num_examples
                cached = table.rows(batch.ids)
                assert cached.dtype == torch.float32
                torch.testing.assert_close(cached.t().reshape(-1), live_sums, atol=1e-5, rtol=0)
                assert table.counts is not None
                index = [table.ids.index(i) for i in batch.ids]
                assert table.counts[index].t().reshape(-1).tolist() == live_counts.tolist()
                # ... and an independent, unpadded float64 computation.
                sums, counts = one_by_one(model, batch)
                assert live_counts.tolist() == counts
                torch.testing.assert_close(
                    cached.double(),
                    torch.tensor([sums[:n], sums[n:]], dtype=torch.float64).t(),
                    atol=1e-4,
                    rtol=1e-5,
                )
                checked += n
    assert checked == len(table) == 672


def test_sweep_from_the_cache_loads_no_reference_model(
    tmp_path: Path,
    tiny_assets: Path,
    filled: Path,
    live: dict[str, list[Any]],
    reference_loads: list[str],
) -> None:
    cache = [f"reference_model.cache_dir={filled}"]
    tables_before = sorted(filled.glob("*/table.*.pt"))

    out = tmp_path / "cached"
    train(out, tiny_assets, *SHORT, *cache, "reference_model.cache=read")
    assert "reference_model" not in reference_loads
    assert_same_losses(live, out)

    other = train(
        tmp_path / "ipo", tiny_assets, *SHORT, *cache, "reference_model.cache=auto",
        "criterion.name=ipo", "criterion.config.beta=0.5",
    )  # fmt: skip
    assert "reference_model" not in reference_loads
    assert other[0]["Loss"] != pytest.approx(live["train"][0]["Loss"], abs=1e-3)
    assert sorted(filled.glob("*/table.*.pt")) == tables_before  # reused, not refilled


def test_auto_fills_once_then_trains_from_the_cache(
    tmp_path: Path, tiny_assets: Path, live: dict[str, list[Any]], reference_loads: list[str]
) -> None:
    cache = tmp_path / "cache"
    out = tmp_path / "auto"
    train(
        out, tiny_assets, *SHORT, f"reference_model.cache_dir={cache}", "reference_model.cache=auto"
    )
    assert reference_loads.count("reference_model") == 1
    assert len(list(cache.glob("*/manifest.json"))) == 2
    assert_same_losses(live, out)


def test_read_without_a_complete_entry_is_an_error(tmp_path: Path, tiny_assets: Path) -> None:
    with pytest.raises(Exception, match="holds no complete entry for the train data"):
        train(
            tmp_path / "run", tiny_assets, *SHORT,
            f"reference_model.cache_dir={tmp_path / 'empty'}", "reference_model.cache=read",
        )  # fmt: skip


def test_reference_scores_in_the_data_rows(
    tmp_path: Path,
    tiny_assets: Path,
    filled: Path,
    live: dict[str, list[Any]],
    reference_loads: list[str],
) -> None:
    """fairseq2 0.4.6 datasets: ``reference_score_chosen/_rejected`` in every row."""
    data = tmp_path / "scored"
    for split, table in entry_tables(filled).items():
        source = tiny_assets / "data" / "preference" / split / "data.chunk.0000.jsonl"
        rows = [json.loads(line) for line in source.read_text().splitlines()]
        assert len(rows) == len(table)
        for row in rows:
            chosen, rejected = table.rows([row["id"]])[0].tolist()
            row["reference_score_chosen"], row["reference_score_rejected"] = chosen, rejected
        write_jsonl(data / split / "data.chunk.0000.jsonl", rows)

    out = tmp_path / "rows"
    train(
        out, tiny_assets, *SHORT, "reference_model=null", "dataset.name=null",
        "dataset.family=generic_preference", f"dataset.config_overrides={{path: {data}}}",
    )  # fmt: skip
    assert "reference_model" not in reference_loads
    assert_same_losses(live, out)


@pytest.mark.distributed
def test_two_ranks_fill_one_entry_and_train_from_it(
    tmp_path: Path, tiny_assets: Path, filled: Path
) -> None:
    """Under torchrun, ``auto`` fills the cache from both ranks' parts, then both
    ranks train from it; the entry equals the one a single process filled."""
    cache = tmp_path / "cache"
    overrides = [*SHORT, f"reference_model.cache_dir={cache}", "reference_model.cache=auto"]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--no-python", str(FAIRSEQ2), *recipe_args(tmp_path / "run", tiny_assets, overrides),
    ]  # fmt: skip
    result = run_cli(command, timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    assert len(read_metrics(tmp_path / "run", "train")) == 2
    assert not list(cache.glob("*/fill.*"))
    for split, expected in entry_tables(filled).items():
        key = next(e["key"] for e in json.loads((filled / "summary.json").read_text())
                   if e["split"] == split)  # fmt: skip
        table = ReferenceCache(cache).load(key)  # same key: the world size does not enter it
        assert table is not None and sorted(table.ids) == sorted(expected.ids), split
        torch.testing.assert_close(table.rows(expected.ids), expected.logps, atol=1e-5, rtol=0)
