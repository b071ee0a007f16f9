"""Causal attention without a mask tensor, for packed and right-padded batches.

fairseq2's :class:`TorchSDPA` gives SDPA an explicit mask whenever a batch is
padded or packed: an ``[N, W, W]`` padding mask, or an ``[S, S]`` block-diagonal
mask over a whole packed stream (quadratic in the batch's token count). A
mask keeps PyTorch's SDPA off its flash kernels. Neither is needed for causal
self-attention:

* in a **right-padded** row, a real query at position ``t`` only sees keys
  ``<= t``, all real, so ``is_causal=True`` alone is exact for every real
  position (padding positions compute values nobody reads);
* a **packed** stream is scattered into such a right-padded ``[n, L, H, K]``
  block for the attention only, then gathered back: every linear layer still
  runs on real tokens alone, and the attention runs one batched causal call.

:class:`CausalNoMaskSDPA` does both and hands anything else (windowed
attention, attention weights) to the fairseq2 module it wraps.
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


def _padded_index(layout: BatchLayout, num_tokens: int) -> tuple[Tensor, Tensor]:
    """(row, position) of every token of a packed stream."""
    lens = layout.seq_lens_pt
    rows = torch.repeat_interleave(
        torch.arange(lens.numel(), device=lens.device), lens, output_size=num_tokens
    )
    return rows, layout.position_indices


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

        # (S, H, K) -> (n, L, H, K) -> (S, H, K)
        rows, positions = _padded_index(q_layout, q.size(0))
        shape = (len(q_layout.seq_lens), q_layout.max_seq_len, *q.shape[1:])
        pq, pk, pv = (t.new_zeros(shape).index_put((rows, positions), t) for t in (q, k, v))
        attn = _causal(pq, pk, pv, dropout_p, scale)
        return attn[rows, positions], None


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
