"""Preference criteria: the interface, the registry and the built-in losses."""

from __future__ import annotations

from fairseq2_preference.criteria.base import CriterionConfig as CriterionConfig
from fairseq2_preference.criteria.base import PreferenceCriterion as PreferenceCriterion
from fairseq2_preference.criteria.base import SequenceLogps as SequenceLogps
from fairseq2_preference.criteria.base import logsigmoid_loss as logsigmoid_loss
from fairseq2_preference.criteria.registry import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from fairseq2_preference.criteria.registry import create_criterion as create_criterion
from fairseq2_preference.criteria.registry import criterion_config_kls as criterion_config_kls
from fairseq2_preference.criteria.registry import criterion_kls as criterion_kls
from fairseq2_preference.criteria.registry import criterion_names as criterion_names
from fairseq2_preference.criteria.registry import register_criterion as register_criterion
from fairseq2_preference.criteria.registry import (
    structure_criterion_config as structure_criterion_config,
)

# isort: split

# Built-in criteria register themselves on import.
from fairseq2_preference.criteria import dpo as dpo
from fairseq2_preference.criteria.dpo import DpoConfig as DpoConfig
from fairseq2_preference.criteria.dpo import DpoCriterion as DpoCriterion
