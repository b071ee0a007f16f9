"""Two processes under torchrun (gloo) train exactly like one on the same global batch."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from helpers import FAIRSEQ2, read_metrics, recipe_args, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.distributed]

COMMON = (
    "criterion.config.nll_scale=0.5",  # every loss term: pair loss and per-pair NLL
    "regime.num_steps=6",
    "regime.validate_every_n_steps=3",
    "regime.checkpoint_every_n_steps=3",
)


def torchrun(out: Path, assets: Path, *overrides: str) -> list[dict[str, object]]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "--no-python", str(FAIRSEQ2), *recipe_args(out, assets, [*COMMON, *overrides]),
    ]  # fmt: skip
    result = run_cli(command, timeout=600, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-4000:]
    return read_metrics(out, "train")


def single(out: Path, assets: Path, *overrides: str) -> list[dict[str, object]]:
    result = run_cli([str(FAIRSEQ2), *recipe_args(out, assets, [*COMMON, *overrides])])
    assert result.returncode == 0, result.stderr[-4000:]
    return read_metrics(out, "train")


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory, tiny_assets: Path) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    single(out, tiny_assets, "dataset.batch_size=8")
    return out


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_processes_match_one(
    tmp_path: Path, tiny_assets: Path, one_process: Path, parallelism: str
) -> None:
    out = tmp_path / parallelism
    two = torchrun(
        out, tiny_assets, "dataset.batch_size=4", f"trainer.data_parallelism={parallelism}"
    )
    one = read_metrics(one_process, "train")
    assert [m["Step"] for m in two] == [m["Step"] for m in one] == list(range(1, 7))
    for a, b in zip(two, one, strict=True):
        assert a["Number of Examples"] == b["Number of Examples"] == 8  # same global batch
        for key in ("Loss", "NLL Loss", "Rewards/Margins", "Logps/Chosen", "Gradient Norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key  # type: ignore[arg-type]
    valid_two, valid_one = read_metrics(out, "valid"), read_metrics(one_process, "valid")
    assert float(valid_two[-1]["Loss"]) == pytest.approx(float(valid_one[-1]["Loss"]), rel=1e-4)  # type: ignore[arg-type]
    if parallelism == "fsdp":
        assert (out / "checkpoints" / "step_6" / "model" / "pp_00" / "tp_00" / "sdp_01.pt").exists()


def test_fsdp_bf16_reference_follows_policy_dtype(tmp_path: Path, tiny_assets: Path) -> None:
    """Under FSDP + bf16 the policy is cast to bf16; the reference must follow, or the
    step-1 loss drifts from ln 2 (reference_model.dtype is left unset here)."""
    metrics = torchrun(
        tmp_path / "bf16",
        tiny_assets,
        "dataset.batch_size=4",
        "trainer.data_parallelism=fsdp",
        "trainer.mixed_precision.mode=static",
        "regime.num_steps=3",
    )
    assert float(metrics[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=1e-6)  # type: ignore[arg-type]
