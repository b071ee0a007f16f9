"""A loss from a separately installed package is usable by name from YAML."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import FAIRSEQ2, REPO, read_jsonl_dir, read_metrics, recipe_args, run_cli, write_jsonl

EXAMPLE = REPO / "loss_functions" / "examples" / "rdpo"
WEIGHTED = REPO / "loss_functions" / "examples" / "weighted_dpo"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example packages installed (not editable) into a private directory."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE), str(WEIGHTED)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return target


def test_example_package_trains_from_its_yaml(
    tmp_path: Path, tiny_assets: Path, site: Path
) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "rdpo"
    result = run_cli(
        [str(FAIRSEQ2), "lm", "preference_finetune", str(out),
         "--config-file", str(EXAMPLE / "rdpo_tiny.yaml"), "--no-rich",
         "--config", f"common.assets.extra_paths=[{tiny_assets / 'cards'}]", "regime.num_steps=10"],
        env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(out, "train")
    assert "R-DPO Loss" in metrics[0]  # the plug-in's display name, registered on load
    assert "rdpo/length_gap" in metrics[0]  # and its own metric
    losses = [float(m["Loss"]) for m in metrics]  # type: ignore[arg-type]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0]


def test_example_package_own_tests_pass(site: Path) -> None:
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    result = run_cli(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:]


def test_without_the_package_the_name_is_unknown(tmp_path: Path, tiny_assets: Path) -> None:
    result = run_cli(
        [str(FAIRSEQ2), "lm", "preference_finetune", str(tmp_path / "x"),
         "--config-file", str(EXAMPLE / "rdpo_tiny.yaml"), "--no-rich"]
    )  # fmt: skip
    assert result.returncode == 2
    assert "'rdpo' is not a known criterion" in result.stderr + result.stdout


@pytest.mark.parametrize("weight", [0.0, 1.0])
def test_weights_from_the_data_reach_the_loss(
    tmp_path: Path, tiny_assets: Path, site: Path, weight: float
) -> None:
    rows = read_jsonl_dir(tiny_assets / "data" / "preference" / "train")
    data = write_jsonl(tmp_path / "weighted.jsonl", [{**r, "weight": weight} for r in rows])
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    out = tmp_path / "run"
    overrides = [
        "dataset.name=null",
        "dataset.family=weighted_preference",
        f"dataset.config_overrides.path={data}",
        "criterion={name: weighted_dpo}",
        "regime.num_steps=5",
    ]
    result = run_cli([str(FAIRSEQ2), *recipe_args(out, tiny_assets, overrides)], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(m["Loss"]) for m in read_metrics(out, "train")]  # type: ignore[arg-type]
    if weight == 0.0:  # zero weight: zero loss, zero gradient, the policy never moves
        assert losses == [0.0] * 5
    else:
        assert losses[0] == pytest.approx(math.log(2), abs=1e-5) and losses[-1] < losses[0]
