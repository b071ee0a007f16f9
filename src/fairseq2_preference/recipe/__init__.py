"""The fairseq2 recipes of preference training and the units they train with.

:mod:`.preference` wires fairseq2's parts into ``preference_finetune`` and
``instruction_finetune``; :mod:`.reference_logps` fills the reference cache
with the same config; :mod:`.units` is the step the trainer calls and
:mod:`.metrics` what it reports.
"""

from __future__ import annotations

from fairseq2_preference.recipe.preference import (
    InstructionFinetuneRecipe as InstructionFinetuneRecipe,
)
from fairseq2_preference.recipe.preference import (
    PreferenceFinetuneRecipe as PreferenceFinetuneRecipe,
)
