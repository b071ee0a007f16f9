"""The key map of the old flat fairseq2 0.3/0.4 config layout (see :mod:`.legacy`).

Which keys move where unchanged, which old defaults a file that omits a field
meant, and which keys have no modern meaning at all. :mod:`.legacy` applies it
and translates the values that changed form.
"""

from __future__ import annotations

from typing import Any

MODERN_SECTIONS = frozenset(
    {
        "model", "reference_model", "dataset", "valid_dataset", "tokenizer", "gang", "trainer",
        "criterion", "lora", "optimizer", "lr_scheduler", "regime", "common",
    }
)  # fmt: skip

# Old defaults of the criterion configs: a file that omits a field meant these.
OLD_CRITERION_DEFAULTS: dict[str, dict[str, Any]] = {
    "dpo": {"beta": 0.1, "nll_scale": 0.0, "length_normalization": False},
    "cpo": {"beta": 1.0, "nll_scale": 1.0},
    "orpo": {"orpo_lambda": 1.0, "nll_scale": 1.0},
    "simpo": {"beta": 1.0, "gamma": 0.5, "nll_scale": 0.0},
}

LR_SCHEDULERS = {
    "cosine-annealing": "cosine_annealing", "myle": "myle", "noam": "noam",
    "polynomial-decay": "polynomial_decay", "tri-stage": "tri_stage", "noop": "passthrough",
}  # fmt: skip

# Plain moves: old key → modern path.
MOVES = {
    "max_seq_len": "dataset.max_seq_len",
    "batch_size": "dataset.batch_size",
    "example_shuffle_window": "dataset.example_shuffle_window",
    "batch_shuffle_window": "dataset.batch_shuffle_window",
    "num_prefetch": "dataset.prefetch",
    "mask_source_tokens": "dataset.mask_source_tokens",
    "src_encode_mode": "dataset.source_encode_mode",
    "tgt_encode_mode": "dataset.target_encode_mode",
    "valid_split": "dataset.valid_split",
    "model_config": "model.config_overrides",
    "torch_compile": "model.compile",
    "data_parallelism": "trainer.data_parallelism",
    "fsdp_wrap_granularity": "trainer.fsdp.granularity",
    "fsdp_reshard_after_forward": "trainer.fsdp.reshard_after_forward",
    "tensor_parallel_size": "gang.tensor_parallel_size",
    "gradient_accumulation": "trainer.grad_accumulation.num_batches",
    "max_gradient_norm": "trainer.max_grad_norm",
    "fp16_loss_scale": "trainer.fp16_loss_scale",
    "anomaly_detection": "trainer.anomaly_detection",
    "optimizer": "optimizer.name",
    "max_num_steps": "regime.num_steps",
    "max_num_data_epochs": "regime.num_data_epochs",
    "validate_after_n_steps": "regime.validate_after_n_steps",
    "validate_every_n_steps": "regime.validate_every_n_steps",
    "checkpoint_every_n_steps": "regime.checkpoint_every_n_steps",
    "checkpoint_every_n_data_epochs": "regime.checkpoint_every_n_data_epochs",
    "keep_last_n_checkpoints": "regime.keep_last_n_checkpoints",
    "publish_metrics_every_n_steps": "regime.publish_metrics_every_n_steps",
    "publish_metrics_every_n_data_epochs": "regime.publish_metrics_every_n_data_epochs",
    "resume_checkpoint_dir": "common.assets.prev_checkpoint_dir",
    "seed": "common.seed",
}

# Keys with no modern meaning: harmless at these values (dropped), an error otherwise.
NO_MODERN_MEANING: dict[str, tuple[object, str]] = {
    "keep_last_n_models": (None, "fairseq2 0.8 keeps checkpoints, not separate models"),
    "monitored_gang": (False, "fairseq2 0.8 has no monitored gang"),
    "fsdp_local_world_size": (None, "use `trainer.fsdp.hybrid: true` for hybrid sharding"),
    "reference_tensor_parallel_size": (
        1,
        "the reference model is a full replica on every data-parallel rank in fairseq2 0.8",
    ),
}
