"""``fairseq2 lm preference_reference_logps OUT --config-file X.yaml``: fill the cache.

Takes the very config a training run uses, so it computes the same cache keys,
and scores the training split (and the validation split, when the run would
validate) with the reference model, data-parallel over all ranks (``torchrun``
as for training). Entries that are already complete are skipped. Afterwards any
number of runs with ``reference_model.cache: read`` (or ``auto``) and other
criteria or hyper-parameters train from the entries with no reference model.
``OUT/reference_logps.json`` lists the entries.
"""

from __future__ import annotations

import json

from fairseq2.logging import log
from fairseq2.recipe.base import RecipeContext
from fairseq2.task import Task
from fairseq2.utils.rng import use_deterministic
from typing_extensions import override

from fairseq2_preference.config.sections import PreferenceFinetuneConfig
from fairseq2_preference.data import PreferenceDataset, ReadOptions
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.models.checkpoints import use_checkpoint_chat_template
from fairseq2_preference.recipe.preference import (
    PreferenceFinetuneRecipe,
    read_options,
    validation_dataset,
)
from fairseq2_preference.reference.fill import SplitEntry, autocast_dtype, fill
from fairseq2_preference.reference.setup import complete_keys, reference_cache, split_entries
from fairseq2_preference.reference.store import ReferenceCache

SUMMARY = "reference_logps.json"


class ReferenceLogpsRecipe(PreferenceFinetuneRecipe):
    """The training recipe's config and components; a forward-only task."""

    @override
    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(PreferenceFinetuneConfig)
        if config.reference_model is None:
            raise PreferenceConfigError(
                "`reference_model` is null: there is no reference model to compute log-probs "
                "with. Set `reference_model.name` (or `path` and `family`)."
            )
        if config.common.deterministic:
            use_deterministic(True, warn_only=True)
        section = config.dataset
        dataset = context.get_dataset_as(PreferenceDataset)  # type: ignore[type-abstract]
        splits = {"train": (dataset, section.train_split)}
        valid = validation_dataset(context, config, dataset)
        if valid is not None and section.valid_split is not None:
            splits["valid"] = (valid, section.valid_split)
        cache = reference_cache(config)
        entries = split_entries(context, config, splits, cache)
        budget = section.max_num_valid_tokens or section.max_num_tokens
        options = read_options(config, budget, training=False)
        return ReferenceLogpsTask(context, config, cache, entries, options)


class ReferenceLogpsTask(Task):
    """Scores the entries that are not complete yet, then writes the summary."""

    def __init__(
        self,
        context: RecipeContext,
        config: PreferenceFinetuneConfig,
        cache: ReferenceCache,
        entries: list[SplitEntry],
        options: ReadOptions,
    ) -> None:
        self._context = context
        self._config = config
        self._cache = cache
        self._entries = entries
        self._options = options

    @override
    def run(self) -> None:
        context, gangs = self._context, self._context.gangs
        complete = complete_keys(self._cache, self._entries, gangs)
        todo = [e for e in self._entries if e.key not in complete]
        for entry in self._entries:
            if entry not in todo:
                log.info(
                    "Reference cache entry {} ({} data) is already complete.",
                    self._cache.entry(entry.key),
                    entry.role,
                )
        if todo:
            tokenizer = context.get_tokenizer()
            use_checkpoint_chat_template(tokenizer, self._config.tokenizer)
            fill(
                context.get_model("reference_model"),
                todo,
                self._cache,
                tokenizer=tokenizer,
                gangs=gangs,
                options=self._options,
                autocast=autocast_dtype(self._config.trainer, gangs.root.size),
                progress=context.progress_reporter,
            )
        if gangs.root.rank == 0:
            summary = [
                {
                    "role": e.role,
                    "split": e.split,
                    "key": e.key,
                    "entry": str(self._cache.entry(e.key)),
                }
                for e in self._entries
            ]
            atomic_write_text(context.output_dir / SUMMARY, json.dumps(summary, indent=2) + "\n")

    @override
    def request_stop(self) -> None:
        """Nothing to stop cleanly: an interrupted fill publishes no entry."""

    @override
    def close(self) -> None:
        pass

    @property
    @override
    def step_nr(self) -> int:
        return 0
