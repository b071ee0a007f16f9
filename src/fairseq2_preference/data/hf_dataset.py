"""The ``hf_preference`` family: preference data as it comes, without a conversion step.

Reads ``prompt`` / ``chosen`` / ``rejected`` rows (TRL's preference formats)
through ``datasets.load_dataset`` from a ``.jsonl``/``.parquet`` file, a local
dataset directory, or a hub dataset id (from the HF cache when
``HF_HUB_OFFLINE=1``). Rows are interpreted exactly as the offline converter
(:mod:`fairseq2_preference.data_prep.hf_preference`) interprets them:

* plain strings are trained on as they are: ``[BOS] prompt`` then
  ``response [EOS]``, like ``generic_preference`` rows;
* message lists (or HH-RLHF transcripts, or conversations without a prompt
  column) are rendered with the training tokenizer's chat template, and the
  prompt is masked exactly where the template's generation prompt ends.

The converter stays the way to produce asset cards, a held-out split by prompt
and prompt hygiene; this family is for training on a dataset as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final

import torch
from fairseq2.data.data_pipeline import DataPipelineBuilder, read_sequence
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.recipe.error import SplitNotKnownError
from typing_extensions import override

from fairseq2_preference.data.dataset import PreferenceDataset, ReadOptions
from fairseq2_preference.data.jsonl import PREFERENCE_ROW
from fairseq2_preference.data_prep.hf_preference import (
    HH_TURN,
    Fields,
    RowError,
    load_hf_dataset,
    to_example,
)
from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError, describe

HF_PREFERENCE_FAMILY: Final = "hf_preference"

CONVERTER = "datasets/hf_preference_data_prep.py"


@dataclass(kw_only=True)
class HfPreferenceDatasetConfig:
    path: str | None = None
    """A ``.jsonl``/``.json``/``.parquet`` file (one split), a local dataset
    directory (data files named or foldered by split, or a loading script), or
    a hub dataset id such as ``trl-lib/ultrafeedback_binarized``."""

    subset: str | None = None
    """The hub dataset's configuration name, if it has several."""

    prompt_field: str = "prompt"
    chosen_field: str = "chosen"
    rejected_field: str = "rejected"


def open_hf_preference_dataset(config: HfPreferenceDatasetConfig) -> HfPreferenceDataset:
    """Load every split of ``config.path`` and check its columns."""
    splits = load_splits(HF_PREFERENCE_FAMILY, config.path, config.subset)
    assert config.path is not None
    fields = Fields(config.prompt_field, config.chosen_field, config.rejected_field)
    for name, data in splits.items():
        check_columns(f"{config.path} [{name}]", list(data.column_names), fields)
    single_file = HfPreferenceDataset.is_single_file(config.path)
    return HfPreferenceDataset(config.path, dict(splits), fields, single_file)


def load_splits(family: str, path: str | None, subset: str | None) -> Any:
    """Every split of ``path`` through ``datasets.load_dataset``, or one clear error."""
    if path is None:
        raise PreferenceConfigError(
            f"The {family} dataset has no path: set `dataset.config_overrides.path` to a "
            ".jsonl/.parquet file, a dataset directory or a hub dataset id."
        )
    try:
        return load_hf_dataset(path, subset)
    except PreferenceConfigError:
        raise  # the hub is out of reach: already one paragraph naming the alternative
    except Exception as ex:  # datasets raises many unrelated types for one cause
        raise PreferenceConfigError(
            f"`datasets.load_dataset` cannot load {path!r}: {describe(ex)} A local "
            "path must exist; a hub dataset id needs the hub or, offline "
            "(HF_HUB_OFFLINE=1), a copy in the Hugging Face datasets cache. Without "
            "either, point `dataset.config_overrides.path` to local .jsonl/.parquet files."
        ) from None


def check_columns(where: str, columns: list[str], fields: Fields) -> None:
    """Raise an error naming the columns found, the ones expected and where to go instead."""
    missing = [f for f in (fields.chosen, fields.rejected) if f not in columns]
    if not missing:
        return
    found = ", ".join(repr(c) for c in columns) or "none"
    expected = f"{fields.prompt!r} (optional), {fields.chosen!r}, {fields.rejected!r}"
    if {"src", "tgt_chosen", "tgt_rejected"} <= set(columns):
        advice = (
            "These are the columns of `generic_preference`: "
            "set `dataset.family: generic_preference`."
        )
    elif {"src", "tgt"} <= set(columns):
        advice = (
            "These are the columns of instruction data: set `dataset.family: generic_instruction`."
        )
    else:
        advice = (
            "Name your columns with `dataset.config_overrides.prompt_field`, `chosen_field` "
            f"and `rejected_field`, or convert the data with {CONVERTER} "
            "(--prompt_field/--chosen_field/--rejected_field) and use `generic_preference`."
        )
    raise PreferenceConfigError(
        f"{where}: the {HF_PREFERENCE_FAMILY} family expects the columns {expected}, but "
        f"the data has {found} (missing {', '.join(repr(m) for m in missing)}). {advice}"
    )


