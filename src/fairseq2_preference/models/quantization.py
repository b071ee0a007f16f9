"""QLoRA's base: the frozen linear layers stored in 8 bits or 4 (NF4), via bitsandbytes.

Dettmers et al. 2023, https://arxiv.org/abs/2305.14314. Every linear layer of the
decoder (attention and feed-forward; not the embeddings, the output projection
or the norms) is replaced by bitsandbytes' ``Linear8bitLt`` or ``Linear4bit``
holding the base weight; LoRA adapters then train on top, in float32. Memory of
the base: about 1 byte (int8) or half a byte (NF4) per weight instead of 2 (bf16).
The reference (the base with the adapters off) is the quantised base, as in TRL's
QLoRA; an export merges the adapters into the full-precision base.

bitsandbytes runs these layers on CUDA and, from its 0.45 releases, on the CPU.
It is an optional dependency (``pip install 'fairseq2-preference[qlora]'``);
without it, or for a data-parallel run (its quantised parameters cannot be
broadcast or sharded by DDP/FSDP), the run stops with a paragraph saying so.
"""

from __future__ import annotations

from typing import Literal

import torch
from fairseq2.nn import Projection
from torch import Tensor
from torch.nn import Module
from typing_extensions import override

QuantizeBase = Literal["none", "int8", "nf4"]

DECODER_LINEAR = r"\.(self_attn|ffn)\.\w+_proj(\.base)?$"
"""The decoder's linear layers, or the frozen base inside their LoRA wrapper."""


class QuantizedProjection(Projection):
    """A frozen bitsandbytes linear layer where fairseq2 expects a ``Projection``."""

    def __init__(self, inner: Module, input_dim: int, output_dim: int) -> None:
        super().__init__(input_dim, output_dim)
        self.inner = inner

    @override
    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x)
        return out


def bitsandbytes_problem() -> str | None:
    """Why the base cannot be quantised here, or ``None``."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return (
            "`lora.quantize_base` needs bitsandbytes (CUDA, or a CPU with its 0.45+ "
            "releases): pip install 'fairseq2-preference[qlora]', or set "
            "`lora.quantize_base: none` (a bf16 base with `model.dtype: bfloat16`)."
        )
    return None


CPU_NF4_BLOCK = 32
"""bitsandbytes' CPU NF4 kernel packs output rows in blocks of 32."""


def quantize(
    layer: Projection, kind: QuantizeBase, compute_dtype: torch.dtype, name: str = "layer"
) -> Projection:
    """``layer``'s weight (and bias) in a bitsandbytes layer of ``kind`` on its device."""
    from bitsandbytes.nn.modules import Int8Params, Linear4bit, Linear8bitLt, Params4bit

    weight = layer.weight
    bias = getattr(layer, "bias", None)
    assert isinstance(weight, Tensor)
    device = weight.device
    if kind == "nf4" and device.type == "cpu" and layer.output_dim % CPU_NF4_BLOCK:
        raise ValueError(
            f"{name} has {layer.output_dim} outputs; bitsandbytes' NF4 on the CPU needs a "
            f"multiple of {CPU_NF4_BLOCK}. Use `lora.quantize_base: int8` here, or a GPU."
        )
    inner: Module
    if kind == "nf4":
        inner = Linear4bit(  # type: ignore[no-untyped-call]
            layer.input_dim, layer.output_dim, bias=bias is not None,
            compute_dtype=compute_dtype, quant_type="nf4", device="meta",
        )  # fmt: skip
        inner.weight = Params4bit(weight.detach().to("cpu"), requires_grad=False, quant_type="nf4")
    else:
        inner = Linear8bitLt(
            layer.input_dim, layer.output_dim, bias=bias is not None,
            has_fp16_weights=False, device="meta",
        )  # fmt: skip
        inner.weight = Int8Params(
            weight.detach().to("cpu"), requires_grad=False, has_fp16_weights=False
        )
    if bias is not None:
        inner.bias = torch.nn.Parameter(bias.detach().to("cpu"), requires_grad=False)
    return QuantizedProjection(inner.to(device), layer.input_dim, layer.output_dim)


def quantize_base(model: Module, kind: QuantizeBase, compute_dtype: torch.dtype) -> int:
    """Replace the decoder's frozen linear layers (LoRA's bases included, after
    :func:`~fairseq2_preference.models.lora.apply_lora`) by quantised ones; return
    how many."""
    import re

    pattern = re.compile(DECODER_LINEAR)
    count = 0
    for name, module in list(model.named_modules()):
        weight = getattr(module, "weight", None)
        if isinstance(module, Projection) and isinstance(weight, Tensor) and pattern.search(name):
            parent_name, _, child = name.rpartition(".")
            quantized = quantize(module, kind, compute_dtype, name)
            setattr(model.get_submodule(parent_name), child, quantized)
            count += 1
    return count
