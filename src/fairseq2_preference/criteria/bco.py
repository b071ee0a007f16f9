"""BCO — Binary Classifier Optimization, pairwise form (Jung et al., 2024,
https://arxiv.org/abs/2404.04656)."""

from __future__ import annotations

from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("bco_pair", BetaConfig)
class BcoPairCriterion(LogRatioCriterion):
    """BCO (pair): a binary classifier with chosen → 1 and rejected → 0.

    Intuition: treat the implicit reward as the logit of "this response is
    good" and fit each response on its own, instead of only their difference.

    With ρ summed over response tokens, rewards rc = β·ρc, rr = β·ρr::

        loss = −logσ(rc) − logσ(−rr)
        rewards: rc, rr

    The paper shifts both rewards by δ, a running mean of the rewards over
    training. TRL's ``bco_pair`` (1.16) uses no shift, and so does this one:
    a shift taken from the current micro-batch would make the loss depend on
    how the global batch is split over micro-batches and ranks (with one pair
    per micro-batch it turns into a rescaled DPO). Every pair's loss here
    depends on that pair alone.
    """

    display_name = "BCO Loss"

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        return -logsigmoid(self.chosen_rewards(logps)) - logsigmoid(-self.rejected_rewards(logps))
