"""A LoRA run's checkpoints hold its adapters, not the frozen base model.

fairseq2's trainer saves and restores the model through the model's
data-parallel facade; :class:`AdapterFacade` wraps that facade so that a
checkpoint's model state is the adapter weights alone (a few MB where the base
is GB), and restoring one puts them back over the base already in memory.
The base itself is loaded again from where the first start loaded it
(:func:`restore_base_weights`): fairseq2 builds a resumed model without weights,
expecting the checkpoint to hold them all.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import yaml
from fairseq2.assets import AssetCard
from fairseq2.logging import log
from fairseq2.models.family import ModelFamily
from fairseq2.nn.data_parallel import (
    DataParallelFacade,
    get_data_parallel_facade,
    set_data_parallel_facade,
)
from fairseq2.nn.utils.module import reset_non_persistent_buffers, to_empty
from fairseq2.recipe.base import RecipeContext
from fairseq2.recipe.config import ModelSection
from torch import Tensor
from torch.nn import Module
from typing_extensions import override

from fairseq2_preference.models.lora import is_adapter_key


class AdapterFacade(DataParallelFacade):
    """The model's own facade, with state dicts restricted to the adapters."""

    def __init__(self, inner: DataParallelFacade) -> None:
        self._inner = inner

    @override
    def state_dict(self) -> dict[str, object]:
        return {k: v for k, v in self._inner.state_dict().items() if is_adapter_key(k)}

    @override
    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        full = self._inner.state_dict()
        expected = {k for k in full if is_adapter_key(k)}
        if set(state_dict) != expected:
            missing = sorted(expected - set(state_dict))[:3]
            unexpected = sorted(set(state_dict) - expected)[:3]
            raise ValueError(
                "The checkpoint's adapters do not match the model's LoRA layers (missing "
                f"{missing or 'none'}, unexpected {unexpected or 'none'}): it was written "
                "with other `lora` settings."
            )
        self._inner.load_state_dict({**full, **state_dict})

    @override
    def no_sync(self) -> AbstractContextManager[None]:
        return self._inner.no_sync()

    @override
    def clip_grad_norm(self, max_norm: float | None) -> Tensor:
        return self._inner.clip_grad_norm(max_norm)

    @override
    def summon_full_parameters(self) -> AbstractContextManager[None]:
        return self._inner.summon_full_parameters()


def save_adapters_only(model: Module) -> None:
    """Make the checkpoints of ``model`` (the data-parallel one the trainer trains)
    hold its adapters only; call before the trainer is created."""
    set_data_parallel_facade(model, AdapterFacade(get_data_parallel_facade(model)))


def restore_base_weights(context: RecipeContext, section: ModelSection, model: Module) -> None:
    """Give a resumed LoRA model its frozen base weights, from where the first start
    loaded them.

    On a resume fairseq2 builds the model on the meta device and expects the
    checkpoint to fill it; the checkpoint of a LoRA run holds the adapters alone.
    fairseq2 wrote the model's full config to ``checkpoints/model.yaml`` before the
    model reaches the recipe; with it the family loads the same checkpoint
    (``model.name``'s card or ``model.path``) on every rank, and its weights are
    copied into ``model`` (briefly two copies of the base in memory).
    """
    metadata = yaml.safe_load((Path(context.output_dir) / "checkpoints" / "model.yaml").read_text())
    family = context.resolver.resolve(ModelFamily, key=metadata["model_family"])  # type: ignore[type-abstract]
    config = family.get_model_config(AssetCard(metadata["name"], metadata))
    gangs, dtype = context.gangs, section.dtype
    if section.path is not None:
        base = family.load_custom_model(
            Path(section.path), config, gangs, dtype, False, section.mmap, None
        )
    else:
        assert section.name is not None
        card = context.asset_store.retrieve_card(section.name)
        base = family.load_model(card, gangs, dtype, config, False, section.mmap)
    to_empty(model, gangs.dp.device)
    reset_non_persistent_buffers(model)
    model.load_state_dict(base.state_dict())
    del base
    log.info("Resuming a LoRA run: the base weights are reloaded from their source.")
