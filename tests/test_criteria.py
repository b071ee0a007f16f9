"""Loss formulas pinned against independent scalar computations."""

from __future__ import annotations

import math

import pytest
import torch

from fairseq2_preference.criteria import (
    CriterionConfig,
    DpoConfig,
    PreferenceCriterion,
    SequenceLogps,
    create_criterion,
    criterion_names,
    register_criterion,
)
from fairseq2_preference.errors import PreferenceConfigError


def random_logps(n: int = 16, scale: float = 30.0, seed: int = 0) -> SequenceLogps:
    g = torch.Generator().manual_seed(seed)

    def logp() -> torch.Tensor:
        return -torch.rand(n, generator=g, dtype=torch.float32) * scale

    return SequenceLogps(
        chosen=logp(),
        rejected=logp(),
        chosen_lengths=torch.randint(1, 40, (n,), generator=g).float(),
        rejected_lengths=torch.randint(1, 40, (n,), generator=g).float(),
        ref_chosen=logp(),
        ref_rejected=logp(),
    )


def log_sigmoid(x: float) -> float:
    # Written without logsigmoid: log σ(x) = −log(1 + e^(−x)), stable for both signs.
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def dpo_reference(lp: SequenceLogps, beta: float, eps: float, norm: bool) -> list[float]:
    out = []
    for i in range(lp.num_pairs):
        assert lp.ref_chosen is not None and lp.ref_rejected is not None
        rc = float(lp.chosen[i] - lp.ref_chosen[i])
        rr = float(lp.rejected[i] - lp.ref_rejected[i])
        if norm:
            rc /= float(lp.chosen_lengths[i])
            rr /= float(lp.rejected_lengths[i])
        z = beta * (rc - rr)
        out.append(-(1 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z))
    return out


@pytest.mark.parametrize(
    ("beta", "eps", "norm"), [(0.1, 0.0, False), (0.5, 0.2, False), (2.0, 0.1, True)]
)
def test_dpo_matches_formula(beta: float, eps: float, norm: bool) -> None:
    logps = random_logps()
    criterion = create_criterion(
        "dpo", {"beta": beta, "label_smoothing": eps, "length_normalization": norm}
    )
    expected = torch.tensor(dpo_reference(logps, beta, eps, norm))
    torch.testing.assert_close(criterion.pair_losses(logps), expected, rtol=1e-5, atol=1e-6)


def test_dpo_rewards_are_scaled_log_ratios() -> None:
    logps = random_logps()
    criterion = create_criterion("dpo", DpoConfig(beta=0.3))
    assert logps.ref_chosen is not None and logps.ref_rejected is not None
    torch.testing.assert_close(
        criterion.chosen_rewards(logps), 0.3 * (logps.chosen - logps.ref_chosen)
    )
    torch.testing.assert_close(
        criterion.rejected_rewards(logps), 0.3 * (logps.rejected - logps.ref_rejected)
    )


def test_dpo_is_ln2_when_policy_equals_reference() -> None:
    lp = random_logps()
    same = SequenceLogps(
        lp.chosen, lp.rejected, lp.chosen_lengths, lp.rejected_lengths, lp.chosen, lp.rejected
    )
    losses = create_criterion("dpo").pair_losses(same)
    torch.testing.assert_close(losses, torch.full_like(losses, math.log(2)))


def test_dpo_is_finite_for_extreme_logps() -> None:
    n = 4
    big = torch.tensor([-1e4, -1e-6, -3e3, -50.0])
    logps = SequenceLogps(
        chosen=big,
        rejected=big.flip(0),
        chosen_lengths=torch.ones(n),
        rejected_lengths=torch.full((n,), 1000.0),
        ref_chosen=big.flip(0),
        ref_rejected=big,
    )
    for eps in (0.0, 0.25):
        losses = create_criterion("dpo", {"beta": 5.0, "label_smoothing": eps}).pair_losses(logps)
        assert torch.isfinite(losses).all()
        expected = torch.tensor(dpo_reference(logps, 5.0, eps, False))
        torch.testing.assert_close(losses, expected, rtol=1e-5, atol=1e-5)


def test_gradients_reach_policy_only() -> None:
    lp = random_logps()
    chosen = lp.chosen.clone().requires_grad_()
    rejected = lp.rejected.clone().requires_grad_()
    logps = SequenceLogps(
        chosen, rejected, lp.chosen_lengths, lp.rejected_lengths, lp.ref_chosen, lp.ref_rejected
    )
    create_criterion("dpo").pair_losses(logps).sum().backward()
    assert chosen.grad is not None and (chosen.grad < 0).all()  # raise chosen log-probs
    assert rejected.grad is not None and (rejected.grad > 0).all()  # lower rejected ones
    assert lp.ref_chosen is not None and lp.ref_chosen.grad is None


def test_dpo_without_reference_says_what_to_configure() -> None:
    lp = random_logps()
    no_ref = SequenceLogps(lp.chosen, lp.rejected, lp.chosen_lengths, lp.rejected_lengths)
    with pytest.raises(ValueError, match="reference_model"):
        create_criterion("dpo").pair_losses(no_ref)


def test_unknown_criterion_lists_the_available_ones() -> None:
    with pytest.raises(PreferenceConfigError, match=r"'dpoo' is not a known criterion.*dpo"):
        create_criterion("dpoo")


def test_wrong_hyper_parameter_name_and_type_are_named() -> None:
    with pytest.raises(PreferenceConfigError, match=r"'betta'.*beta"):
        create_criterion("dpo", {"betta": 0.1})
    with pytest.raises(PreferenceConfigError, match="beta"):
        create_criterion("dpo", {"beta": "high"})


def test_registering_a_new_criterion_makes_it_available_by_name() -> None:
    from dataclasses import dataclass

    @dataclass(kw_only=True)
    class MarginConfig(CriterionConfig):
        margin: float = 1.0

    @register_criterion("test_margin", MarginConfig)
    class MarginCriterion(PreferenceCriterion):
        needs_reference = False
        config: MarginConfig

        def pair_losses(self, logps: SequenceLogps) -> torch.Tensor:
            return torch.relu(self.config.margin - (logps.chosen - logps.rejected))

    assert "test_margin" in criterion_names()
    criterion = create_criterion("test_margin", {"margin": 2.0})
    assert isinstance(criterion, MarginCriterion)
    lp = random_logps()
    expected = torch.clamp(2.0 - (lp.chosen - lp.rejected), min=0.0)
    torch.testing.assert_close(criterion.pair_losses(lp), expected)

    with pytest.raises(ValueError, match="already taken"):

        @register_criterion("test_margin", MarginConfig)
        class Other(MarginCriterion):
            pass
