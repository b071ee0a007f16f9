"""DPO — Direct Preference Optimization, with cDPO label smoothing.

Rafailov et al., 2023, https://arxiv.org/abs/2305.18290; label smoothing (cDPO)
from Mitchell, 2023, https://ericmitchell.ai/cdpo.pdf.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from fairseq2_preference.criteria.base import (
    LogRatioCriterion,
    SequenceLogps,
    SmoothedBetaConfig,
    logsigmoid_loss,
)
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class DpoConfig(SmoothedBetaConfig):
    length_normalization: bool = False
    """Average log-probabilities over response tokens before taking ratios,
    which removes DPO's bias towards long responses (as in SimPO's analysis)."""


@register_criterion("dpo", DpoConfig)
class DpoCriterion(LogRatioCriterion):
    """DPO: a Bradley–Terry classifier on the policy/reference log-ratio margin.

    Intuition: the optimal policy of KL-regularised reward maximisation satisfies
    r(x, y) = β·log πθ(y|x)/πref(y|x) + const, so fitting that implicit reward to
    the preferences trains the policy directly, with no reward model and no RL.

    With ρ = log πθ − log πref, summed over response tokens (or averaged when
    ``length_normalization``) and h = ρc − ρr::

        loss = −(1−ε)·logσ(β·h) − ε·logσ(−β·h)
        rewards: β·ρc (chosen), β·ρr (rejected)

    Prompt and padding tokens never count. At initialisation (policy = reference)
    the loss is ln 2 for every pair.
    """

    display_name = "DPO Loss"

    config: DpoConfig

    def length_normalized(self) -> bool:
        return self.config.length_normalization

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return logsigmoid_loss(self.config.beta * self.margins(logps), self.config.label_smoothing)
