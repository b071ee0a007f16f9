"""quick-start.sh and the training scripts, run as a user runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from helpers import REPO, TINY_CONFIG, read_metrics, run_cli

pytestmark = pytest.mark.slow

TORCHRUN = REPO / "example_training_scripts" / "train_torchrun.sh"
SBATCH = REPO / "example_training_scripts" / "train_slurm.sbatch"


def fake_bin(tmp_path: Path, name: str, script: str) -> dict[str, str]:
    """An environment whose PATH finds a stand-in ``name`` first."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/usr/bin/env bash\n{script}\n")
    (bin_dir / name).chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def tiny_overrides(assets: Path) -> list[str]:
    return ["--config", f"common.assets.extra_paths=[{assets / 'cards'}]", "regime.num_steps=4",
            "regime.validate_every_n_steps=2", "regime.checkpoint_every_n_steps=2"]  # fmt: skip


def test_torchrun_script_trains_on_two_processes(tmp_path: Path, tiny_assets: Path) -> None:
    out = tmp_path / "run"
    env = {
        "NUM_GPUS": "2",
        "CONFIG": str(TINY_CONFIG),
        "OUTPUT_DIR": str(out),
        "FAIRSEQ2_DEVICE": "cpu",
    }
    result = run_cli(["bash", str(TORCHRUN), *tiny_overrides(tiny_assets)], env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "logs" / "rank_1.log").is_file()  # two ranks really ran
    assert len(read_metrics(out, "train")) == 4


def test_torchrun_script_counts_visible_gpus() -> None:
    env = {"DRY_RUN": "1", "CUDA_VISIBLE_DEVICES": "0,1,2"}
    result = run_cli(["bash", str(TORCHRUN), "--config", "regime.num_steps=10"], env=env)
    assert result.returncode == 0
    assert "--nproc-per-node 3 --no-python" in result.stdout
    assert result.stdout.rstrip().endswith("--config regime.num_steps=10")


def test_torchrun_script_without_gpus_says_so(tmp_path: Path) -> None:
    env = {**fake_bin(tmp_path, "nvidia-smi", "exit 9"), "CUDA_VISIBLE_DEVICES": ""}
    result = run_cli(["bash", str(TORCHRUN)], env=env)
    assert result.returncode == 2 and "no GPU found" in result.stderr


def test_sbatch_script_runs_through_srun(tmp_path: Path, tiny_assets: Path) -> None:
    dry = run_cli(["bash", str(SBATCH)], env={"DRY_RUN": "1"})
    assert dry.returncode == 0
    assert dry.stdout.startswith("srun --kill-on-bad-exit=1 ") and "--no-sweep-dir" in dry.stdout

    # A stand-in srun that drops its own options and runs the task once, as one
    # task of a one-node job would.
    srun = 'while [[ $1 == --* ]]; do shift; done; exec "$@"'
    out = tmp_path / "run"
    env = {**fake_bin(tmp_path, "srun", srun), "CONFIG": str(TINY_CONFIG), "OUTPUT_DIR": str(out),
           "FAIRSEQ2_DEVICE": "cpu"}  # fmt: skip
    result = run_cli(["bash", str(SBATCH), *tiny_overrides(tiny_assets)], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(read_metrics(out, "train")) == 4


def test_quick_start_demo(tmp_path: Path) -> None:
    """The demo learns a preference that holds on prompts it never trained on."""
    demo = tmp_path / "demo"
    result = run_cli(["bash", str(REPO / "quick-start.sh"), "--demo"], env={"DEMO_DIR": str(demo)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[quick-start] dpo: DPO Loss 0.693 (step 1)" in result.stdout
    assert "held-out reward accuracy" in result.stdout and "TensorBoard" in result.stdout
    sft = read_metrics(demo / "runs" / "sft", "train")
    assert float(sft[-1]["NLL Loss"]) < float(sft[0]["NLL Loss"])  # type: ignore[arg-type]
    held_out = read_metrics(demo / "runs" / "dpo", "valid")
    assert float(held_out[-1]["Rewards/Accuracies"]) > 0.8  # type: ignore[arg-type]
    assert float(held_out[-1]["DPO Loss"]) < 0.6  # type: ignore[arg-type]


def test_quick_start_with_gpus_prepares_oasst2_and_uses_them_all(tmp_path: Path) -> None:
    gpus = "printf 'GPU 0: NVIDIA H100 (UUID: GPU-0)\\nGPU 1: NVIDIA H100 (UUID: GPU-1)\\n'"
    env = {**fake_bin(tmp_path, "nvidia-smi", gpus), "CARD_DIR": str(tmp_path / "cards")}
    result = run_cli(["bash", str(REPO / "quick-start.sh"), "--dry-run"], env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        "openassistant2_llama3_data_prep.py --data_dir data/oasst2" in line for line in lines
    )
    assert any("NUM_GPUS=2" in line and "train_torchrun.sh" in line for line in lines)
    assert any("llama3_1_8b_instruct_dpo.yaml" in line for line in lines)


def test_quick_start_lora_uses_the_one_gpu_config_and_lora_in_the_demo(tmp_path: Path) -> None:
    gpus = "printf 'GPU 0: NVIDIA H100 (UUID: GPU-0)\\n'"
    env = {**fake_bin(tmp_path, "nvidia-smi", gpus), "CARD_DIR": str(tmp_path / "cards")}
    result = run_cli(["bash", str(REPO / "quick-start.sh"), "--lora", "--dry-run"], env=env)
    assert result.returncode == 0, result.stderr
    assert "dpo_llama3_1_8b_lora_1gpu.yaml" in result.stdout
    demo = run_cli(["bash", str(REPO / "quick-start.sh"), "--demo", "--lora", "--dry-run"])
    assert demo.returncode == 0, demo.stderr
    dpo = [line for line in demo.stdout.splitlines() if "preference_finetune" in line]
    assert dpo and "lora=" in dpo[0]


def test_quick_start_online_iterates_from_the_sft_model(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    quick_start = ["bash", str(REPO / "quick-start.sh"), "--online", "--dry-run"]
    result = run_cli(quick_start, env={"DEMO_DIR": str(demo)})
    assert result.returncode == 0, result.stderr
    commands = [
        line.split(" --")[0] for line in result.stdout.splitlines() if "fairseq2 lm" in line
    ]
    assert commands == [
        f".venv/bin/fairseq2 lm instruction_finetune {demo}/runs/sft",
        f".venv/bin/fairseq2 lm preference_iterate {demo}/runs/online",
    ]
    assert f"policy.checkpoint_dir={demo}/runs/sft/checkpoints" in result.stdout
    refused = run_cli([*quick_start, "--lora"])
    assert refused.returncode == 2 and "for LoRA rounds add lora" in refused.stderr
