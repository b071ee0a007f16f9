"""The metrics every preference run reports, for training and validation alike.

Underlying names (TensorBoard groups on the ``/``) and their display names, which
are the keys of ``metrics/{train,valid}.jsonl``:

=========================  =========================  ======================================
name                       display name               meaning (mean over pairs unless noted)
=========================  =========================  ======================================
``loss``                   Loss                       pair loss + weighted NLL, per pair
``<criterion>_loss``       e.g. DPO Loss              the criterion's pair loss
``nll_loss``               NLL Loss                   NLL per chosen response token
``rewards/chosen``         Rewards/Chosen             the criterion's implicit reward
``rewards/rejected``       Rewards/Rejected
``rewards/margins``        Rewards/Margins            chosen − rejected reward
``rewards/accuracies``     Rewards/Accuracies         share of pairs with chosen > rejected
``logps/chosen``           Logps/Chosen               summed response log-prob
``logps/rejected``         Logps/Rejected
``padding_efficiency``     Padding Efficiency         real tokens / tokens computed (1.0 packed)
``kl``                     KL                         unpaired criteria: the step's z₀
=========================  =========================  ======================================

Under an unpaired criterion (KTO) the rewards and log-probs are means over the
desirable ("chosen") and undesirable ("rejected") completions, and an example
is one completion.

plus fairseq2's batch metrics, where an *example* is a pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from fairseq2.metrics import MetricBag
from fairseq2.metrics.aggregation import Mean, Sum
from fairseq2.metrics.common import add_seq_batch_metrics
from fairseq2.metrics.formatters import format_as_float
from fairseq2.metrics.recorders import MetricDescriptor
from fairseq2.runtime.dependency import DependencyContainer
from torch import Tensor

from fairseq2_preference.criteria import PreferenceCriterion
from fairseq2_preference.data import PreferenceBatch

REWARD_METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")

LOGPS_METRICS = ("logps/chosen", "logps/rejected")


def criterion_loss_name(criterion: type[PreferenceCriterion] | PreferenceCriterion) -> str:
    return f"{criterion.name}_loss"


def register_metric_descriptors(
    container: DependencyContainer, criteria: Iterable[type[PreferenceCriterion]]
) -> None:
    """Give our metrics display names (what the jsonl keys and TensorBoard tags show)."""

    def register(name: str, display_name: str, priority: int, higher_better: bool = False) -> None:
        descriptor = MetricDescriptor(
            name, display_name, priority, format_as_float, higher_better=higher_better
        )
        container.collection.register_instance(MetricDescriptor, descriptor)

    for kls in criteria:
        if kls.has_pair_loss:
            register(criterion_loss_name(kls), kls.display_name or f"{kls.name} Loss", 95)

    register("padding_efficiency", "Padding Efficiency", 900, higher_better=True)
    register("kl", "KL", 100)
    for priority, name in enumerate(REWARD_METRICS + LOGPS_METRICS, start=120):
        group, _, key = name.partition("/")
        register(name, f"{group.title()}/{key.title()}", priority, name == "rewards/accuracies")


@torch.inference_mode()
def add_preference_metrics(bag: MetricBag, criterion: PreferenceCriterion, pairs: bool) -> None:
    """The metrics of :mod:`units`; without ``pairs`` (instruction data) only the
    loss, the NLL and ``logps/chosen``."""
    for name in ("loss", "nll_loss", "logps/chosen"):
        bag.add(name, Mean())
    add_seq_batch_metrics(bag)
    bag.add("padding_efficiency", Mean())
    if not pairs:
        return
    bag.add("logps/rejected", Mean())
    if criterion.has_pair_loss:
        bag.add(criterion_loss_name(criterion), Mean())
    if criterion.reports_rewards:
        for name in REWARD_METRICS:
            bag.add(name, Mean())
    for key in criterion.extra_metric_names:
        bag.add(f"{criterion.name}/{key}", Mean())


@torch.inference_mode()
def update_mean(bag: MetricBag, name: str, values: Tensor) -> None:
    """Add the mean of per-pair ``values`` with the number of pairs as weight."""
    values = values.detach().float()
    bag.get(name, Mean).update(values.mean(), weight=values.numel())


@torch.inference_mode()
def update_batch_metrics(bag: MetricBag, batch: PreferenceBatch) -> None:
    """fairseq2's batch metrics, counting pairs (not sequences) as examples, and
    the padding efficiency: real tokens / tokens the model computed over."""
    real, computed = batch.num_real_tokens, batch.num_computed_tokens
    for prefix in ("", "total_"):
        bag.get(f"{prefix}num_examples", Sum).update(batch.num_examples)
        bag.get(f"{prefix}num_elements", Sum).update(real)
        bag.get(f"{prefix}num_target_elements", Sum).update(sum(batch.token_counts))
    bag.get("padding", Sum).update(computed - real)
    bag.get("padding_efficiency", Mean).update(torch.tensor(real / computed), weight=computed)


UNPAIRED_METRICS = ("kl", "rewards/chosen", "rewards/rejected", "logps/chosen", "logps/rejected")
"""Of an unpaired criterion: z₀, and rewards and log-probs of the desirable
("chosen") and undesirable ("rejected") completions."""


@torch.inference_mode()
def add_unpaired_metrics(bag: MetricBag, criterion: PreferenceCriterion) -> None:
    for name in ("loss", criterion_loss_name(criterion), *UNPAIRED_METRICS):
        bag.add(name, Mean())
    add_seq_batch_metrics(bag)
    bag.add("padding_efficiency", Mean())


@torch.inference_mode()
def update_masked_mean(bag: MetricBag, name: str, values: Tensor, mask: Tensor) -> None:
    """The mean of ``values`` where ``mask``, weighted by its count (no host sync)."""
    values, weight = values.detach().float(), mask.float()
    count = weight.sum()
    mean = (values * weight).sum() / count.clamp(min=1)
    bag.get(name, Mean).update(mean, weight=count)


@torch.inference_mode()
def update_unpaired_metrics(
    bag: MetricBag, completions: PreferenceBatch, criterion: PreferenceCriterion, step: Any
) -> None:
    """The metrics of an unpaired step (``completions``: the batch's trained half)."""
    n = step.num_targets
    bag.get("loss", Mean).update(step.loss.detach() / n, weight=n)
    update_mean(bag, criterion_loss_name(criterion), step.example_losses)
    bag.get("kl", Mean).update(step.logps.kl.detach(), weight=1)
    desirable = step.logps.desirable
    for mask, which in ((desirable, "chosen"), (~desirable, "rejected")):
        update_masked_mean(bag, f"rewards/{which}", step.rewards, mask)
        update_masked_mean(bag, f"logps/{which}", step.logps.policy, mask)
    update_batch_metrics(bag, completions)
