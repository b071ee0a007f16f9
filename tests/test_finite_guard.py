"""A diverging run stops at its first non-finite loss, naming the step and the
examples, and keeps its last finite checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from fairseq2.device import CPU
from fairseq2.gang import FakeGang

from fairseq2_preference.run.finite_guard import FiniteGuard, NonFiniteLossError

from helpers import train


def guard_with(losses: list[float], ids: list[list[str]]) -> FiniteGuard:
    guard = FiniteGuard(FakeGang(CPU), "OUT/checkpoints")
    guard.begin_step(7)
    for loss, batch_ids in zip(losses, ids, strict=True):
        guard.record(torch.tensor(loss), batch_ids)
    return guard


def test_finite_losses_and_gradient_pass() -> None:
    guard_with([0.5, 0.7], [["a"], ["b"]]).check(torch.tensor(3.0))


def test_the_first_non_finite_micro_batch_is_named_with_its_ids() -> None:
    guard = guard_with([0.5, float("inf"), float("nan")], [["a"], ["b", "c"], ["d"]])
    with pytest.raises(NonFiniteLossError) as error:
        guard.check(torch.tensor(1.0))
    message = str(error.value)
    assert "step 7" in message and "micro-batch 2 of 3" in message and "inf" in message
    assert "(example ids: b, c)" in message and "OUT/checkpoints" in message


def test_a_non_finite_gradient_with_finite_losses_names_every_example_of_the_step() -> None:
    guard = guard_with([0.5, 0.7], [["a"], ["b"]])
    with pytest.raises(NonFiniteLossError, match=r"gradient norm is nan .* ids: a, b"):
        guard.check(torch.tensor(float("nan")))


def test_a_new_step_forgets_the_previous_one() -> None:
    guard = guard_with([float("nan")], [["a"]])
    guard.begin_step(8)
    guard.record(torch.tensor(0.1), ["b"])
    guard.check(torch.tensor(1.0))


@pytest.mark.slow
def test_a_diverging_run_stops_and_keeps_its_last_finite_checkpoint(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """lr = 1e4 without clipping: the loss is NaN within a few steps (issue 12)."""
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as error:
        train(
            out, tiny_assets, "optimizer.config.lr=1e4", "trainer.max_grad_norm=null",
            "regime.num_steps=12", "regime.checkpoint_every_n_steps=1",
            "regime.validate_every_n_steps=12", "regime.keep_last_n_checkpoints=1",
        )  # fmt: skip
    message = str(error.value)
    found = re.search(r"Training diverged at step (\d+): the loss of micro-batch 1 of 1", message)
    assert found, message
    step = int(found.group(1))
    assert re.search(r"example ids: [a-z]+-[a-z]+-[a-z]+-[a-z]+, ", message), message

    # Only the state before the diverging step was checkpointed, and it is finite.
    steps = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    assert steps == [f"step_{step - 1}"]
    shard = out / "checkpoints" / steps[0] / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    state = torch.load(shard, map_location="cpu", weights_only=True)
    tensors = [v for v in state.values() if isinstance(v, torch.Tensor)]
    assert tensors and all(torch.isfinite(t).all() for t in tensors)


@pytest.mark.slow
@pytest.mark.distributed
def test_every_rank_stops_at_the_same_step_under_torchrun(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """The decision is reduced over the ranks: no rank trains on or waits for the others."""
    import sys

    from helpers import FAIRSEQ2, recipe_args, run_cli

    out = tmp_path / "run"
    overrides = [
        "optimizer.config.lr=1e4", "trainer.max_grad_norm=null", "trainer.data_parallelism=fsdp",
        "regime.num_steps=12", "regime.checkpoint_every_n_steps=1",
        "regime.validate_every_n_steps=12", "dataset.batch_size=4",
    ]  # fmt: skip
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--no-python", str(FAIRSEQ2), *recipe_args(out, tiny_assets, overrides),
    ]  # fmt: skip
    result = run_cli(command, timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode != 0
    steps = set()
    for rank in (0, 1):
        log = (out / "logs" / f"rank_{rank}.log").read_text()
        found = re.search(r"Training diverged at step (\d+)", log)
        assert found, log[-3000:]
        steps.add(int(found.group(1)))
    assert len(steps) == 1
    (step,) = steps
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*"))[-1] == f"step_{step - 1}"
