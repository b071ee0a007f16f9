"""SFT — supervised finetuning on the chosen responses, as a criterion."""

from __future__ import annotations

from dataclasses import dataclass

from fairseq2.utils.validation import ValidationResult
from torch import Tensor

from fairseq2_preference.criteria.base import CriterionConfig, PreferenceCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@dataclass(kw_only=True)
class SftConfig(CriterionConfig):
    nll_scale: float = 1.0
    """Weight of the NLL; 1 is plain SFT."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if self.nll_scale <= 0.0:
            result.add_error("`nll_scale` must be > 0: it is the whole SFT loss.")
        return result


@register_criterion("sft", SftConfig)
class SftCriterion(PreferenceCriterion):
    """SFT: the token-mean NLL of the chosen response; rejected responses are ignored.

    The whole loss is the unit's NLL term (``nll_scale`` × token-mean NLL over
    chosen response tokens, prompt masked); the pair loss is zero. Useful as the
    first stage before DPO, as a baseline on the same data, and as a term of a
    ``combined`` criterion (DPO + SFT = RPO).
    """

    needs_reference = False

    has_pair_loss = False

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return logps.chosen.new_zeros(logps.num_pairs)
