"""A LoRA run's trained model, rebuilt from its base and its adapter-only checkpoint.

A checkpoint of a LoRA run (``checkpoints/step_<N>/model/pp_00/tp_00/sdp_<r>.pt``)
holds the adapter weights alone: one file under DDP, one shard per rank under
FSDP2 (each a slice of the first dimension, concatenated here). The base comes
from where the run loaded it, ``model.name``'s card or ``model.path``, read from
the run's ``config.yaml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.lora import LoraConfig, apply_lora, is_adapter_key


def read_adapters(step_dir: Path) -> dict[str, Tensor]:
    """The adapter weights of a checkpoint, whole (the shards of every rank joined)."""
    files = sorted((step_dir / "model" / "pp_00" / "tp_00").glob("sdp_*.pt"))
    shards = [torch.load(f, map_location="cpu", weights_only=True) for f in files]
    if not shards or not all(is_adapter_key(key) for key in shards[0]):
        raise PreferenceConfigError(
            f"{step_dir} holds no LoRA adapters (a checkpoint of a run without `lora`?)."
        )
    return {key: torch.cat([shard[key] for shard in shards]) for key in shards[0]}


def load_lora_model(hub: Any, store: Any, run_config: dict[str, Any], config: Any) -> Module:
    """The run's base model (float32, CPU) with its LoRA layers, adapters still at zero."""
    section = run_config.get("model") or {}
    cpu, dtype = torch.device("cpu"), torch.float32
    if section.get("path"):
        model = hub.load_custom_model(Path(section["path"]), config, device=cpu, dtype=dtype)
    else:
        card = store.retrieve_card(section["name"])
        model = hub.load_model(card, device=cpu, dtype=dtype, config=config)
    apply_lora(model, LoraConfig(**run_config["lora"]))
    return model  # type: ignore[no-any-return]


def load_trained_lora_model(
    hub: Any, store: Any, run_config: dict[str, Any], config: Any, step_dir: Path
) -> tuple[Module, dict[str, Tensor]]:
    """The model as trained up to ``step_dir``, and its adapters."""
    model = load_lora_model(hub, store, run_config, config)
    adapters = read_adapters(step_dir)
    model.load_state_dict({**model.state_dict(), **adapters})
    return model.eval(), adapters