class HfPreferenceDataset(PreferenceDataset):
    """The splits of a ``datasets`` dataset, read row by row (memory-mapped Arrow)."""

    schema = PREFERENCE_ROW

    def __init__(
        self, path: str, splits: Mapping[str, Any], fields: Fields, single_file: bool
    ) -> None:
        self.path = path
        self.splits = splits
        self.fields = fields
        self.single_file = single_file
        """A single file is one unnamed split, which serves whichever split is asked for."""

    @staticmethod
    def is_single_file(path: str) -> bool:
        return Path(path).expanduser().is_file()

    @override
    def has_split(self, split: str) -> bool:
        return not self.single_file and split in self.splits

    @property
    @override
    def location(self) -> str:
        return self.path

    @override
    def num_examples(self, split: str) -> int:
        return len(self.splits[next(iter(self.splits)) if self.single_file else split])

    @override
    def read_rows(self, split: str) -> DataPipelineBuilder:
        if self.single_file:
            split = next(iter(self.splits))
        elif split not in self.splits:
            raise SplitNotKnownError(self.path, split, list(self.splits))
        data = self.splits[split]
        return read_sequence(range(len(data))).map(partial(self._row, split, data))

    def _row(self, split: str, data: Any, index: int) -> dict[str, Any]:
        row = data[index]
        row_id = str(row.get("id", f"{split}:{index}"))
        fields = self.fields
        prompt, chosen, rejected = (
            row.get(f) for f in (fields.prompt, fields.chosen, fields.rejected)
        )
        try:
            if isinstance(chosen, str) and isinstance(rejected, str) and not HH_TURN.search(chosen):
                if not isinstance(prompt, str):
                    raise RowError(f"{fields.prompt!r} must be a string when the responses are")
                if not chosen.strip() or not rejected.strip():
                    raise RowError("a response is empty")
                return {"id": row_id, "src": prompt, "tgt_chosen": chosen, "tgt_rejected": rejected}
            example = to_example(row, row_id, fields, None)
        except RowError as ex:
            raise PreferenceDataError(
                f"{self.path} [{split}], row {index} (example id {row_id!r}): {ex}. Rows need "
                f"{fields.prompt!r}, {fields.chosen!r} and {fields.rejected!r} as strings, or "
                "as message lists whose responses are one final assistant turn; fix or drop "
                f"the row (e.g. with {CONVERTER}, which drops and counts such rows)."
            ) from None
        return {
            "id": row_id,
            "chat": example.turns,
            "tgt_chosen": example.chosen,
            "tgt_rejected": example.rejected,
        }

    @override
    def encoder(self, tokenizer: Tokenizer, options: ReadOptions) -> Any:
        return chat_or_plain_encoder(super().encoder(tokenizer, options), tokenizer, ())


def chat_or_plain_encoder(
    encode_plain: Callable[[dict[str, Any]], dict[str, Any]],
    tokenizer: Tokenizer,
    numbers: Sequence[str],
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Encodes a row with ``chat`` turns by the tokenizer's chat template
    (:func:`encode_chat`), any other with ``encode_plain``; ``numbers`` are the
    per-example values a chat row carries to the batch."""
    template = tokenizer.create_encoder()

    def encode(row: dict[str, Any]) -> dict[str, Any]:
        if "chat" not in row:
            return encode_plain(row)
        prompt_len, seqs = encode_chat(template, row)
        return {
            "id": row["id"],
            "seqs": seqs,
            "prompt_len": prompt_len,
            "longest": max(seqs, key=len),
            "numbers": {name: row[name] for name in numbers},
        }

    return encode


def encode_chat(template: Any, row: dict[str, Any]) -> tuple[int, list[torch.Tensor]]:
    """The prompt length and each ``prompt + response`` sequence, via the chat template.

    The prompt is the conversation rendered with the generation prompt (up to and
    including the assistant header); each sequence is the conversation with the
    reply appended, which must start with exactly those tokens.
    """
    apply = getattr(template, "apply_chat_template", None)
    if apply is None:
        raise PreferenceConfigError(
            f"Example id {row['id']!r} is a conversation, but the tokenizer "
            f"({type(template).__name__}) has no chat template. Use a tokenizer with one "
            "(e.g. `tokenizer_config: {impl: hg}`), or convert the data with "
            f"{CONVERTER} --chat_template <tokenizer> and use `generic_preference`."
        )
    messages = [{"role": role, "content": text} for role, text in row["chat"]]
    prompt = list(apply(messages, add_generation_prompt=True))
    seqs = []
    for key in ("tgt_chosen", "tgt_rejected"):
        full = list(apply([*messages, {"role": "assistant", "content": row[key]}]))
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise PreferenceDataError(
                f"Example id {row['id']!r}: the chat template renders the conversation with "
                "its reply so that it does not begin with the rendered prompt, so the prompt "
                "cannot be masked at the template's boundary. Convert the data with "
                f"{CONVERTER} --chat_template <tokenizer> and use `generic_preference`."
            )
        seqs.append(torch.tensor(full, dtype=torch.int64))
    return len(prompt), seqs
