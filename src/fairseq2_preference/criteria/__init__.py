"""Preference criteria: the interface, the registry and the built-in losses.

Every built-in criterion registers itself when this package is imported; a
third-party one when its package's ``fairseq2_preference.criteria`` entry point
is loaded (on the first look-up of an unknown name or of :func:`criterion_names`).
"""

from __future__ import annotations

from fairseq2_preference.criteria.base import BetaConfig as BetaConfig
from fairseq2_preference.criteria.base import CriterionConfig as CriterionConfig
from fairseq2_preference.criteria.base import LogRatioCriterion as LogRatioCriterion
from fairseq2_preference.criteria.base import PolicyRewardCriterion as PolicyRewardCriterion
from fairseq2_preference.criteria.base import PreferenceCriterion as PreferenceCriterion
from fairseq2_preference.criteria.base import SequenceLogps as SequenceLogps
from fairseq2_preference.criteria.base import logsigmoid_loss as logsigmoid_loss
from fairseq2_preference.criteria.registry import ENTRY_POINT_GROUP as ENTRY_POINT_GROUP
from fairseq2_preference.criteria.registry import create_criterion as create_criterion
from fairseq2_preference.criteria.registry import criterion_kls as criterion_kls
from fairseq2_preference.criteria.registry import criterion_names as criterion_names
from fairseq2_preference.criteria.registry import register_criterion as register_criterion
from fairseq2_preference.criteria.registry import (
    structure_criterion_config as structure_criterion_config,
)
from fairseq2_preference.criteria.unpaired import UnpairedCriterion as UnpairedCriterion
from fairseq2_preference.criteria.unpaired import UnpairedLogps as UnpairedLogps

# isort: split

from fairseq2_preference.criteria.apo import ApoDownCriterion as ApoDownCriterion
from fairseq2_preference.criteria.apo import ApoZeroCriterion as ApoZeroCriterion
from fairseq2_preference.criteria.bco import BcoPairCriterion as BcoPairCriterion
from fairseq2_preference.criteria.combined import CombinedConfig as CombinedConfig
from fairseq2_preference.criteria.combined import CombinedCriterion as CombinedCriterion
from fairseq2_preference.criteria.combined import TermConfig as TermConfig
from fairseq2_preference.criteria.cpo import CpoConfig as CpoConfig
from fairseq2_preference.criteria.cpo import CpoCriterion as CpoCriterion
from fairseq2_preference.criteria.discopop import DiscoPopConfig as DiscoPopConfig
from fairseq2_preference.criteria.discopop import DiscoPopCriterion as DiscoPopCriterion
from fairseq2_preference.criteria.dpo import DpoConfig as DpoConfig
from fairseq2_preference.criteria.dpo import DpoCriterion as DpoCriterion
from fairseq2_preference.criteria.exo import ExoConfig as ExoConfig
from fairseq2_preference.criteria.exo import ExoPairCriterion as ExoPairCriterion
from fairseq2_preference.criteria.hinge import HingeCriterion as HingeCriterion
from fairseq2_preference.criteria.ipo import IpoCriterion as IpoCriterion
from fairseq2_preference.criteria.kto import KtoConfig as KtoConfig
from fairseq2_preference.criteria.kto import KtoCriterion as KtoCriterion
from fairseq2_preference.criteria.nca import NcaPairCriterion as NcaPairCriterion
from fairseq2_preference.criteria.orpo import OrpoConfig as OrpoConfig
from fairseq2_preference.criteria.orpo import OrpoCriterion as OrpoCriterion
from fairseq2_preference.criteria.robust import RobustConfig as RobustConfig
from fairseq2_preference.criteria.robust import RobustCriterion as RobustCriterion
from fairseq2_preference.criteria.sft import SftConfig as SftConfig
from fairseq2_preference.criteria.sft import SftCriterion as SftCriterion
from fairseq2_preference.criteria.simpo import SimpoConfig as SimpoConfig
from fairseq2_preference.criteria.simpo import SimpoCriterion as SimpoCriterion
from fairseq2_preference.criteria.sppo import SppoHardCriterion as SppoHardCriterion
