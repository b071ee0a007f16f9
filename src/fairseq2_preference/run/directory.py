"""A run directory knows what it holds.

Running the same command on the same output directory resumes it (see
OVERVIEW.md), which fairseq2 does whatever the config says: with another
criterion it fails on the checkpoint, with other data it silently trains on
nothing, and a changed learning rate is ignored (the optimizer's state, its
learning rate included, comes from the checkpoint) while ``config.yaml``
records the new one. Here:

* ``run_identity.yaml`` records, at the first start, what the run trains
  (:data:`TRAINED`) and how (:data:`RESTORED`). A later start that would
  resume from a checkpoint with other values is refused, naming each changed
  key, how to start fresh (another output directory) and how to continue on
  purpose: a new run that starts from the checkpoint's weights. Resuming
  itself cannot apply such changes: fairseq2 restores the model, optimizer,
  schedule, metric and data-reader state of the checkpoint.
* ``config.yaml`` of an earlier start is kept as ``config.<n>.yaml`` (our
  command line moves it aside before fairseq2 writes the new one, and moves it
  back if the start fails on a user error).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.io import atomic_write_text

IDENTITY_FILE = "run_identity.yaml"

TRAINED = (
    "model", "tokenizer", "criterion", "valid_dataset",
    "reference_model.name", "reference_model.path", "reference_model.family",
    "reference_model.arch", "reference_model.config_overrides", "reference_model.dtype",
    "dataset.name", "dataset.family", "dataset.path", "dataset.config_overrides",
    "dataset.train_split",
)  # fmt: skip
"""What is trained: the models, the data and the loss (not how the reference
log-probs are cached, nor the schedule of steps, checkpoints and metrics)."""

RESTORED = ("optimizer", "lr_scheduler")
"""What fairseq2 restores from a checkpoint, overriding the config."""


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` → ``{"a.b": 1}``; other values are leaves."""
    if isinstance(tree, Mapping) and tree:
        flat: dict[str, Any] = {}
        for key, value in tree.items():
            flat.update(flatten(value, f"{prefix}{key}."))
        return flat
    return {prefix.rstrip("."): tree}


def changes(
    recorded: Mapping[str, Any], current: Mapping[str, Any], sections: tuple[str, ...]
) -> list[str]:
    """``key: old → new`` for each key under ``sections`` that differs."""
    old, new = flatten(recorded), flatten(current)

    def inside(key: str) -> bool:
        return any(key == s or key.startswith(f"{s}.") for s in sections)

    keys = sorted(k for k in old.keys() | new.keys() if inside(k))
    missing = "(unset)"
    return [
        f"{k}: {old.get(k, missing)!r} → {new.get(k, missing)!r}"
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]


def check_run_directory(
    output_dir: Path, config: Mapping[str, Any], last_step: int | None, is_writer: bool
) -> None:
    """Refuse to resume ``output_dir`` with a config that changes what it trains
    (``config`` unstructured); record the config's identity at the first start."""
    file = output_dir / IDENTITY_FILE
    recorded = yaml.safe_load(file.read_text()) if file.is_file() else None
    if recorded is not None and last_step is not None:
        trained = changes(recorded, config, TRAINED)
        restored = changes(recorded, config, RESTORED)
        if trained or restored:
            raise PreferenceConfigError(_message(output_dir, last_step, trained, restored))
        return
    if is_writer:
        sections = {key.split(".")[0] for key in (*TRAINED, *RESTORED)}
        identity = {k: v for k, v in config.items() if k in sections}
        atomic_write_text(file, yaml.safe_dump(identity, sort_keys=False, allow_unicode=True))


def _message(output_dir: Path, step: int, trained: list[str], restored: list[str]) -> str:
    why = []
    if trained:
        why.append(f"it was trained with other settings ({'; '.join(trained)})")
    if restored:
        why.append(
            "resuming restores its optimizer and learning-rate schedule from the checkpoint, "
            f"so these changes would be ignored ({'; '.join(restored)})"
        )
    return (
        f"{output_dir} holds a run with checkpoints up to step {step}, and running again "
        f"would resume it, but {' and '.join(why)}. To start a new run, use another output "
        f"directory (or delete {output_dir}). To continue from its weights with the new "
        "settings on purpose, start a new run in another output directory from the "
        f"checkpoint: `model.name: checkpoint_step_{step}` (and `reference_model.name` if "
        f"wanted) with `common.assets.prev_checkpoint_dir: {output_dir}/checkpoints`."
    )


def set_aside_config(output_dir: Path) -> Path | None:
    """Move an earlier start's ``config.yaml`` to ``config.<n>.yaml`` before fairseq2
    writes the new one; return where it went."""
    current = output_dir / "config.yaml"
    if not current.is_file():
        return None
    n = 1
    while (output_dir / f"config.{n}.yaml").exists():
        n += 1
    kept = output_dir / f"config.{n}.yaml"
    current.rename(kept)
    return kept


def restore_config(output_dir: Path, kept: Path) -> None:
    """Undo :func:`set_aside_config` after a start that trained nothing."""
    kept.replace(output_dir / "config.yaml")
