"""Atomic writers, and that the benchmark script runs (its figures live in benchmarks/)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from fairseq2_preference import io as io_module
from fairseq2_preference.io import atomic_write_jsonl, atomic_write_text

from helpers import REPO, run_cli


def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "data.jsonl"
    atomic_write_jsonl(target, [{"id": 1}])
    with pytest.raises(TypeError):
        atomic_write_jsonl(target, [{"id": 2}, {"id": object()}])
    assert target.read_text() == '{"id": 1}\n'

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(io_module.os, "fsync", disk_full)  # fails after the data is written
    with pytest.raises(OSError, match="No space"):
        atomic_write_text(target, "new content")
    assert target.read_text() == '{"id": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["data.jsonl"]


def test_step_benchmark_runs() -> None:
    result = run_cli(
        [sys.executable, str(REPO / "benchmarks" / "preference_step.py"), "--model_dim", "64",
         "--num_layers", "1", "--vocab_size", "512", "--pairs", "2", "--seq_len", "32",
         "--steps", "2", "--warmup", "1"],
        env={"FAIRSEQ2_DEVICE": "cpu"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["pairs"] == 2 and report["ms_per_step"] > 0 and report["tokens_per_second"] > 0


def test_reference_cache_benchmark_runs() -> None:
    result = run_cli(
        [sys.executable, str(REPO / "benchmarks" / "reference_cache.py"), "step", "--mode",
         "cache", "--model_dim", "64", "--num_layers", "1", "--vocab_size", "512", "--pairs",
         "2", "--seq_len", "32", "--steps", "2", "--warmup", "1"],
        env={"FAIRSEQ2_DEVICE": "cpu"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["reference_weights_mib"] == 0 and report["ms_per_step"] > 0


@pytest.mark.slow
def test_gpu_script_on_a_tiny_model(tmp_path: Path) -> None:
    """``benchmarks/gpu.sh`` end to end on the CPU (a tiny model, TRL absent: this
    project's side only): the CUDA tests are skipped, the chat-length row runs (the
    cached-reference row is the same code with ``--reference cached``; its values
    equal the live reference's by ``test_reference_training``), one table."""
    out = tmp_path / "results"
    env = {"SHAPE": "tiny", "PYTHON": sys.executable, "ROWS": "chat",
           "WORK": str(tmp_path / "work"), "TRL_PYTHON": sys.executable}  # fmt: skip
    result = run_cli(["bash", str(REPO / "benchmarks" / "gpu.sh"), str(out)], env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {row["row"]: row for row in json.loads((out / "gpu.json").read_text())["rows"]}
    reports = {(r["mode"], r["reference"]): r for row in rows.values() for r in row["sides"]}
    static, own = reports["static", "live"], reports["own", "live"]
    assert static["logits_max_abs_diff"] < 1e-4  # the checkpoint loaded with its weights
    # policy == reference at step 1: the own pass restarts from the initial weights
    # after its warm-up (it covers the warm-up batches again)
    for report in (static, own):
        assert abs(report["loss_step1_minus_ln2"]) < 1e-6
    assert static["padding_efficiency"] < 1.0 == own["padding_efficiency"]
    table = (out / "gpu.md").read_text()
    assert "ours own" in table and "chat lengths" in table
