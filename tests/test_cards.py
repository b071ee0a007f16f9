"""Weights by name: packaged cards for the stock Llama names, hg:// loading offline."""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import yaml

from fairseq2_preference.checkpoints import read_checkpoint_dir

from helpers import FAIRSEQ2, TINY_CONFIG, read_metrics, regime, run_cli
from hf_llama import build_hf_llama, populate_hub_cache

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


@pytest.mark.slow
def test_hg_card_trains_from_a_populated_hub_cache_offline(
    tiny_assets: Path, tmp_path: Path
) -> None:
    """fairseq2's real hub download path (snapshot_download), with no network."""
    checkpoint = build_hf_llama(tiny_assets / "tokenizer", tmp_path / "llama")
    hf_home = tmp_path / "hf_home"
    populate_hub_cache(hf_home, "tiny-org/tiny-llama", checkpoint)
    described = read_checkpoint_dir(checkpoint)
    card = {
        "name": "tiny_hub",
        "model_family": "llama",
        "model_config": described.model_config,
        "checkpoint": "hg://tiny-org/tiny-llama",
        "tokenizer": "hg://tiny-org/tiny-llama",
        "tokenizer_family": "llama",
        "tokenizer_config": described.tokenizer_config,
    }
    (tmp_path / "cards").mkdir()
    (tmp_path / "cards" / "tiny_hub.yaml").write_text(yaml.safe_dump(card))
    out = tmp_path / "run"
    env = {**extension_env(tmp_path), "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}
    result = run_cli(
        [
            str(FAIRSEQ2),
            "lm",
            "preference_finetune",
            str(out),
            "--config-file",
            str(TINY_CONFIG),
            "--no-rich",
            "--config",
            f"common.assets.extra_paths=[{tiny_assets / 'cards'}, {tmp_path / 'cards'}]",
            "model.name=tiny_hub",
            "reference_model.name=tiny_hub",
            "tokenizer.name=tiny_hub",
            *regime(2, 2),
        ],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_metrics(out, "train")
    assert rows[0]["DPO Loss"] == pytest.approx(0.693147, abs=1e-5)
    assert len(rows) == 2
