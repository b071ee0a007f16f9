"""Dataset families, batching and the batch type of the preference recipes."""

from __future__ import annotations

from fairseq2_preference.data.batch import PreferenceBatch as PreferenceBatch
from fairseq2_preference.data.batching import Batching as Batching
from fairseq2_preference.data.batching import LengthBatching as LengthBatching
from fairseq2_preference.data.batching import StaticBatching as StaticBatching
from fairseq2_preference.data.dataset import JsonlDataset as JsonlDataset
from fairseq2_preference.data.dataset import PreferenceDataset as PreferenceDataset
from fairseq2_preference.data.dataset import ReadOptions as ReadOptions
from fairseq2_preference.data.family import (
    GENERIC_INSTRUCTION_FAMILY as GENERIC_INSTRUCTION_FAMILY,
)
from fairseq2_preference.data.family import (
    GENERIC_PREFERENCE_FAMILY as GENERIC_PREFERENCE_FAMILY,
)
from fairseq2_preference.data.family import (
    GENERIC_UNPAIRED_FAMILY as GENERIC_UNPAIRED_FAMILY,
)
from fairseq2_preference.data.family import JsonlDatasetConfig as JsonlDatasetConfig
from fairseq2_preference.data.family import register_dataset_families as register_dataset_families
from fairseq2_preference.data.family import register_jsonl_family as register_jsonl_family
from fairseq2_preference.data.hf_dataset import HF_PREFERENCE_FAMILY as HF_PREFERENCE_FAMILY
from fairseq2_preference.data.hf_dataset import HfPreferenceDataset as HfPreferenceDataset
from fairseq2_preference.data.hf_dataset import (
    HfPreferenceDatasetConfig as HfPreferenceDatasetConfig,
)
from fairseq2_preference.data.hf_unpaired import HF_UNPAIRED_FAMILY as HF_UNPAIRED_FAMILY
from fairseq2_preference.data.jsonl import INSTRUCTION_ROW as INSTRUCTION_ROW
from fairseq2_preference.data.jsonl import PREFERENCE_ROW as PREFERENCE_ROW
from fairseq2_preference.data.jsonl import UNPAIRED_ROW as UNPAIRED_ROW
from fairseq2_preference.data.jsonl import RowSchema as RowSchema
from fairseq2_preference.data.source import JsonlSource as JsonlSource
from fairseq2_preference.data.unpaired import StepGroupReader as StepGroupReader
from fairseq2_preference.data.unpaired import UnpairedDataset as UnpairedDataset
