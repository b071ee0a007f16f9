"""Configs written for the old fairseq2 preference recipes (the flat 0.3/0.4 layout).

The seed documentation's YAML files put every option at the top level::

    model: llama3_1_8b_instruct
    dataset: openassistant2_llama3_preference_train
    max_num_tokens: 4096
    criterion: dpo
    criterion_config: {_type_: ...DpoConfig, reference_model: ..., beta: 0.1}
    optimizer_config: {lr: 5.5e-06, ...}
    max_num_steps: 5000

:func:`translate` maps such a file onto the modern sections. A key whose value
has no modern meaning (e.g. a tensor-parallel reference model) is an error
naming the key and why; one that merely restates the old default is dropped
with a note. The caller prints the modern equivalent, so the file can be
rewritten once and for all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairseq2_preference.config.legacy_keys import (
    LR_SCHEDULERS,
    MODERN_SECTIONS,
    MOVES,
    NO_MODERN_MEANING,
    OLD_CRITERION_DEFAULTS,
)
from fairseq2_preference.errors import PreferenceConfigError


@dataclass
class Translation:
    config: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def is_legacy(raw: Mapping[str, Any]) -> bool:
    """Whether a config file uses the old flat layout."""
    if isinstance(raw.get("model"), str) or isinstance(raw.get("dataset"), str):
        return True
    return any(key not in MODERN_SECTIONS and not key.startswith("_") for key in raw)


def translate(raw: Mapping[str, Any], source: str, preference: bool) -> Translation:
    """The modern equivalent of an old flat config (``preference``: the preference
    recipe; otherwise instruction finetuning)."""
    out: dict[str, Any] = {}
    notes: list[str] = []
    problems: list[str] = []

    handlers: dict[str, Callable[[Any], None]] = {
        "model": lambda v: _model(out, v, raw),
        "dataset": lambda v: _dataset(out, v, preference),
        "train_split": lambda v: _train_split(out, v, notes),
        "dtype": lambda v: None,  # handled with mixed_precision
        "mixed_precision": lambda v: _precision(out, v, raw.get("dtype", "bfloat16")),
        "activation_checkpointing": lambda v: _set(
            out, "trainer.activation_checkpointing.mode", "layerwise" if v else "off"
        ),
        "optimizer_config": lambda v: _optimizer(out, v, notes, problems),
        "lr_scheduler": lambda v: _lr_scheduler(out, v, problems),
        "lr_scheduler_config": lambda v: _lr_scheduler_config(out, v, notes),
        "max_num_tokens": lambda v: _token_budget(out, "max_num_tokens", v, preference, notes),
        "max_num_valid_tokens": lambda v: _token_budget(
            out, "max_num_valid_tokens", v, preference, notes
        ),
        "criterion": lambda v: None,  # handled with criterion_config
        "criterion_config": lambda v: None,
        "wandb_project": lambda v: _wandb(out, "project", v),
        "wandb_run_name": lambda v: _wandb(out, "run_name", v),
        "profile": lambda v: _profile(out, v),
    }

    for key, value in raw.items():
        value = _untyped(value)
        if key in MOVES:
            _set(out, MOVES[key], value)
        elif key in handlers:
            handlers[key](value)
        elif key in NO_MODERN_MEANING:
            _no_modern_meaning(key, value, notes, problems)
        elif key in MODERN_SECTIONS:
            problems.append(f"`{key}`: a modern section mixed into an old flat layout")
        else:
            problems.append(f"`{key}`: not a key of the old preference or instruction recipes")

    if preference:
        _criterion(out, raw, notes, problems)
    elif "criterion" in raw or "criterion_config" in raw:
        problems.append("`criterion`: the instruction recipe has no criterion")

    if problems:
        lines = "\n".join(f"  - {p}" for p in problems)
        raise PreferenceConfigError(
            f"{source} uses the old flat fairseq2 config layout, and these keys have no "
            f"modern meaning:\n{lines}\nRemove them, or write the file in the modern layout "
            "(print it with --dump-config)."
        )
    return Translation(out, notes)


def _set(out: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


def _untyped(value: Any) -> Any:
    """Drop the old ``_type_`` tags (class paths) from a config mapping."""
    if isinstance(value, Mapping):
        return {k: _untyped(v) for k, v in value.items() if k != "_type_"}
    return value


def _is_path(value: str) -> bool:
    return "/" in value or value.endswith((".jsonl", ".json")) or Path(value).exists()


def _model(out: dict[str, Any], value: str, raw: Mapping[str, Any]) -> None:
    _set(out, "model.name", value)
    # The old recipes loaded the tokenizer from the model's card. A checkpoint
    # card has no tokenizer, so take the reference model's (or the old default).
    tokenizer = value
    if value.startswith("checkpoint"):
        reference = (raw.get("criterion_config") or {}).get("reference_model")
        if isinstance(reference, str) and not reference.startswith("checkpoint"):
            tokenizer = reference
        else:
            tokenizer = "llama3_1_8b_instruct"
    _set(out, "tokenizer.name", tokenizer)


def _dataset(out: dict[str, Any], value: str, preference: bool) -> None:
    if _is_path(value):
        family = "generic_preference" if preference else "generic_instruction"
        _set(out, "dataset", {"name": None, "family": family, "config_overrides": {"path": value}})
    else:
        _set(out, "dataset.name", value)


def _train_split(out: dict[str, Any], value: str, notes: list[str]) -> None:
    if value == "default":
        notes.append("train_split 'default' (the whole dataset) needs no modern setting")
    else:
        _set(out, "dataset.train_split", value)


def _precision(out: dict[str, Any], mode: str, dtype: str) -> None:
    modern = {"none": "off", "static": "static", "dynamic": "auto"}.get(mode, mode)
    if modern == "off":
        _set(out, "trainer.mixed_precision.mode", "off")
        _set(out, "model.dtype", dtype)
    else:
        _set(out, "trainer.mixed_precision", {"mode": modern, "dtype": dtype})


def _optimizer(
    out: dict[str, Any], value: dict[str, Any], notes: list[str], problems: list[str]
) -> None:
    config = dict(value)
    use_fp32 = config.pop("use_fp32", False)
    if use_fp32:
        problems.append(
            "`optimizer_config.use_fp32: true`: fairseq2 0.8 keeps fp32 optimizer state "
            "through `trainer.mixed_precision`, not an AdamW option"
        )
    elif "use_fp32" in value:
        notes.append("optimizer_config.use_fp32: false dropped (not an AdamW option any more)")
    _set(out, "optimizer.config", config)


def _wandb(out: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        _set(out, "common.metric_recorders.wandb.enabled", True)
        _set(out, f"common.metric_recorders.wandb.{key}", value)


def _profile(out: dict[str, Any], value: list[int] | None) -> None:
    if value is not None:
        skip, record = value
        profiler = {"enabled": True, "skip_n_steps": skip, "num_active_steps": record}
        _set(out, "common.profilers.torch", profiler)


def _lr_scheduler(out: dict[str, Any], value: str, problems: list[str]) -> None:
    name = LR_SCHEDULERS.get(value)
    if name is None:
        problems.append(f"`lr_scheduler: {value}`: unknown scheduler")
    else:
        _set(out, "lr_scheduler.name", name)
        if name == "passthrough":
            _set(out, "lr_scheduler.config", None)


def _lr_scheduler_config(out: dict[str, Any], value: Any, notes: list[str]) -> None:
    """0.4 used ``final_lr`` when set and ignored ``final_lr_scale``; fairseq2 0.8
    refuses both, and its default scale would otherwise be merged in."""
    config = dict(value) if isinstance(value, Mapping) else value
    if isinstance(config, dict) and config.get("final_lr") is not None:
        if config.get("final_lr_scale") is not None:
            notes.append(
                f"lr_scheduler_config: final_lr {config['final_lr']} is used, as in 0.4; "
                f"final_lr_scale {config['final_lr_scale']} dropped"
            )
        config["final_lr_scale"] = None
    _set(out, "lr_scheduler.config", config)


def _token_budget(
    out: dict[str, Any], key: str, value: Any, preference: bool, notes: list[str]
) -> None:
    """0.4's preference budget bounded pairs × longest sequence; the modern one
    counts every row the model processes, chosen and rejected: 2 × pairs ×
    longest sequence. The same batches need twice the number."""
    if preference and isinstance(value, int):
        notes.append(
            f"{key}: {value} (0.4: pairs × longest sequence) becomes {2 * value} "
            "(now: 2 × pairs × longest sequence, both responses counted), the same batches"
        )
        value = 2 * value
    _set(out, f"dataset.{key}", value)


def _no_modern_meaning(key: str, value: Any, notes: list[str], problems: list[str]) -> None:
    harmless, why = NO_MODERN_MEANING[key]
    if value == harmless:
        notes.append(f"{key}: {value!r} dropped ({why})")
    else:
        problems.append(f"`{key}: {value!r}`: {why}")


def _criterion(
    out: dict[str, Any], raw: Mapping[str, Any], notes: list[str], problems: list[str]
) -> None:
    name = raw.get("criterion", "dpo")
    config = dict(_untyped(raw.get("criterion_config") or {}))
    defaults = OLD_CRITERION_DEFAULTS.get(name)
    if defaults is None:
        problems.append(f"`criterion: {name}`: the old recipes had dpo, cpo, orpo and simpo")
        return
    if name == "dpo":
        reference = config.pop("reference_model", "llama3_1_8b_instruct")
        dtype = config.pop("reference_dtype", None)
        tp_size = config.pop("reference_tensor_parallel_size", 1)
        _no_modern_meaning("reference_tensor_parallel_size", tp_size, notes, problems)
        if reference is None:
            _set(out, "reference_model", None)
            notes.append(
                "criterion_config.reference_model: null: the reference log-probs are read from "
                "the rows' reference_score_chosen / reference_score_rejected, as before"
            )
        else:
            _set(out, "reference_model", {"name": reference, **({"dtype": dtype} if dtype else {})})
    else:
        _set(out, "reference_model", None)
    unknown = sorted(set(config) - set(defaults))
    problems.extend(
        f"`criterion_config.{k}`: not a field of the old {name} config" for k in unknown
    )
    for key, value in defaults.items():
        if key not in config:
            notes.append(f"criterion_config.{key} omitted: the old default {value!r} is kept")
    _set(out, "criterion", {"name": name, "config": {**defaults, **config}})
