"""The dataset families: ``generic_preference``, ``generic_instruction``, ``generic_unpaired``
(jsonl) and ``hf_preference``, ``hf_unpaired`` (through ``datasets``).

Registered with fairseq2 so that a config names a dataset either by asset card
(``dataset.name``) or by family plus path (``dataset.family`` +
``dataset.config_overrides.path``). A card may give the location the fairseq2
0.4 way, ``data: <path>`` (relative to the card file), or as
``dataset_config: {path: ...}``::

    name: openassistant2_llama3_preference_train
    dataset_family: generic_preference
    data: ../data/preference/train
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from fairseq2.assets import AssetCard
from fairseq2.datasets import DatasetFamily, StandardDatasetFamily
from fairseq2.runtime.dependency import DependencyContainer, DependencyResolver, wire_object
from typing_extensions import override

from fairseq2_preference.data.dataset import JsonlDataset
from fairseq2_preference.data.hf_dataset import (
    HF_PREFERENCE_FAMILY,
    HfPreferenceDataset,
    HfPreferenceDatasetConfig,
    open_hf_preference_dataset,
)
from fairseq2_preference.data.hf_unpaired import (
    HF_UNPAIRED_FAMILY,
    HfUnpairedDataset,
    HfUnpairedDatasetConfig,
    open_hf_unpaired_dataset,
)
from fairseq2_preference.data.jsonl import INSTRUCTION_ROW, PREFERENCE_ROW, UNPAIRED_ROW, RowSchema
from fairseq2_preference.data.source import JsonlSource
from fairseq2_preference.errors import PreferenceConfigError

GENERIC_PREFERENCE_FAMILY: Final = "generic_preference"

GENERIC_INSTRUCTION_FAMILY: Final = "generic_instruction"

GENERIC_UNPAIRED_FAMILY: Final = "generic_unpaired"

SCHEMAS: Final = {
    GENERIC_PREFERENCE_FAMILY: PREFERENCE_ROW,
    GENERIC_INSTRUCTION_FAMILY: INSTRUCTION_ROW,
    GENERIC_UNPAIRED_FAMILY: UNPAIRED_ROW,
}


@dataclass(kw_only=True)
class JsonlDatasetConfig:
    path: str | None = None
    """A ``.jsonl`` file, a directory of ``.jsonl`` chunks, or a directory with
    one sub-directory per split; a local path or a URI fairseq2 can download."""


def register_dataset_families(container: DependencyContainer) -> None:
    for name, schema in SCHEMAS.items():
        register_jsonl_family(container, name, schema)
    register_card_family(
        container,
        HF_PREFERENCE_FAMILY,
        HfPreferenceDataset,
        HfPreferenceDatasetConfig,
        open_hf_preference_dataset,
    )
    register_card_family(
        container,
        HF_UNPAIRED_FAMILY,
        HfUnpairedDataset,
        HfUnpairedDatasetConfig,
        open_hf_unpaired_dataset,
    )


def register_jsonl_family(container: DependencyContainer, name: str, schema: RowSchema) -> None:
    """Register a jsonl dataset family whose rows follow ``schema``.

    The built-in families use it; a package adds its own (e.g. pairs that carry
    a ``weight``) from a ``fairseq2.extension`` entry point::

        def register_extension(container):
            register_jsonl_family(container, "weighted_preference", RowSchema(
                prompt="src", responses=("tgt_chosen", "tgt_rejected"), numbers=("weight",)))
    """

    def open_dataset(config: JsonlDatasetConfig) -> JsonlDataset:
        if config.path is None:
            raise PreferenceConfigError(
                f"The {name} dataset has no path: name a dataset asset card in "
                "`dataset.name`, or set `dataset.family` and `dataset.config_overrides.path`."
            )
        return JsonlDataset(JsonlSource.open(config.path), schema)

    register_card_family(container, name, JsonlDataset, JsonlDatasetConfig, open_dataset)


def register_card_family(
    container: DependencyContainer,
    name: str,
    kls: type[object],
    config_kls: type[object],
    opener: Callable[[Any], object],
) -> None:
    """Register fairseq2's standard dataset family, plus the ``data: <path>`` card field."""

    def create_family(resolver: DependencyResolver) -> DatasetFamily:
        standard = wire_object(
            resolver,
            StandardDatasetFamily,
            name=name,
            kls=kls,
            config_kls=config_kls,
            opener=opener,
        )
        return _CardDataFamily(standard)

    container.register(DatasetFamily, create_family, key=name)  # type: ignore[type-abstract]


class _CardDataFamily(DatasetFamily):
    """fairseq2's standard family, plus the ``data: <path>`` card field."""

    def __init__(self, inner: DatasetFamily) -> None:
        self._inner = inner

    @override
    def get_dataset_config(self, card: AssetCard) -> object:
        config = self._inner.get_dataset_config(card)
        data = card.maybe_get_field("data")
        if data is None or not hasattr(config, "path"):
            return config
        uri = data.as_uri()
        path = str(uri.to_path()) if uri.scheme == "file" else str(uri)
        return replace(config, path=path)  # type: ignore[type-var]

    @override
    def open_dataset(self, card: AssetCard, config: object | None) -> object:
        if config is None:
            config = self.get_dataset_config(card)
        return self._inner.open_dataset(card, config)

    @override
    def open_custom_dataset(self, config: object) -> object:
        return self._inner.open_custom_dataset(config)

    @property
    @override
    def name(self) -> str:
        return self._inner.name

    @property
    @override
    def kls(self) -> type[object]:
        return self._inner.kls

    @property
    @override
    def config_kls(self) -> type[object]:
        return self._inner.config_kls
