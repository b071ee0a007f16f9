"""Config rules that are not plain defaults."""

from __future__ import annotations

import pytest
import torch
from fairseq2.data_type import DataType

from fairseq2_preference.config.sections import (
    PreferenceFinetuneConfig,
    PreferenceReferenceModelSection,
    resolve_reference_dtype,
)


@pytest.mark.parametrize(
    ("mode", "parallelism", "expected"),
    [
        ("static", "fsdp", torch.bfloat16),  # FSDP casts the policy's parameters
        ("static", "ddp", torch.bfloat16),  # DDP: autocast over fp32 parameters, same matmuls
        ("auto", "fsdp", torch.bfloat16),
        ("off", "fsdp", torch.float32),
    ],
)
def test_reference_dtype_is_the_training_dtype(
    mode: str, parallelism: str, expected: DataType
) -> None:
    config = PreferenceFinetuneConfig()
    config.trainer.mixed_precision.mode = mode  # type: ignore[assignment]
    config.trainer.data_parallelism = parallelism  # type: ignore[assignment]
    resolve_reference_dtype(config)
    assert config.reference_model is not None and config.reference_model.dtype == expected


def test_an_explicit_reference_dtype_is_kept() -> None:
    config = PreferenceFinetuneConfig(
        reference_model=PreferenceReferenceModelSection(name="x", dtype=torch.float16)
    )
    resolve_reference_dtype(config)
    assert config.reference_model is not None and config.reference_model.dtype == torch.float16


def test_defaults_target_one_8_gpu_node() -> None:
    config = PreferenceFinetuneConfig()
    assert config.model.name == "llama3_1_8b_instruct"
    assert config.trainer.data_parallelism == "fsdp"
    assert config.trainer.mixed_precision.mode == "static"
    assert config.trainer.mixed_precision.dtype == torch.bfloat16
    assert config.trainer.activation_checkpointing.mode == "layerwise"
    assert config.criterion.name == "dpo"
    assert config.common.no_sweep_dir  # OUT is the run directory; resuming works
