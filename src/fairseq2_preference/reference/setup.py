"""Where a training run gets its reference log-probs: a live model, the cache, or the data.

* The criterion needs no reference: nothing is loaded.
* ``reference_model: null``: the rows' ``reference_score_chosen`` /
  ``reference_score_rejected`` (see :mod:`.rows`).
* ``reference_model.cache: off``: the reference model, run at every step (under
  LoRA: the policy itself with its adapters off, no second model).
* ``auto`` / ``read``: the cache entries of the training and validation splits.
  Rank 0 computes their keys and checks them, and tells the other ranks, so all
  ranks decide alike. With every entry complete no reference weights are loaded
  at all; ``auto`` first fills the missing ones (loading the reference model
  once, then releasing its weights), ``read`` stops with an error instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import torch
from fairseq2.gang import Gangs
from fairseq2.logging import log
from fairseq2.recipe.base import RecipeContext
from torch.nn import Module

from fairseq2_preference.config.sections import PreferenceFinetuneConfig, resolve_reference_dtype
from fairseq2_preference.criteria import PreferenceCriterion
from fairseq2_preference.data import JsonlDataset, PreferenceDataset, ReadOptions
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.lora import adapters_disabled
from fairseq2_preference.reference.fill import SplitEntry, autocast_dtype, fill
from fairseq2_preference.reference.fingerprint import (
    DigestMemo,
    cache_key,
    data_description,
    model_description,
    tokenizer_description,
)
from fairseq2_preference.reference.rows import SCORE_FIELDS, read_row_scores
from fairseq2_preference.reference.store import ReferenceCache, default_cache_dir
from fairseq2_preference.reference.table import ReferenceTable

T = TypeVar("T")

FILL_COMMAND = "fairseq2 lm preference_reference_logps OUT_DIR --config-file <this config>"


@dataclass
class ReferenceSource:
    model: Module | None = None
    """The live reference model, or ``None``."""

    is_base: bool = False
    """The reference is the policy's base with its LoRA adapters off."""

    tables: dict[str, ReferenceTable] = field(default_factory=dict)
    """Reference log-probs by role (``train``, ``valid``) when no live model runs."""


def reference_cache(config: PreferenceFinetuneConfig) -> ReferenceCache:
    section = config.reference_model
    cache_dir = section.cache_dir if section is not None else None
    return ReferenceCache(Path(cache_dir).expanduser() if cache_dir else default_cache_dir())


def split_entries(
    context: RecipeContext,
    config: PreferenceFinetuneConfig,
    splits: Mapping[str, tuple[PreferenceDataset, str]],
    cache: ReferenceCache,
) -> list[SplitEntry]:
    """The cache keys of ``splits`` (role → dataset, split); computed on rank 0, shared."""
    section = config.reference_model
    assert section is not None

    def compute() -> dict[str, tuple[str, dict[str, Any]]]:
        memo = DigestMemo(cache.root / "digests.json")
        reference = model_description(section, context.asset_store, memo)
        tokenizer = tokenizer_description(config.tokenizer, context.asset_store, memo)
        data = config.dataset
        encoding = {
            "source_encode_mode": data.source_encode_mode,
            "target_encode_mode": data.target_encode_mode,
            "mask_source_tokens": data.mask_source_tokens,
            "min_seq_len": data.min_seq_len,
            "max_seq_len": data.max_seq_len,
        }
        autocast = autocast_dtype(config.trainer, context.gangs.root.size)
        keys = {}
        for role, (dataset, split) in splits.items():
            keys[role] = cache_key(
                data=data_description(dataset, split, memo),
                reference=reference,
                tokenizer=tokenizer,
                encoding=encoding,
                autocast=autocast,
            )
        memo.save()
        return keys

    keys = on_rank_zero(context.gangs, compute)
    return [SplitEntry(role, *splits[role], *keys[role]) for role in splits]


def on_rank_zero(gangs: Gangs, compute: Callable[[], T]) -> T:
    """``compute()`` on rank 0, sent to every rank, so that all ranks decide alike."""
    result: list[object] = [compute() if gangs.root.rank == 0 else None]
    gangs.root.broadcast_objects(result)
    return cast(T, result[0])


