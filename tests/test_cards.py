"""Weights by name: packaged cards for the stock Llama names, hg:// loading offline."""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from fairseq2_preference.models.checkpoints import read_checkpoint_dir

from helpers import FAIRSEQ2, REPO, read_metrics, run_cli
from hf_llama import populate_hub_cache

SHOW_CARDS = """
import json, sys
from fairseq2 import init_fairseq2
from fairseq2.assets import AssetStore
store = init_fairseq2().resolve(AssetStore)
cards = {}
for name in sorted(n[:-1] for n in store.asset_names if n.endswith("@")):
    if not name.startswith(("llama3", "qwen")):
        continue
    card = store.retrieve_card(name)
    if card.maybe_get_field("model_arch") is None:  # a base card, not a model
        continue
    field = card.maybe_get_field("checkpoint")
    cards[name] = None if field is None else str(field.value)
print(json.dumps(cards))
"""


def extension_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fairseq2 process that runs this package's extension.

    An install made before the entry point existed lacks it (it is read from the
    installed metadata); then a minimal distribution on PYTHONPATH declares it.
    """
    path = os.environ.get("PYTHONPATH", "")
    if any(
        ep.module.startswith("fairseq2_preference")
        for ep in entry_points(group="fairseq2.extension")
    ):
        return {"PYTHONPATH": path}
    dist = tmp_path / "shim" / "fairseq2_preference_extension-0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fairseq2-preference-extension\nVersion: 0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[fairseq2.extension]\nfairseq2_preference = fairseq2_preference.extension:register\n"
    )
    return {"PYTHONPATH": f"{dist.parent}{os.pathsep}{path}"}


def test_every_stock_llama3_name_gets_a_hub_checkpoint(tmp_path: Path) -> None:
    result = run_cli([sys.executable, "-c", SHOW_CARDS], env=extension_env(tmp_path))
    assert result.returncode == 0, result.stderr
    cards = json.loads(result.stdout.splitlines()[-1])
    llama3 = {name: uri for name, uri in cards.items() if name.startswith("llama3")}
    assert len(llama3) == 13
    for name, uri in llama3.items():
        assert uri is not None and uri.startswith("hg://meta-llama/"), name
    assert llama3["llama3_1_8b_instruct"] == "hg://meta-llama/Llama-3.1-8B-Instruct"
    assert cards["qwen25_7b_instruct"].startswith("hg://")  # fairseq2's own Qwen cards


def documented_8b_run(out: Path, tiny_assets: Path, *overrides: str) -> list[str]:
    """The README's 8B DPO command, on the tiny synthetic data, for two steps."""
    return [
        "lm",
        "preference_finetune",
        str(out),
        "--config-file",
        str(REPO / "example_configurations" / "llama3_1_8b_instruct_dpo.yaml"),
        "--no-rich",
        "--config",
        f"common.assets.extra_paths=[{tiny_assets / 'cards'}]",
        "dataset.name=tiny_preference",
        "regime.num_steps=2",
        "regime.checkpoint_every_n_steps=2",
        "regime.validate_every_n_steps=2",
        "regime.publish_metrics_every_n_steps=1",
        *overrides,
    ]


@pytest.mark.slow
def test_documented_8b_config_trains_from_the_hub_cache_offline(
    hf_llama: Path, tiny_assets: Path, tmp_path: Path
) -> None:
    """The packaged card of `llama3_1_8b_instruct` through fairseq2's real hub code
    (snapshot_download) with no network: the tiny checkpoint stands in for Meta's
    repository in a pre-populated cache, and `config_overrides` shrink the 8B
    architecture to it."""
    hf_home = tmp_path / "hf_home"
    populate_hub_cache(hf_home, "meta-llama/Llama-3.1-8B-Instruct", hf_llama)
    tiny = json.dumps(read_checkpoint_dir(hf_llama).model_config)
    out = tmp_path / "run"
    env = {**extension_env(tmp_path), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    args = documented_8b_run(
        out,
        tiny_assets,
        f"model.config_overrides={tiny}",
        f"reference_model.config_overrides={tiny}",
    )
    result = run_cli([str(FAIRSEQ2), *args], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_metrics(out, "train")
    assert [row["Step"] for row in rows] == [1, 2]
    assert rows[0]["DPO Loss"] == pytest.approx(0.693147, abs=2e-3)  # bf16 policy and reference


@pytest.mark.slow
def test_documented_8b_config_trains_from_a_local_directory(
    hf_llama: Path, tiny_assets: Path, tmp_path: Path
) -> None:
    """`--config model.path=DIR` alone: reference and tokenizer follow the directory."""
    from fairseq2_preference.cli import main

    out = tmp_path / "run"
    main([*documented_8b_run(out, tiny_assets, f"model.path={hf_llama}"), "--no-exit-on-error"])
    rows = read_metrics(out, "train")
    assert [row["Step"] for row in rows] == [1, 2]
    assert rows[0]["DPO Loss"] == pytest.approx(0.693147, abs=2e-3)
