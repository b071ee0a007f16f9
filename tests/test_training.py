"""End to end: the recipe really trains a tiny model on CPU through fairseq2's trainer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from helpers import FAIRSEQ2, read_metrics, recipe_args, regime, run_cli, train

pytestmark = pytest.mark.slow

SHORT = regime(4, 2)


def test_dpo_learns_the_preference_and_generalises(tmp_path: Path, tiny_assets: Path) -> None:
    out = tmp_path / "run"
    metrics = train(out, tiny_assets)

    losses = [float(m["Loss"]) for m in metrics]  # type: ignore[arg-type]
    assert [m["Step"] for m in metrics] == list(range(1, 41))
    assert losses[0] == pytest.approx(math.log(2), abs=1e-5)  # policy == reference
    assert sum(losses[-5:]) / 5 < 0.5 * losses[0]

    valid = read_metrics(out, "valid")
    assert [m["Step"] for m in valid] == [10, 20, 30, 40]
    # Held-out pairs use (colour, animal) combinations never seen in training.
    assert float(valid[-1]["Rewards/Accuracies"]) > 0.9  # type: ignore[arg-type]
    assert float(valid[-1]["Loss"]) < float(valid[0]["Loss"])  # type: ignore[arg-type]
    assert float(valid[-1]["Rewards/Margins"]) > 0  # type: ignore[arg-type]

    for key in (
        "DPO Loss", "NLL Loss", "Rewards/Chosen", "Rewards/Rejected",
        "Rewards/Margins", "Rewards/Accuracies", "Logps/Chosen", "Logps/Rejected",
    ):  # fmt: skip
        assert key in metrics[-1] and key in valid[-1]

    assert (out / "config.yaml").is_file()
    assert (out / "checkpoints" / "step_40").is_dir()
    assert any((out / "tb").rglob("events.out.tfevents.*"))
    assert (out / "logs" / "rank_0.log").is_file()


def test_resume_continues_from_the_last_checkpoint(tmp_path: Path, tiny_assets: Path) -> None:
    long_run = train(tmp_path / "straight", tiny_assets, *SHORT, "regime.num_steps=8")

    out = tmp_path / "resumed"
    train(out, tiny_assets, *SHORT)
    assert (out / "checkpoints" / "step_4").is_dir()
    resumed = train(out, tiny_assets, *SHORT, "regime.num_steps=8")

    # One row per step: the second run started at step 5, not from scratch.
    assert [m["Step"] for m in resumed] == list(range(1, 9))
    # Model, optimizer and data reader state were all restored.
    for a, b in zip(resumed[4:], long_run[4:], strict=True):
        assert float(a["Loss"]) == pytest.approx(float(b["Loss"]), rel=1e-5)  # type: ignore[arg-type]


def test_policy_and_reference_from_a_previous_run(tmp_path: Path, tiny_assets: Path) -> None:
    train(tmp_path / "sft", tiny_assets, *SHORT)
    checkpoints = tmp_path / "sft" / "checkpoints"

    second = train(
        tmp_path / "dpo",
        tiny_assets,
        *SHORT,
        f"common.assets.prev_checkpoint_dir={checkpoints}",
        "model.name=checkpoint_step_4",
        "reference_model.name=checkpoint_step_4",
        "regime.validate_at_start=true",
    )
    # Both models are the trained checkpoint: identical, so the loss is ln 2 again ...
    assert float(second[0]["Loss"]) == pytest.approx(math.log(2), abs=1e-5)  # type: ignore[arg-type]
    # ... and the policy is the trained one: it scores the dev set exactly as the
    # first run's final validation did, not as the initial weights did.
    sft_valid, dpo_valid = (
        read_metrics(tmp_path / "sft", "valid"),
        read_metrics(tmp_path / "dpo", "valid"),
    )
    start = float(dpo_valid[0]["Logps/Chosen"])  # type: ignore[arg-type]
    assert start == pytest.approx(float(sft_valid[-1]["Logps/Chosen"]), rel=1e-6)  # type: ignore[arg-type]
    assert start != pytest.approx(float(sft_valid[0]["Logps/Chosen"]), rel=1e-4)  # type: ignore[arg-type]


def test_reference_by_path_and_family(tmp_path: Path, tiny_assets: Path) -> None:
    card = next(yaml.safe_load_all((tiny_assets / "cards" / "tiny.yaml").read_text()))
    reference = {
        "path": str(tiny_assets / "model" / "model.pt"),
        "family": "llama",
        "arch": "llama3_2_1b",
        "config_overrides": card["model_config"],
    }
    metrics = train(
        tmp_path / "run", tiny_assets, *SHORT, f"reference_model={json.dumps(reference)}"
    )
    assert float(metrics[0]["Loss"]) == pytest.approx(math.log(2), abs=1e-5)  # type: ignore[arg-type]


def test_deterministic_option_turns_on_pytorchs_deterministic_kernels(
    tmp_path: Path, tiny_assets: Path
) -> None:
    import torch

    try:
        train(tmp_path / "run", tiny_assets, *SHORT, "common.deterministic=true")
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False


def test_command_line_run(tmp_path: Path, tiny_assets: Path) -> None:
    out = tmp_path / "cli"
    result = run_cli([str(FAIRSEQ2), *recipe_args(out, tiny_assets, ["regime.num_steps=20"])])
    assert result.returncode == 0, result.stderr[-3000:]
    losses = [float(m["Loss"]) for m in read_metrics(out, "train")]  # type: ignore[arg-type]
    assert losses[-1] < 0.7 * losses[0]


def test_gradient_accumulation_weighs_every_pair_the_same(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """With every loss term (pair loss and NLL); tests/test_units.py checks the split
    invariance on uneven response lengths, which this small data barely has."""
    nll = "criterion.config.nll_scale=0.5"
    one_batch = train(tmp_path / "one", tiny_assets, *SHORT, "dataset.batch_size=8", nll)
    accumulated = train(
        tmp_path / "two",
        tiny_assets,
        *SHORT,
        "dataset.batch_size=4",
        "trainer.grad_accumulation.num_batches=2",
        nll,
    )
    for a, b in zip(accumulated, one_batch, strict=True):
        assert a["Number of Examples"] == b["Number of Examples"] == 8
        for key in ("Loss", "NLL Loss", "Gradient Norm", "Rewards/Margins"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key  # type: ignore[arg-type]
