"""Target-token log-probabilities without full-vocabulary float32 logits.

A preference step needs one number per response token, ``log p(target)``, yet
the naive route projects *every* position to a ``[tokens, V]`` tensor, casts it
to float32 and takes a log-softmax over it: at V = 128k that is the largest
tensor of the step, twice (policy and reference), and kept for the backward.

:func:`target_logps` computes the same values from the hidden states of the
positions that count, in row chunks on a flat ``[rows, V]`` view:

* forward: per chunk, ``logits = h·Wᵀ + b`` in the compute dtype (bf16 under
  autocast), then float32 ``logsumexp`` and the target logit; only the
  per-row log-normaliser (``[rows]`` float32) is kept;
* backward: per chunk, the logits are recomputed and
  ``∂ log p(t)/∂ logits = onehot(t) − softmax``, scaled by the incoming
  gradient, flows to ``h`` and (accumulated in float32) to ``W`` and ``b``.

So the extra memory is one chunk's logits and their gradient, whatever the batch
size: see :data:`DEFAULT_CHUNK_BYTES` for how a chunk is sized. This is the shape of
Liger-Kernel's fused linear losses, except that the gradient cannot be taken in
the forward pass: a preference loss needs all sequences' sums first.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx
from torch.nn.functional import linear

DEFAULT_CHUNK_BYTES = 256 * 2**20
"""The float32 logits of one chunk, in bytes (256 MiB: 523 rows at V = 128,256).

Chunks are sized by bytes alone, whatever the batch: the transient memory of
the engine is one chunk's float32 logits plus, under autocast, their
compute-dtype copy (half as much in bf16), and a large chunk keeps the output
projection's GEMMs wide enough to run at the GPU's matmul rate (a share of the
batch would make thin, bandwidth-bound GEMMs on small batches)."""


def chunk_rows(vocab_size: int, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Rows per chunk: as many as fit ``max_chunk_bytes`` of float32 logits."""
    return max(1, max_chunk_bytes // (4 * vocab_size))


def compute_dtype(hidden: Tensor) -> torch.dtype:
    """The dtype the projection runs in: autocast's where it is on, else the input's."""
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return hidden.dtype


def _chunk_logits(hidden: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """Float32 logits of one chunk; the compute-dtype product is freed at once."""
    return linear(hidden, weight, bias).float()


def _accumulate(grad_weight: Tensor, grad_logits: Tensor, hidden: Tensor) -> None:
    """``grad_weight += grad_logitsᵀ · hidden`` in place, summed in ``grad_weight``'s dtype.

    Low-precision inputs with a float32 accumulator use the GEMM's own float32
    output on CUDA (``addmm`` with ``out_dtype``): no ``[V, D]`` temporary and no
    second pass over the accumulator. CPU has no such kernel: there the product
    is formed in the compute dtype and added.
    """
    if grad_logits.dtype == grad_weight.dtype:
        grad_weight.addmm_(grad_logits.T, hidden)
    elif grad_weight.is_cuda:
        torch.addmm(
            grad_weight, grad_logits.T, hidden, out_dtype=grad_weight.dtype, out=grad_weight
        )
    else:
        grad_weight += grad_logits.T @ hidden


class _TargetLogProbs(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        hidden: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        targets: Tensor,
        dtype: torch.dtype,
        chunk: int,
    ) -> Tensor:
        with torch.autocast(hidden.device.type, enabled=False):
            weight_c = weight.to(dtype)
            bias_c = None if bias is None else bias.to(dtype)
            out = hidden.new_empty(hidden.size(0), dtype=torch.float32)
            lse = torch.empty_like(out)
            for start in range(0, hidden.size(0), chunk):
                end = start + chunk
                logits = _chunk_logits(hidden[start:end].to(dtype), weight_c, bias_c)
                target_logits = logits.gather(1, targets[start:end, None]).squeeze(1)
                # logsumexp in place: one float32 chunk is all the memory it takes
                top = logits.amax(dim=1, keepdim=True)
                sums = logits.sub_(top).exp_().sum(dim=1)
                lse[start:end] = sums.log_().add_(top.squeeze(1))
                out[start:end] = target_logits - lse[start:end]
                del logits
        ctx.save_for_backward(hidden, weight, bias, targets, lse)  # type: ignore[arg-type]
        ctx.dtype = dtype  # type: ignore[attr-defined]
        ctx.chunk = chunk  # type: ignore[attr-defined]
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        hidden, weight, bias, targets, lse = ctx.saved_tensors
        dtype, chunk = ctx.dtype, ctx.chunk
        need_hidden, need_weight, need_bias = ctx.needs_input_grad[:3]

        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        # Summed in float32; when the weight is float32 this is its gradient itself.
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if need_weight else None
        grad_bias = None
        if bias is not None and need_bias:
            grad_bias = torch.zeros_like(bias, dtype=torch.float32)

        grad_out = grad_out.float()
        with torch.autocast(hidden.device.type, enabled=False):
            weight_c = weight.to(dtype)
            bias_c = None if bias is None else bias.to(dtype)
            for start in range(0, hidden.size(0), chunk):
                end = start + chunk
                hidden_c = hidden[start:end].to(dtype)
                grad = grad_out[start:end, None]
                # d log p(t) / d logits = onehot(t) - softmax(logits)
                grad_logits = _chunk_logits(hidden_c, weight_c, bias_c)
                grad_logits.sub_(lse[start:end, None]).exp_().mul_(-grad)
                grad_logits.scatter_add_(1, targets[start:end, None], grad)
                if grad_bias is not None:
                    grad_bias += grad_logits.sum(0)
                grad_logits_c = grad_logits.to(dtype)
                del grad_logits
                if grad_hidden is not None:
                    grad_hidden[start:end] = grad_logits_c @ weight_c
                if grad_weight is not None:
                    _accumulate(grad_weight, grad_logits_c, hidden_c)
                del grad_logits_c  # before the next chunk is allocated

        return (
            grad_hidden,
            None if grad_weight is None else grad_weight.to(weight.dtype),
            None if grad_bias is None else grad_bias.to(bias.dtype),
            None,
            None,
            None,
        )


def target_logps(
    hidden: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    targets: Tensor,
    *,
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Tensor:
    """``log softmax(hidden·Wᵀ + b)[i, targets[i]]`` for every row ``i``, in float32.

    :param hidden: ``[rows, D]``, the final hidden state of each scored position.
    :param weight: ``[V, D]``, the output projection.
    :param targets: ``[rows]``, the token whose log-probability each row gives.

    Differentiable in ``hidden``, ``weight`` and ``bias``; the logits are never
    held for more than one chunk (:func:`chunk_rows`) and are recomputed in the
    backward pass.
    """
    if hidden.dim() != 2 or targets.shape != hidden.shape[:1]:
        raise ValueError(
            f"`hidden` must be [rows, D] and `targets` [rows], but are {tuple(hidden.shape)} "
            f"and {tuple(targets.shape)}."
        )
    chunk = chunk_rows(weight.size(0), max_chunk_bytes)
    result: Tensor = _TargetLogProbs.apply(  # type: ignore[no-untyped-call]
        hidden, weight, bias, targets, compute_dtype(hidden), chunk
    )
    return result
