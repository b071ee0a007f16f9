"""Causal attention without a mask tensor, for packed and right-padded batches.

fairseq2's :class:`TorchSDPA` gives SDPA an explicit mask whenever a batch is
padded or packed: an ``[N, W, W]`` padding mask, or an ``[S, S]`` block-diagonal
mask over a whole packed stream (quadratic in the batch's token count). A
mask keeps PyTorch's SDPA off its flash kernels. Neither is needed for causal
self-attention:

* in a **right-padded** row, a real query at position ``t`` only sees keys
  ``<= t``, all real, so ``is_causal=True`` alone is exact for every real
  position (padding positions compute values nobody reads): SDPA's flash or
  memory-efficient kernel on CUDA;
* a **packed** stream goes, on CUDA in fp16/bf16, to the variable-length flash
  kernel (the one PyTorch's nested tensors use): each sequence attends causally
  within its own span of the stream, with no padding at all. Elsewhere (CPU,
  float32) it is scattered into a right-padded ``[n, L, H, K]`` block for the
  attention only, then gathered back: every linear layer still runs on real
  tokens alone, and the attention runs one batched causal call.

:class:`CausalNoMaskSDPA` does both and hands anything else (windowed
attention, attention weights) to the fairseq2 module it wraps.

Under ``torch.compile`` the packed path is left out of the graph: its sequence
count and longest length are Python integers that would otherwise be compiled
in, one graph per batch shape. Grouped-query attention reaches this module with
K and V already repeated by fairseq2's attention layer (its memory is spent
before SDPA could share the heads). Reproducibility on CUDA: the flash kernel's
backward and the block route's indexing backward (``index_put`` with
accumulation, like the engine's ``index_select``/``index_add_``) accumulate with
atomics, so two runs differ in the last bits. With
``torch.use_deterministic_algorithms(True)`` (fairseq2's
``common.torch.deterministic: true``) the packed path takes the block route, and
PyTorch's deterministic indexing kernels make runs bitwise repeatable.
"""

from __future__ import annotations

from typing import final

import torch
from fairseq2.models.transformer import SDPA, AttentionBiasCache, CausalAttentionBias, TorchSDPA
from fairseq2.nn import BatchLayout
from torch import Tensor
from torch.nn import Module
from torch.nn.functional import scaled_dot_product_attention
from typing_extensions import override


def _causal(q: Tensor, k: Tensor, v: Tensor, dropout_p: float, scale: float | None) -> Tensor:
    """``[N, S, H, K]`` in and out; SDPA wants ``[N, H, S, K]``."""
    attn = scaled_dot_product_attention(
        q.transpose(1, 2),
        k.transpose(1, 2),
        v.transpose(1, 2),
        dropout_p=dropout_p,
        is_causal=True,
        scale=scale,
    )
    return attn.transpose(1, 2)


FLASH_DTYPES = (torch.float16, torch.bfloat16)

FLASH_MAX_HEAD_DIM = 256


def uses_varlen_flash(q: Tensor) -> bool:
    """Whether a packed ``[S, H, K]`` query goes to the variable-length flash kernel."""
    return (
        q.is_cuda
        and q.dtype in FLASH_DTYPES
        and q.size(-1) <= FLASH_MAX_HEAD_DIM
        and q.size(-1) % 8 == 0
        and torch.backends.cuda.flash_sdp_enabled()  # type: ignore[no-untyped-call]
        and not torch.are_deterministic_algorithms_enabled()
    )


def _varlen_causal(
    q: Tensor, k: Tensor, v: Tensor, layout: BatchLayout, dropout_p: float, scale: float | None
) -> Tensor:
    """``[S, H, K]`` in and out: PyTorch's variable-length flash kernel (autograd included)."""
    cu_seqlens = layout.seq_begin_indices_pt
    longest = layout.max_seq_len
    out: Tensor = torch.ops.aten._flash_attention_forward(
        q, k, v, cu_seqlens, cu_seqlens, longest, longest, dropout_p, True, False, scale=scale
    )[0]
    return out


def _block_causal(
    q: Tensor, k: Tensor, v: Tensor, layout: BatchLayout, dropout_p: float, scale: float | None
) -> Tensor:
    """``[S, H, K]`` → a right-padded ``[n, L, H, K]`` block, causal SDPA, and back."""
    lens = layout.seq_lens_pt
    rows = torch.repeat_interleave(
        torch.arange(lens.numel(), device=lens.device), lens, output_size=q.size(0)
    )
    positions = layout.position_indices
    shape = (lens.numel(), layout.max_seq_len, *q.shape[1:])
    pq, pk, pv = (t.new_zeros(shape).index_put((rows, positions), t) for t in (q, k, v))
    return _causal(pq, pk, pv, dropout_p, scale)[rows, positions]


@torch.compiler.disable  # type: ignore[untyped-decorator]
def packed_causal(
    q: Tensor, k: Tensor, v: Tensor, layout: BatchLayout, dropout_p: float, scale: float | None
) -> Tensor:
    """Causal attention within each sequence of a packed ``[S, H, K]`` stream."""
    if uses_varlen_flash(q):
        return _varlen_causal(q, k, v, layout, dropout_p, scale)
    return _block_causal(q, k, v, layout, dropout_p, scale)


@final
class CausalNoMaskSDPA(SDPA):
    """Causal SDPA with ``is_causal=True`` instead of a mask, for packed and
    right-padded layouts; other cases go to the wrapped :class:`TorchSDPA`."""

    def __init__(self, inner: TorchSDPA) -> None:
        super().__init__()
        self.inner = inner

    @override
    def forward(
        self,
        q: Tensor,
        q_layout: BatchLayout,
        k: Tensor,
        k_layout: BatchLayout,
        v: Tensor,
        bias_cache: AttentionBiasCache,
        *,
        needs_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        if needs_weights or q_layout is not k_layout or q.shape != k.shape:
            return self.inner(q, q_layout, k, k_layout, v, bias_cache, needs_weights=needs_weights)

        dropout_p = self.inner.dropout_p if self.training else 0.0
        scale = self.inner.scale
        if not q_layout.packed:
            return _causal(q, k, v, dropout_p, scale), None
        return packed_causal(q, k, v, q_layout, dropout_p, scale), None


def use_causal_no_mask_attention(model: Module) -> int:
    """Wrap every plain causal :class:`TorchSDPA` of ``model`` in a
    :class:`CausalNoMaskSDPA`; returns how many were wrapped.

    Attention modules hold no parameters, so the state dict and any FSDP/DDP
    wrapping are untouched. Windowed or other biases keep fairseq2's module.
    """
    wrapped = 0
    for module in list(model.modules()):
        if isinstance(module, CausalNoMaskSDPA):
            continue
        for name, child in list(module.named_children()):
            if not isinstance(child, TorchSDPA):
                continue
            bias = child.bias
            if isinstance(bias, CausalAttentionBias) and bias.attn_window_len is None:
                setattr(module, name, CausalNoMaskSDPA(child))
                wrapped += 1
    return wrapped
