"""Configuration: the recipes' typed sections, card paths, presets and config files.

:mod:`.sections` holds the typed config of the training recipes (re-exported
here); :mod:`.assets` the card search path a user adds to; ``presets/`` the
packaged presets; :mod:`.files` turns ``--preset`` and ``--config-file`` into the
one file fairseq2 loads, translating the fairseq2 0.4 flat layout
(:mod:`.legacy`, :mod:`.legacy_keys`); :mod:`.criterion_switch` makes a
criterion switched on the command line start from its own defaults.
"""

from __future__ import annotations

from fairseq2_preference.config.sections import CriterionSection as CriterionSection
from fairseq2_preference.config.sections import (
    InstructionFinetuneConfig as InstructionFinetuneConfig,
)
from fairseq2_preference.config.sections import (
    PreferenceDatasetSection as PreferenceDatasetSection,
)
from fairseq2_preference.config.sections import (
    PreferenceFinetuneConfig as PreferenceFinetuneConfig,
)
from fairseq2_preference.config.sections import (
    PreferenceReferenceModelSection as PreferenceReferenceModelSection,
)
from fairseq2_preference.config.sections import resolve_reference_dtype as resolve_reference_dtype
