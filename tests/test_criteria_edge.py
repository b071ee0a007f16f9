"""Criteria at their edges: memorised responses, split invariance, invalid configs,
and a few loss values pinned against TRL's own implementation."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from fairseq2_preference.criteria import SequenceLogps, create_criterion
from fairseq2_preference.criteria.dpo import DpoConfig, DpoCriterion
from fairseq2_preference.errors import PreferenceConfigError


def leaf(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32, requires_grad=True)


@pytest.mark.parametrize("orpo_lambda", [0.1, 1.0])
def test_orpo_is_finite_when_an_averaged_logp_is_exactly_zero(orpo_lambda: float) -> None:
    """float32 log-probs of memorised tokens are exactly 0, so log(1 − e⁰) = −∞."""
    chosen, rejected = leaf([0.0, -3.0, 0.0, -1e-9]), leaf([-2.0, 0.0, 0.0, -5e-8])
    lengths = torch.tensor([4.0, 4.0, 4.0, 1.0])
    criterion = create_criterion("orpo", {"orpo_lambda": orpo_lambda})
    losses = criterion.pair_losses(SequenceLogps(chosen, rejected, lengths, lengths))
    assert torch.isfinite(losses).all(), losses
    losses.sum().backward()
    assert chosen.grad is not None and rejected.grad is not None
    assert torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()
    # A memorised rejected response is still pushed down, a memorised chosen one not.
    assert rejected.grad[1] > 0.0
    assert losses[0] < 1e-6 * orpo_lambda
    assert torch.isfinite(torch.stack(list(criterion.extra_metrics(
        SequenceLogps(chosen, rejected, lengths, lengths)).values()))).all()  # fmt: skip


def test_bco_pair_loss_of_a_pair_does_not_depend_on_its_batch() -> None:
    """The same pair, alone or among others, has the same loss: the result cannot
    depend on how a global batch is split over micro-batches and ranks."""
    g = torch.Generator().manual_seed(0)
    logps = [-torch.rand(8, generator=g) * 40 for _ in range(4)]
    lengths = torch.full((8,), 5.0)
    criterion = create_criterion("bco_pair")
    whole = criterion.pair_losses(SequenceLogps(logps[0], logps[1], lengths, lengths,
                                                logps[2], logps[3]))  # fmt: skip
    parts = [
        criterion.pair_losses(SequenceLogps(*(x[i : i + 1] for x in logps[:2]), lengths[:1],
                                            lengths[:1], *(x[i : i + 1] for x in logps[2:])))
        for i in range(8)
    ]  # fmt: skip
    torch.testing.assert_close(whole, torch.cat(parts))


BAD_CONFIGS = [
    ("dpo", {"beta": -1.0}, "`beta` must be > 0"),
    ("dpo", {"beta": 0.0}, "`beta` must be > 0"),
    ("robust", {"label_smoothing": 0.5}, "`label_smoothing` must be in"),
    ("dpo", {"label_smoothing": -0.1}, "`label_smoothing` must be in"),
    ("simpo", {"gamma": float("nan")}, "`gamma` must be a finite number"),
    ("ipo", {"beta": float("inf")}, "`beta` must be a finite number"),
    ("orpo", {"orpo_lambda": 0.0}, "`orpo_lambda` must be > 0"),
    ("exo_pair", {"epsilon": 0.0}, "`epsilon` must be in"),
    ("cpo", {"nll_scale": -1.0}, "`nll_scale` must be >= 0"),
    ("combined", {"terms": [{"name": "dpo", "config": {"beta": -1.0}}]}, "`beta` must be > 0"),
    ("combined", {"terms": []}, "at least one criterion"),
]


@pytest.mark.parametrize(("name", "config", "message"), BAD_CONFIGS)
def test_create_criterion_refuses_an_invalid_config(
    name: str, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(PreferenceConfigError, match=message):
        create_criterion(name, config)


def test_a_criterion_built_directly_validates_its_config() -> None:
    with pytest.raises(PreferenceConfigError, match=r"'dpo' is not valid: `beta` must be > 0"):
        DpoCriterion(DpoConfig(beta=-1.0))
    with pytest.raises(PreferenceConfigError, match="`beta` must be > 0"):
        create_criterion("dpo", DpoConfig(beta=-1.0))


# Computed with TRL 1.16.0's own code (trl-1.16.0-py3-none-any.whl, not installed here):
# the per-loss-type branch of `DPOTrainer._compute_loss` ("sigmoid", "hinge", "ipo";
# reverse-KL scores, IPO normalised by the completion-mask lengths), the extracted
# `ORPOTrainer.odds_ratio_loss` (negated: TRL subtracts it) on averaged log-probs and
# `CPOTrainer.cpo_loss` with loss_type "simpo" on averaged log-probs; float32, on these inputs:
POLICY_CHOSEN = [-12.5, -30.0, -4.0]
POLICY_REJECTED = [-14.0, -22.0, -9.5]
REF_CHOSEN = [-13.0, -28.0, -4.5]
REF_REJECTED = [-13.5, -23.0, -9.0]
LEN_CHOSEN = [5.0, 12.0, 2.0]
LEN_REJECTED = [7.0, 8.0, 3.0]
TRL_1_16_0 = [
    ("dpo", {"beta": 0.1}, [0.6443966627120972, 0.8543552160263062, 0.6443966627120972]),
    ("hinge", {"beta": 0.1}, [0.8999999761581421, 1.2999999523162842, 0.8999999761581421]),
    ("ipo", {"beta": 0.1}, [23.315101623535156, 28.001733779907227, 21.006946563720703]),
    (
        "orpo",
        {"orpo_lambda": 0.1},
        [0.10116945952177048, 0.05674106627702713, 0.024772396311163902],
    ),
    (
        "simpo",
        {"beta": 2.0, "gamma": 1.0},
        [2.1269280910491943, 0.9740769863128662, 0.23396249115467072],
    ),
]


@pytest.mark.parametrize(("name", "config", "trl"), TRL_1_16_0, ids=[c[0] for c in TRL_1_16_0])
def test_losses_match_trl(name: str, config: dict[str, Any], trl: list[float]) -> None:
    def t(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32)

    logps = SequenceLogps(
        t(POLICY_CHOSEN), t(POLICY_REJECTED), t(LEN_CHOSEN), t(LEN_REJECTED),
        t(REF_CHOSEN), t(REF_REJECTED),
    )  # fmt: skip
    torch.testing.assert_close(create_criterion(name, config).pair_losses(logps), t(trl))
