"""A LoRA run's adapters in PEFT's format, for the Hugging Face Llama they were trained on.

``peft.PeftModel.from_pretrained(base, OUT)`` loads the result on top of the base
model exported to (or downloaded in) the Hugging Face layout:
``adapter_config.json`` and ``adapter_model.safetensors`` with PEFT's key names
(``base_model.model.model.layers.<i>.self_attn.q_proj.lora_A.weight``, ...).

Two conversions besides the names: fairseq2's Llama keeps the query and key
projections' output rows in Meta's rotary order and Hugging Face in its own, so
``B`` of ``q_proj``/``k_proj`` (whose rows are those outputs) is permuted as
fairseq2's converter permutes the weights; ``A`` is unchanged. The scaling is
PEFT's own: ``lora_alpha / r``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from fairseq2_preference.models.lora import LoraConfig

HF_MODULES = {
    "self_attn.q_proj": "self_attn.q_proj",
    "self_attn.k_proj": "self_attn.k_proj",
    "self_attn.v_proj": "self_attn.v_proj",
    "self_attn.output_proj": "self_attn.o_proj",
    "ffn.gate_proj": "mlp.gate_proj",
    "ffn.inner_proj": "mlp.up_proj",
    "ffn.output_proj": "mlp.down_proj",
}
"""fairseq2's Llama module names → Hugging Face's (the converter's key map)."""

ADAPTER_KEY = re.compile(r"decoder\.layers\.(\d+)\.(.+)\.lora_([AB])")

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def rotary_rows(weight: Tensor, num_heads: int) -> Tensor:
    """Reorder the output rows of a query/key projection (or of its ``B``) from
    fairseq2's rotary layout to Hugging Face's."""
    head_dim = weight.size(0) // num_heads
    columns = weight.size(1)
    return weight.view(num_heads, head_dim // 2, 2, columns).transpose(1, 2).reshape(-1, columns)


def peft_state_dict(
    adapters: Mapping[str, Tensor], num_heads: int, num_kv_heads: int
) -> dict[str, Tensor]:
    """PEFT's keys and layout for the ``lora_A``/``lora_B`` entries of a fairseq2 Llama."""
    out = {}
    for key, value in adapters.items():
        match = ADAPTER_KEY.fullmatch(key)
        if match is None or match.group(2) not in HF_MODULES:
            raise ValueError(f"{key} is not an adapter of a fairseq2 Llama linear layer.")
        layer, module, which = match.groups()
        if which == "B" and module == "self_attn.q_proj":
            value = rotary_rows(value, num_heads)
        elif which == "B" and module == "self_attn.k_proj":
            value = rotary_rows(value, num_kv_heads)
        name = f"base_model.model.model.layers.{layer}.{HF_MODULES[module]}.lora_{which}.weight"
        out[name] = value.contiguous()
    return out


def target_modules(adapters: Mapping[str, Tensor], num_layers: int) -> list[str]:
    """PEFT's ``target_modules``: short names (``q_proj``) when every layer has the
    adapter, else the full module names of the layers that do."""
    by_module: dict[str, set[int]] = {}
    for key in adapters:
        match = ADAPTER_KEY.fullmatch(key)
        if match is not None:
            by_module.setdefault(HF_MODULES[match.group(2)], set()).add(int(match.group(1)))
    if all(layers == set(range(num_layers)) for layers in by_module.values()):
        return sorted(module.rpartition(".")[2] for module in by_module)
    return sorted(f"model.layers.{i}.{m}" for m, layers in by_module.items() for i in layers)


def write_peft_adapter(
    out_dir: Path,
    adapters: Mapping[str, Tensor],
    lora: LoraConfig,
    model_config: Any,
    base_model: str,
) -> None:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``out_dir``."""
    from safetensors.torch import save_file

    state = peft_state_dict(adapters, model_config.num_attn_heads, model_config.num_key_value_heads)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": lora.rank,
        "lora_alpha": lora.alpha,
        "lora_dropout": lora.dropout,
        "target_modules": target_modules(adapters, model_config.num_layers),
        "bias": "none",
        "fan_in_fan_out": False,
        "init_lora_weights": True,
        "inference_mode": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file({k: v.float() for k, v in state.items()}, str(out_dir / ADAPTER_WEIGHTS))
