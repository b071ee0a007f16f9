"""Weighted sums of criteria, e.g. RPO (DPO + SFT) or MPO (DPO + BCO + SFT)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import torch
from fairseq2.utils.validation import ValidationResult
from torch import Tensor

from fairseq2_preference.criteria.base import CriterionConfig, PreferenceCriterion, SequenceLogps
from fairseq2_preference.criteria.registry import (
    create_criterion,
    register_criterion,
    structure_criterion_config,
)
from fairseq2_preference.criteria.unpaired import UnpairedCriterion
from fairseq2_preference.errors import PreferenceConfigError


@dataclass(kw_only=True)
class TermConfig:
    name: str
    """A registered criterion."""

    weight: float = 1.0
    """Multiplies the term's pair loss and its NLL weight."""

    config: object = field(default_factory=dict)
    """The term's hyper-parameters (omitted ones take its defaults)."""

    label: str | None = None
    """How the term is named in metrics (default: its name); set it when a
    criterion appears twice."""

    def __post_init__(self) -> None:
        # Structure (and check) the term's config as soon as the YAML is read,
        # so that `--dump-config` shows it and a typo fails before training.
        self.config = structure_criterion_config(self.name, self.config)

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass(kw_only=True)
class CombinedConfig(CriterionConfig):
    terms: list[TermConfig] = field(default_factory=list)
    """The criteria to add up, e.g. ``[{name: dpo}, {name: sft, weight: 0.2}]``."""

    def validate(self) -> ValidationResult:
        result = super().validate()
        if not self.terms:
            result.add_error("`terms` must list at least one criterion.")
        keys = [term.key for term in self.terms]
        duplicates = sorted({k for k in keys if keys.count(k) > 1})
        if duplicates:
            result.add_error(f"Terms need distinct labels; repeated: {', '.join(duplicates)}.")
        if any(term.weight < 0.0 for term in self.terms):
            result.add_error("Term weights must be >= 0.")
        return result


@register_criterion("combined", CombinedConfig)
class CombinedCriterion(PreferenceCriterion):
    """A weighted sum of criteria, each term's loss logged separately.

    Per pair and with weights wᵢ::

        loss = Σᵢ wᵢ·lossᵢ
        NLL weight = nll_scale + Σᵢ wᵢ·nll_scaleᵢ
        rewards: those of the first term that reports rewards
        metrics combined/<term>_loss and each term's own metrics as combined/<term>/<key>

    Examples — RPO (Pang et al., 2024, https://arxiv.org/abs/2404.19733) and MPO
    (Wang et al., 2024, https://arxiv.org/abs/2411.10442)::

        criterion: {name: combined, config: {terms: [{name: dpo}, {name: sft, weight: 1.0}]}}
        criterion: {name: combined, config: {terms: [
            {name: dpo, weight: 0.8}, {name: bco_pair, weight: 0.2}, {name: sft, weight: 1.0}]}}

    The reference model is loaded if any term needs it.
    """

    display_name = "Combined Loss"

    config: CombinedConfig

    def __init__(self, config: CombinedConfig) -> None:
        super().__init__(config)
        self.terms = [
            (term.key, term.weight, create_criterion(term.name, cast(CriterionConfig, term.config)))
            for term in config.terms
        ]
        for key, _, criterion in self.terms:
            if isinstance(criterion, UnpairedCriterion):
                raise PreferenceConfigError(
                    f"`combined` term {key!r} is '{criterion.name}', a loss on unpaired "
                    "examples: it cannot be combined with losses on pairs; train it alone."
                )
        self.needs_reference = any(c.needs_reference for _, _, c in self.terms)
        self.extra_metric_names = tuple(
            name
            for key, _, criterion in self.terms
            for name in (
                ([f"{key}_loss"] if criterion.has_pair_loss else [])
                + [f"{key}/{extra}" for extra in criterion.extra_metric_names]
            )
        )

    @property
    def nll_scale(self) -> float:
        return self.config.nll_scale + sum(w * c.nll_scale for _, w, c in self.terms)

    @property
    def reports_rewards(self) -> bool:
        return self._rewarding() is not None

    def _rewarding(self) -> PreferenceCriterion | None:
        return next((c for _, _, c in self.terms if c.reports_rewards), None)

    def pair_losses(self, logps: SequenceLogps) -> Tensor:
        total = logps.chosen.new_zeros(logps.num_pairs)
        for _, weight, criterion in self.terms:
            if criterion.has_pair_loss:
                total = total + weight * criterion.pair_losses(logps)
        return total

    def chosen_rewards(self, logps: SequenceLogps) -> Tensor | None:
        criterion = self._rewarding()
        return None if criterion is None else criterion.chosen_rewards(logps)

    def rejected_rewards(self, logps: SequenceLogps) -> Tensor | None:
        criterion = self._rewarding()
        return None if criterion is None else criterion.rejected_rewards(logps)

    def extra_metrics(self, logps: SequenceLogps) -> Mapping[str, Tensor]:
        values: dict[str, Tensor] = {}
        with torch.no_grad():
            for key, _, criterion in self.terms:
                if criterion.has_pair_loss:
                    values[f"{key}_loss"] = criterion.pair_losses(logps)
                for extra, value in criterion.extra_metrics(logps).items():
                    values[f"{key}/{extra}"] = value
        return values
