"""The engine on CUDA: the kernels it takes, its values, gradients and memory, and the
recipe's GPU paths (fused AdamW, bf16 reference, activation checkpointing, compile,
FSDP2 over NCCL). Skipped without a GPU; ``benchmarks/gpu.sh`` runs them first.

    python -m pytest -m cuda
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fairseq2.models.llama import LLaMAConfig, create_llama_model
from fairseq2.models.transformer_lm.ac import apply_ac_to_transformer_lm
from fairseq2.models.transformer_lm.compiler import compile_transformer_lm
from torch.profiler import ProfilerActivity, profile

from fairseq2_preference.engine.logprobs import target_logps
from fairseq2_preference.engine.scoring import prepare_for_scoring, sequence_logps

from helpers import FAIRSEQ2, read_metrics, recipe_args, run_cli
from test_units import batch_of, make_examples

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CUDA = torch.device("cuda:0")
VOCAB = 128_256
FUSED_SDPA = (
    "aten::_scaled_dot_product_flash_attention",
    "aten::_scaled_dot_product_efficient_attention",
    "aten::_scaled_dot_product_cudnn_attention",
)


def llama(vocab: int = 512, dim: int = 128, layers: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = LLaMAConfig(
        model_dim=dim, max_seq_len=1024, vocab_size=vocab, pad_idx=2, num_layers=layers,
        num_attn_heads=4, num_key_value_heads=2, ffn_inner_dim=4 * dim,
    )  # fmt: skip
    return create_llama_model(config).to(CUDA)


def assert_close_in_norm(got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    """``|got - want| <= tol · |want|`` (2-norms): the bf16 tolerance of a whole tensor,
    where elementwise bounds trip on a few rounding-sensitive entries."""
    error = float((got.double() - want.double()).norm() / want.double().norm())
    assert error <= tol, f"relative error {error:.2e} > {tol:.0e}"


def ops_of(fn: Callable[[], Any]) -> set[str]:
    """The names of the operators ``fn`` ran (forward and backward)."""
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    return {event.key for event in prof.key_averages()}


def scored(model: torch.nn.Module, packed: bool, n: int = 6) -> Callable[[], torch.Tensor]:
    batch = batch_of(make_examples(n, seed=11, vocab=500), packed=packed)
    batch.to(CUDA)

    def run() -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            sums, _ = sequence_logps(model, batch)
        sums.sum().backward()
        return sums.detach()

    return run


@pytest.mark.parametrize("packed", [True, False])
def test_fused_attention_kernels_run_for_packed_and_padded_batches(packed: bool) -> None:
    model = llama()
    prepare_for_scoring(model)
    ops = ops_of(scored(model, packed))
    assert "aten::_scaled_dot_product_attention_math" not in ops
    if packed:  # the variable-length kernel: no padded block, no mask
        assert {"aten::_flash_attention_forward", "aten::_flash_attention_backward"} <= ops
    else:
        assert ops & set(FUSED_SDPA), sorted(o for o in ops if "attention" in o)


def test_packed_equals_padded_under_bf16() -> None:
    model = llama()
    prepare_for_scoring(model)
    packed = scored(model, packed=True)()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    padded = scored(model, packed=False)()
    torch.testing.assert_close(packed, padded, rtol=1e-2, atol=5e-2)
    for got, want in zip(packed_grads, (p.grad for p in model.parameters()), strict=True):
        assert want is not None
        assert_close_in_norm(got, want, 2e-2)


def test_engine_equals_float64_at_llama3_vocab_under_bf16() -> None:
    torch.manual_seed(0)
    rows, dim = 600, 256  # two chunks at the default budget
    hidden = torch.randn(rows, dim, device=CUDA, requires_grad=True)
    weight = (0.05 * torch.randn(VOCAB, dim, device=CUDA)).requires_grad_()
    targets = torch.randint(0, VOCAB, (rows,), device=CUDA)
    upstream = torch.randn(rows, device=CUDA)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        got = target_logps(hidden, weight, None, targets)
    (got * upstream).sum().backward()

    h64 = hidden.detach().bfloat16().double().requires_grad_()
    w64 = weight.detach().bfloat16().double().requires_grad_()
    want = torch.log_softmax(h64 @ w64.T, -1).gather(1, targets[:, None])[:, 0]
    (want * upstream.double()).sum().backward()

    assert got.dtype == torch.float32 and weight.grad is not None
    assert weight.grad.dtype == torch.float32
    torch.testing.assert_close(got.double(), want.detach(), rtol=1e-2, atol=2e-2)
    assert hidden.grad is not None and h64.grad is not None and w64.grad is not None
    assert_close_in_norm(hidden.grad, h64.grad, 1e-2)
    assert_close_in_norm(weight.grad, w64.grad, 1e-2)


def test_engine_peak_memory_is_a_fraction_of_float32_logits() -> None:
    """Measured with the CUDA allocator: forward + backward at vocab 128,256 against
    one float32 ``[T, V]`` tensor (4.2 GB here)."""
    rows, dim = 8192, 2048
    hidden = torch.randn(rows, dim, device=CUDA, requires_grad=True)
    weight = (0.02 * torch.randn(VOCAB, dim, device=CUDA)).requires_grad_()
    targets = torch.randint(0, VOCAB, (rows,), device=CUDA)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        target_logps(hidden, weight, None, targets).sum().backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    assert peak <= 0.35 * 4 * rows * VOCAB, f"{peak / 2**30:.2f} GiB"


def test_activation_checkpointing_gives_the_same_gradients() -> None:
    grads = []
    for checkpointed in (False, True):
        model = llama()
        if checkpointed:
            apply_ac_to_transformer_lm(model, 1)  # type: ignore[arg-type]
        prepare_for_scoring(model)
        batch = batch_of(make_examples(5, seed=3, vocab=500), packed=True)
        batch.to(CUDA)
        sums, _ = sequence_logps(model, batch)  # float32: reproducible kernels
        sums.sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_compiled_model_equals_eager() -> None:
    """``model.compile: true`` compiles each decoder layer with inductor."""
    results = []
    for compiled in (False, True):
        model = llama()
        prepare_for_scoring(model)
        if compiled:
            torch._dynamo.reset()
            compile_transformer_lm(model)
        outputs = [scored(model, packed)() for packed in (True, False, True)]
        grads = torch.cat([p.grad.flatten() for p in model.parameters()])
        results.append((outputs, grads))
    for got, want in zip(results[1][0], results[0][0], strict=True):
        torch.testing.assert_close(got, want, rtol=1e-2, atol=5e-2)
    assert_close_in_norm(results[1][1], results[0][1], 2e-2)
    torch._dynamo.reset()


def cuda_run(out: Path, assets: Path, *overrides: str, nproc: int = 1) -> list[dict[str, Any]]:
    args = recipe_args(out, assets, ["regime.num_steps=6", *overrides])
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(nproc), "--no-python"]  # fmt: skip
    # fairseq2 picks cuda:$LOCAL_RANK when FAIRSEQ2_DEVICE is unset (the tests set cpu)
    result = run_cli([*launcher, str(FAIRSEQ2), *args], timeout=600, env={"FAIRSEQ2_DEVICE": None})
    assert result.returncode == 0, result.stderr[-4000:]
    return read_metrics(out, "train")


def test_recipe_on_cuda_fused_adamw_bf16_reference(tmp_path: Path, tiny_assets: Path) -> None:
    """The defaults on a GPU: bf16 autocast, a bf16 reference, fused AdamW; the
    step-1 loss is ln 2 up to the bf16 rounding of the policy's activations."""
    metrics = cuda_run(
        tmp_path / "run",
        tiny_assets,
        "trainer.mixed_precision.mode=static",
        "optimizer.config.impl=fused",
        "regime.validate_every_n_steps=3",
        "regime.checkpoint_every_n_steps=3",
    )
    assert float(metrics[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=5e-3)
    assert float(metrics[-1]["DPO Loss"]) < float(metrics[0]["DPO Loss"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_fsdp2_over_nccl_two_ranks_equal_one(tmp_path: Path, tiny_assets: Path) -> None:
    common = ("trainer.mixed_precision.mode=off", "regime.validate_every_n_steps=3",
              "regime.checkpoint_every_n_steps=3")  # fmt: skip
    one = cuda_run(tmp_path / "one", tiny_assets, *common, "dataset.batch_size=8")
    two = cuda_run(
        tmp_path / "two", tiny_assets, *common, "dataset.batch_size=4",
        "trainer.data_parallelism=fsdp", nproc=2,
    )  # fmt: skip
    for a, b in zip(two, one, strict=True):
        for key in ("Loss", "Rewards/Margins", "Gradient Norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key


def test_deterministic_mode_repeats_bitwise() -> None:
    """``common.deterministic``: the packed path takes the block route and two
    identical backward passes give identical gradients, bit for bit."""
    model = llama()
    prepare_for_scoring(model)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        grads = []
        for _ in range(2):
            model.zero_grad()
            ops = ops_of(scored(model, packed=True))
            grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        assert "aten::_flash_attention_forward" not in ops
    finally:
        torch.use_deterministic_algorithms(False)
    assert torch.equal(grads[0], grads[1])
