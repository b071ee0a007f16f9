"""LoRA: low-rank adapters on a frozen base, and the base itself with the adapters off.

Hu et al. 2021, https://arxiv.org/abs/2106.09685. Each targeted linear layer
``y = W x`` becomes ``y = W x + (α/r) · B A x`` with ``A`` (``r × in``) and ``B``
(``out × r``) the only trained weights. ``B`` starts at zero, so before the first
step the policy *is* the base model: a DPO step-1 loss is exactly ln 2 with the
reference being the same network with its adapters switched off
(:func:`adapters_disabled`), and no second copy of the weights exists.

Adapters are float32 whatever the base's dtype (a bf16 base halves its memory;
the adapters keep full-precision weights and optimizer state, autocast runs
their matmuls in the compute dtype). Initialisation follows PEFT: ``A`` Kaiming
uniform (``a = √5``), ``B`` zero, dropout on the adapter's input only.

Target modules are named by a regular expression over fairseq2's module names
(``decoder.layers.3.self_attn.q_proj``, ``decoder.layers.3.ffn.inner_proj``, ...)
or by a preset: ``attention`` (q, k, v, output projections) or ``all_linear``
(those and the feed-forward gate, inner and output projections).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from fairseq2.nn import Projection
from fairseq2.utils.validation import Validatable, ValidationResult
from torch import Tensor
from torch.nn import Dropout, Module, Parameter
from torch.nn.functional import linear
from typing_extensions import override

ATTENTION = r"self_attn\.(q_proj|k_proj|v_proj|output_proj)"
FEED_FORWARD = r"ffn\.(gate_proj|inner_proj|output_proj)"
TARGET_PRESETS = {"attention": ATTENTION, "all_linear": f"({ATTENTION}|{FEED_FORWARD})"}

ADAPTER_KEYS = (".lora_A", ".lora_B")
"""What distinguishes an adapter's entries in a state dict."""


@dataclass(kw_only=True)
class LoraConfig(Validatable):
    """The ``lora:`` section: train low-rank adapters on a frozen base model."""

    rank: int = 16
    """``r``, the rank of each adapter."""

    alpha: float = 32.0
    """The adapters' output is scaled by ``alpha / rank``."""

    dropout: float = 0.05
    """Dropout on each adapter's input (not on the base layer's)."""

    target_modules: str = "all_linear"
    """``attention``, ``all_linear``, or a regular expression matched against the end
    of fairseq2's module names (e.g. ``self_attn\\.(q_proj|v_proj)``)."""

    quantize_base: str = "none"
    """QLoRA: store the frozen decoder linear layers in ``int8`` or ``nf4`` (4-bit)
    with bitsandbytes (one process only); ``none`` keeps them in ``model.dtype``."""

    def pattern(self) -> re.Pattern[str]:
        expression = TARGET_PRESETS.get(self.target_modules, self.target_modules)
        return re.compile(f"(^|\\.)({expression})$")

    @override
    def validate(self) -> ValidationResult:
        result = ValidationResult()
        if self.rank < 1:
            result.add_error("`rank` must be >= 1.")
        if self.alpha <= 0:
            result.add_error("`alpha` must be > 0.")
        if not 0.0 <= self.dropout < 1.0:
            result.add_error("`dropout` must be >= 0 and < 1.")
        if self.quantize_base not in ("none", "int8", "nf4"):
            result.add_error(
                f"`quantize_base` must be 'none', 'int8' or 'nf4', but is {self.quantize_base!r}."
            )
        try:
            self.pattern()
        except re.error as ex:
            result.add_error(f"`target_modules` is not a preset nor a regular expression ({ex}).")
        return result


def _adaptable(module: Module) -> bool:
    """A projection holding its whole weight: fairseq2's ``Linear`` and its column-
    and row-sharded forms (Llama's) with a tensor-parallel size of 1."""
    weight = getattr(module, "weight", None)
    return (
        isinstance(module, Projection)
        and isinstance(weight, Tensor)
        and tuple(weight.shape) == (module.output_dim, module.input_dim)
        and not getattr(module, "sharded", False)
    )


class LoraLinear(Projection):
    """A frozen linear projection plus a trainable low-rank update."""

    def __init__(self, base: Projection, rank: int, alpha: float, dropout: float) -> None:
        super().__init__(base.input_dim, base.output_dim)
        self.base = base.requires_grad_(False)
        weight = base.weight
        assert isinstance(weight, Tensor)
        device = weight.device
        self.lora_A = Parameter(torch.empty(rank, base.input_dim, device=device))
        self.lora_B = Parameter(torch.zeros(base.output_dim, rank, device=device))
        if device.type != "meta":
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / rank
        self.dropout = Dropout(dropout) if dropout > 0 else None
        self.enabled = True

    @override
    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.base(x)
        if not self.enabled:
            return out
        h = x if self.dropout is None else self.dropout(x)
        dtype = h.dtype if not torch.is_autocast_enabled(h.device.type) else None
        down = linear(h, self.lora_A if dtype is None else self.lora_A.to(dtype))
        up = linear(down, self.lora_B if dtype is None else self.lora_B.to(dtype))
        return out + up * self.scaling

    def delta_weight(self) -> Tensor:
        """``(α/r) · B A``, float32: what merging adds to the base weight."""
        return (self.lora_B.float() @ self.lora_A.float()) * self.scaling


def apply_lora(model: Module, config: LoraConfig) -> list[str]:
    """Freeze ``model`` and wrap each targeted linear layer in a :class:`LoraLinear`;
    return the wrapped layers' names."""
    pattern = config.pattern()
    model.requires_grad_(False)
    wrapped = []
    for name, module in list(model.named_modules()):
        if _adaptable(module) and pattern.search(name):
            assert isinstance(module, Projection)
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, LoraLinear(module, config.rank, config.alpha, config.dropout))
            wrapped.append(name)
    if not wrapped:
        raise ValueError(
            f"`lora.target_modules` ({config.target_modules!r}) matches no linear layer of the "
            "model (with a tensor-parallel size of 1). "
            "fairseq2's Llama names them decoder.layers.<i>.self_attn.{q,k,v,output}_proj "
            "and decoder.layers.<i>.ffn.{gate,inner,output}_proj; the presets are "
            f"{', '.join(TARGET_PRESETS)}."
        )
    return wrapped


def lora_layers(model: Module) -> Iterator[tuple[str, LoraLinear]]:
    for name, module in model.named_modules():
        if isinstance(module, LoraLinear):
            yield name, module


def has_lora(model: Module) -> bool:
    return any(True for _ in lora_layers(model))


@contextmanager
def adapters_disabled(model: Module) -> Iterator[None]:
    """Run ``model`` as its base: every adapter off inside the block."""
    layers = [layer for _, layer in lora_layers(model)]
    for layer in layers:
        layer.enabled = False
    try:
        yield
    finally:
        for layer in layers:
            layer.enabled = True


def is_adapter_key(key: str) -> bool:
    return any(part in key for part in ADAPTER_KEYS)


def merged_state_dict(model: Module) -> dict[str, Tensor]:
    """The base model's state dict with every adapter merged into its weight
    (``W + (α/r) B A``), under the base's key names: what a full export writes."""
    state = {k: v for k, v in model.state_dict().items() if not is_adapter_key(k)}
    for name, layer in lora_layers(model):
        weight = state.pop(f"{name}.base.weight")
        state[f"{name}.weight"] = (weight.float() + layer.delta_weight()).to(weight.dtype)
        if f"{name}.base.bias" in state:
            state[f"{name}.bias"] = state.pop(f"{name}.base.bias")
    return state
