"""The ``hf_unpaired`` family: thumbs-up/down feedback as it comes, through ``datasets``.

Reads ``prompt`` / ``completion`` / ``label`` rows (TRL's unpaired format: the
label ``true`` for desirable) from a ``.jsonl``/``.parquet`` file, a dataset
directory or a hub id, like ``hf_preference`` reads pairs: plain strings are
trained on as they are, message lists rendered with the tokenizer's chat template.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from typing_extensions import override

from fairseq2_preference.data.hf_dataset import HfPreferenceDataset, load_splits
from fairseq2_preference.data.jsonl import UNPAIRED_ROW
from fairseq2_preference.data_prep.hf_preference import HH_TURN, Fields, RowError, to_example
from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError

HF_UNPAIRED_FAMILY: Final = "hf_unpaired"


@dataclass(kw_only=True)
class HfUnpairedDatasetConfig:
    path: str | None = None
    """A ``.jsonl``/``.json``/``.parquet`` file, a local dataset directory, or a hub
    dataset id (e.g. ``trl-lib/kto-mix-14k``)."""

    subset: str | None = None
    """The hub dataset's configuration name, if it has several."""

    prompt_field: str = "prompt"
    completion_field: str = "completion"
    label_field: str = "label"


def open_hf_unpaired_dataset(config: HfUnpairedDatasetConfig) -> HfUnpairedDataset:
    splits = load_splits(HF_UNPAIRED_FAMILY, config.path, config.subset)
    assert config.path is not None
    wanted = [config.completion_field, config.label_field]
    for name, data in splits.items():
        missing = [f for f in wanted if f not in data.column_names]
        if missing:
            found = ", ".join(repr(c) for c in data.column_names)
            raise PreferenceConfigError(
                f"{config.path} [{name}]: the {HF_UNPAIRED_FAMILY} family expects the columns "
                f"{config.prompt_field!r}, {config.completion_field!r} and {config.label_field!r}, "
                f"but the data has {found} (missing {', '.join(map(repr, missing))}). Name "
                "yours with `dataset.config_overrides.completion_field` / `label_field`, or, "
                "for pairs, use `dataset.family: hf_preference` (KTO splits each pair in two)."
            )
    return HfUnpairedDataset(config, dict(splits))


class HfUnpairedDataset(HfPreferenceDataset):
    """Rows ``{id, src | chat, tgt, label}`` of a ``datasets`` dataset."""

    schema = UNPAIRED_ROW

    def __init__(self, config: HfUnpairedDatasetConfig, splits: dict[str, Any]) -> None:
        assert config.path is not None
        fields = Fields(config.prompt_field, "chosen", "rejected")
        single_file = HfPreferenceDataset.is_single_file(config.path)
        super().__init__(config.path, splits, fields, single_file)
        self.completion_field = config.completion_field
        self.label_field = config.label_field

    @override
    def _row(self, split: str, data: Any, index: int) -> dict[str, Any]:
        row = data[index]
        row_id = str(row.get("id", f"{split}:{index}"))
        prompt, completion = row.get(self.fields.prompt), row.get(self.completion_field)
        label = row.get(self.label_field)
        try:
            if label not in (True, False, 0, 1):
                raise RowError(f"{self.label_field!r} must be true or false, not {label!r}")
            plain = isinstance(completion, str) and not HH_TURN.search(completion)
            if plain and isinstance(prompt, str):
                assert isinstance(completion, str)
                if not completion.strip():
                    raise RowError("the completion is empty")
                return {"id": row_id, "src": prompt, "tgt": completion, "label": float(label)}
            # A completion is judged alone: read it as both sides of a pair.
            as_pair = {self.fields.prompt: prompt, "chosen": completion, "rejected": completion}
            example = to_example(as_pair, row_id, self.fields, None)
        except RowError as ex:
            raise PreferenceDataError(
                f"{self.path} [{split}], row {index} (example id {row_id!r}): {ex}. Rows need "
                f"{self.fields.prompt!r} and {self.completion_field!r} as strings or message "
                f"lists, and {self.label_field!r} true or false; fix or drop the row."
            ) from None
        return {"id": row_id, "chat": example.turns, "tgt": example.chosen, "label": float(label)}
