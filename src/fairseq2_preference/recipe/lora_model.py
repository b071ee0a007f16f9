"""The policy of a LoRA run, as fairseq2 hands it to the recipe before wrapping it.

:func:`prepare_lora_model` runs in the recipe's ``setup_model`` hook, before
activation checkpointing, compilation and the data-parallel wrapper, so that all
three see the adapters: a resumed run first gets its base weights back (its
checkpoints hold the adapters alone), then the targeted layers get adapters and,
for QLoRA, the frozen linear layers are quantised.
"""

from __future__ import annotations

from fairseq2.logging import log
from fairseq2.recipe.base import RecipeContext
from torch.nn import Module

from fairseq2_preference.config.sections import PreferenceFinetuneConfig
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.lora import LoraConfig, apply_lora
from fairseq2_preference.models.quantization import bitsandbytes_problem, quantize_base
from fairseq2_preference.run.adapters import restore_base_weights


def prepare_lora_model(
    context: RecipeContext, config: PreferenceFinetuneConfig, model: Module
) -> None:
    lora = config.lora
    assert lora is not None
    if context.get_checkpoint_manager().has_checkpoint(exclude_model_only=True):
        restore_base_weights(context, config.model, model)
    try:
        wrapped = apply_lora(model, lora)
    except ValueError as ex:
        raise PreferenceConfigError(str(ex)) from None
    if lora.quantize_base != "none":
        quantized = _quantize(context, config, lora, model)
        log.info("QLoRA: {} frozen linear layers stored in {}.", quantized, lora.quantize_base)
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "LoRA on {} layers (rank {}): {:,} trained parameters.", len(wrapped), lora.rank, trained
    )


def _quantize(
    context: RecipeContext, config: PreferenceFinetuneConfig, lora: LoraConfig, model: Module
) -> int:
    problem = bitsandbytes_problem()
    if problem is None and context.gangs.root.size > 1:
        problem = (
            "`lora.quantize_base` runs in one process: DDP and FSDP cannot broadcast or "
            "shard bitsandbytes' quantised weights. Train on one GPU, or set "
            "`lora.quantize_base: none` for several."
        )
    if problem is not None:
        raise PreferenceConfigError(problem)
    precision = config.trainer.mixed_precision
    compute = precision.dtype if precision.mode != "off" else config.model.dtype
    try:
        return quantize_base(model, lora.quantize_base, compute)  # type: ignore[arg-type]
    except ValueError as ex:
        raise PreferenceConfigError(str(ex)) from None
