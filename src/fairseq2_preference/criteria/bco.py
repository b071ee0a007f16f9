"""BCO — Binary Classifier Optimization, pairwise form (Jung et al., 2024,
https://arxiv.org/abs/2404.04656)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import logsigmoid

from fairseq2_preference.criteria.base import BetaConfig, LogRatioCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import register_criterion


@register_criterion("bco_pair", BetaConfig)
class BcoPairCriterion(LogRatioCriterion):
    """BCO (pair): a binary classifier with chosen → 1 and rejected → 0, shifted by δ.

    Intuition: treat the implicit reward as the logit of "this response is
    good"; the shift δ centres the logits so that the classifier separates the
    two classes instead of moving all rewards together.

    With ρ summed over response tokens, rewards rc = β·ρc, rr = β·ρr and δ the
    mean of all 2N rewards of the batch (detached)::

        loss = −logσ(rc − δ) − logσ(−(rr − δ))
        rewards: rc, rr
        metric bco_pair/delta: δ

    The paper and TRL keep δ as a running mean over training; here it is the
    mean of the current micro-batch, which needs no state to checkpoint or
    synchronise across ranks (with large batches the two agree closely).
    """

    display_name = "BCO Loss"

    extra_metric_names = ("delta",)

    def _delta(self, logps: SequenceLogps) -> Tensor:
        rewards = torch.cat([self.chosen_rewards(logps), self.rejected_rewards(logps)])
        return rewards.mean().detach()

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        delta = self._delta(logps)
        chosen = self.chosen_rewards(logps) - delta
        rejected = self.rejected_rewards(logps) - delta
        return -logsigmoid(chosen) - logsigmoid(-rejected)

    def extra_metrics(self, logps: SequenceLogps) -> dict[str, Tensor]:
        return {"delta": self._delta(logps).expand(logps.num_pairs)}