def complete_keys(cache: ReferenceCache, entries: Sequence[SplitEntry], gangs: Gangs) -> set[str]:
    """The keys of ``entries`` whose cache entry is complete (as rank 0 sees it)."""
    return on_rank_zero(gangs, lambda: {e.key for e in entries if cache.load(e.key) is not None})


def prepare_reference(
    context: RecipeContext,
    config: PreferenceFinetuneConfig,
    criterion: PreferenceCriterion,
    splits: Mapping[str, tuple[PreferenceDataset, str]],
    options: ReadOptions,
    base: Module | None = None,
) -> ReferenceSource:
    """The reference log-probs of this run (see the module docstring). ``base``: the
    policy of a LoRA run, whose adapters off give the reference (no weights loaded)."""
    section = config.reference_model
    if section is not None and section.dtype is None:
        # Only a config object handed to `fairseq2.recipe.run()` skips structuring;
        # there the recipe sees that very object, so resolving it here takes effect.
        resolve_reference_dtype(config)
    if not criterion.needs_reference:
        if section is not None:
            log.info(
                "Criterion '{}' is reference-free; `reference_model` is not loaded.", criterion.name
            )
        return ReferenceSource()
    if section is None:
        return ReferenceSource(tables=row_scores(criterion, splits))
    if section.cache == "off":
        if base is not None:
            log.info("LoRA: the reference is the base model with its adapters off.")
            return ReferenceSource(is_base=True)
        return ReferenceSource(model=context.get_model("reference_model"))

    cache = reference_cache(config)
    entries = split_entries(context, config, splits, cache)
    complete = complete_keys(cache, entries, context.gangs)
    missing = [e for e in entries if e.key not in complete]
    if missing and section.cache == "read":
        entry = missing[0]
        raise PreferenceConfigError(
            f"`reference_model.cache` is 'read', but the cache at {cache.root} holds no complete "
            f"entry for the {entry.role} data with this reference model, tokenizer and dataset "
            f"settings (key {entry.key}). Fill it first with `{FILL_COMMAND}` (same cache_dir), "
            "or set `reference_model.cache: auto`."
        )
    if missing:
        model = context.get_model("reference_model") if base is None else base
        with nullcontext() if base is None else adapters_disabled(base):
            fill(
                model,
                missing,
                cache,
                tokenizer=context.get_tokenizer(),
                gangs=context.gangs,
                options=options,
                autocast=autocast_dtype(config.trainer, context.gangs.root.size),
                progress=context.progress_reporter,
            )
        if base is None:
            model.to(torch.device("meta"))  # frees the weights; training reads the cache
    tables = {}
    for entry in entries:
        table = cache.load(entry.key)
        if table is None:
            raise PreferenceConfigError(
                f"Rank {context.gangs.root.rank} cannot read the reference cache entry "
                f"{cache.entry(entry.key)} that rank 0 found complete; `reference_model.cache_dir` "
                "must be on a file system every rank shares."
            )
        tables[entry.role] = table
        log.info(
            "Reference log-probs of the {} data ({} examples) read from {}.",
            entry.role,
            len(table),
            cache.entry(entry.key),
        )
    log.info("Training from cached reference log-probs: no reference model in memory.")
    return ReferenceSource(tables=tables)


def row_scores(
    criterion: PreferenceCriterion, splits: Mapping[str, tuple[PreferenceDataset, str]]
) -> dict[str, ReferenceTable]:
    tables = {}
    for role, (dataset, split) in splits.items():
        table = None
        if isinstance(dataset, JsonlDataset):
            table = read_row_scores(dataset.source.files(split), dataset.schema)
        if table is None:
            raise PreferenceConfigError(
                f"Criterion '{criterion.name}' needs a reference model, but `reference_model` is "
                f"null and the {role} data at {dataset.location} carries no "
                f"{' / '.join(SCORE_FIELDS)}. Set `reference_model.name` to a model card (e.g. "
                "the policy's), or `reference_model.path` and `reference_model.family`."
            )
        tables[role] = table
        log.info(
            "Reference log-probs of the {} data read from its rows' {}: no reference model.",
            role,
            " / ".join(SCORE_FIELDS),
        )
    return tables
