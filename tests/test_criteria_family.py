"""Every built-in criterion against an independent, arbitrary-precision scalar formula."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mpmath as mp
import pytest
import torch

from fairseq2_preference.criteria import SequenceLogps, create_criterion

from helpers import builtin_names

mp.mp.dps = 50


Pair = dict[str, Any]  # sc, sr (policy sums), rc, rr (reference sums), lc, lr (lengths)


def ls(x: Any) -> Any:
    """log σ(x) in arbitrary precision."""
    return -mp.log1p(mp.exp(-x))


def sig(x: Any) -> Any:
    return 1 / (1 + mp.exp(-x))


def ratios(p: Pair, norm: bool = False) -> tuple[Any, Any]:
    rho_c, rho_r = p["sc"] - p["rc"], p["sr"] - p["rr"]
    return (rho_c / p["lc"], rho_r / p["lr"]) if norm else (rho_c, rho_r)


def dpo(p: Pair, beta: float = 0.1, label_smoothing: float = 0.0, norm: bool = False) -> Any:
    c, r = ratios(p, norm)
    z = beta * (c - r)
    return -(1 - label_smoothing) * ls(z) - label_smoothing * ls(-z)


def robust(p: Pair, beta: float = 0.1, label_smoothing: float = 0.1) -> Any:
    c, r = ratios(p)
    z, e = beta * (c - r), label_smoothing
    return (-(1 - e) * ls(z) + e * ls(-z)) / (1 - 2 * e)


def exo(p: Pair, beta: float = 0.1, epsilon: float = 1e-3) -> Any:
    c, r = ratios(p)
    z = beta * (c - r)
    q = sig(z)
    return q * (ls(z) - mp.log(1 - epsilon)) + (1 - q) * (ls(-z) - mp.log(epsilon))


def discopop(p: Pair, beta: float = 0.1, tau: float = 0.05) -> Any:
    c, r = ratios(p)
    z = beta * (c - r)
    m = sig(z / tau)
    return (1 - m) * -ls(z) + m * mp.exp(-z)


def simpo(p: Pair, beta: float = 2.0, gamma: float = 1.0, label_smoothing: float = 0.0) -> Any:
    z = beta * (p["sc"] / p["lc"] - p["sr"] / p["lr"]) - gamma
    return -(1 - label_smoothing) * ls(z) - label_smoothing * ls(-z)


def cpo(p: Pair, beta: float = 0.1) -> Any:
    return -ls(beta * (p["sc"] - p["sr"]))


def orpo(p: Pair, orpo_lambda: float = 0.1) -> Any:
    ac, ar = p["sc"] / p["lc"], p["sr"] / p["lr"]
    log_odds = (ac - ar) - (mp.log(1 - mp.exp(ac)) - mp.log(1 - mp.exp(ar)))
    return -orpo_lambda * ls(log_odds)


# Per-pair formulas (name, hyper-parameters) → f(pair); bco_pair needs the batch.
FORMULAS: dict[str, tuple[dict[str, Any], Callable[[Pair], Any]]] = {
    "dpo": ({}, dpo),
    "dpo/cdpo+norm": (
        {"beta": 0.5, "label_smoothing": 0.2, "length_normalization": True},
        lambda p: dpo(p, 0.5, 0.2, True),
    ),
    "ipo": ({"beta": 0.3}, lambda p: (ratios(p, True)[0] - ratios(p, True)[1] - 1 / 0.6) ** 2),
    "hinge": ({}, lambda p: max(0, 1 - 0.1 * (ratios(p)[0] - ratios(p)[1]))),
    "robust": ({"label_smoothing": 0.2}, lambda p: robust(p, label_smoothing=0.2)),
    "exo_pair": ({"epsilon": 0.01}, lambda p: exo(p, epsilon=0.01)),
    "nca_pair": (
        {"beta": 0.2},
        lambda p: (
            -ls(0.2 * ratios(p)[0]) - ls(-0.2 * ratios(p)[0]) / 2 - ls(-0.2 * ratios(p)[1]) / 2
        ),
    ),
    "sppo_hard": ({"beta": 0.5}, lambda p: (ratios(p)[0] - 1) ** 2 + (ratios(p)[1] + 1) ** 2),
    "apo_zero": ({}, lambda p: 1 - sig(0.1 * ratios(p)[0]) + sig(0.1 * ratios(p)[1])),
    "apo_down": (
        {},
        lambda p: sig(0.1 * ratios(p)[0]) + 1 - sig(0.1 * (ratios(p)[0] - ratios(p)[1])),
    ),
    "discopop": ({"tau": 0.1}, lambda p: discopop(p, tau=0.1)),
    "simpo": ({"gamma": 0.5, "label_smoothing": 0.1}, lambda p: simpo(p, 2.0, 0.5, 0.1)),
    "cpo": ({"beta": 0.05}, lambda p: cpo(p, 0.05)),
    "orpo": ({"orpo_lambda": 0.25}, lambda p: orpo(p, 0.25)),
    "sft": ({}, lambda p: 0),
    "bco_pair": ({"beta": 0.2}, lambda p: -ls(0.2 * ratios(p)[0]) - ls(-0.2 * ratios(p)[1])),
}


def to_logps(pairs: list[Pair]) -> SequenceLogps:
    def col(key: str) -> torch.Tensor:
        return torch.tensor([float(p[key]) for p in pairs], dtype=torch.float32)

    return SequenceLogps(
        col("sc"), col("sr"), col("lc"), col("lr"), ref_chosen=col("rc"), ref_rejected=col("rr")
    )


def random_pairs(n: int = 32, seed: int = 0) -> list[Pair]:
    g = torch.Generator().manual_seed(seed)

    def draw(scale: float) -> list[float]:
        return (-torch.rand(n, generator=g, dtype=torch.float64) * scale).tolist()

    lengths = torch.randint(1, 40, (2, n), generator=g).tolist()
    sc, sr, rc, rr = draw(60), draw(60), draw(60), draw(60)
    return [
        {"sc": mp.mpf(sc[i]), "sr": mp.mpf(sr[i]), "rc": mp.mpf(rc[i]), "rr": mp.mpf(rr[i]),
         "lc": lengths[0][i], "lr": lengths[1][i]}
        for i in range(n)
    ]  # fmt: skip


def extreme_pairs() -> list[Pair]:
    values = [-1e4, -3e3, -50.0, -1e-3]
    pairs = []
    for sc in values:
        for sr in values:
            for lengths in ((1, 1000), (1000, 1), (7, 7)):
                pairs.append(
                    {"sc": mp.mpf(sc), "sr": mp.mpf(sr), "rc": mp.mpf(sr), "rr": mp.mpf(sc),
                     "lc": lengths[0], "lr": lengths[1]}
                )  # fmt: skip
    return pairs


def expected(name: str, pairs: list[Pair]) -> list[Any]:
    return [FORMULAS[name][1](p) for p in pairs]


def criterion_for(name: str) -> Any:
    kind = name.split("/")[0]
    config = FORMULAS[name][0] if name in FORMULAS else {}
    return create_criterion(kind, config)


ALL = list(FORMULAS)


def test_every_builtin_criterion_has_a_formula() -> None:
    """Pair criteria here; unpaired ones (kto) in test_kto.py."""
    from fairseq2_preference.criteria import UnpairedCriterion, criterion_kls

    covered = {name.split("/")[0] for name in ALL} | {"combined"}
    pair = {n for n in builtin_names() if not issubclass(criterion_kls(n), UnpairedCriterion)}
    assert covered >= pair


@pytest.mark.parametrize("name", ALL)
def test_matches_formula(name: str) -> None:
    pairs = random_pairs()
    losses = criterion_for(name).pair_losses(to_logps(pairs))
    reference = torch.tensor([float(v) for v in expected(name, pairs)], dtype=torch.float32)
    torch.testing.assert_close(losses, reference, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", ALL)
def test_finite_and_exact_for_extreme_logps(name: str) -> None:
    pairs = extreme_pairs()
    logps = to_logps(pairs)
    chosen = logps.chosen.clone().requires_grad_()
    rejected = logps.rejected.clone().requires_grad_()
    logps = SequenceLogps(
        chosen, rejected, logps.chosen_lengths, logps.rejected_lengths,
        logps.ref_chosen, logps.ref_rejected,
    )  # fmt: skip
    losses = criterion_for(name).pair_losses(logps)
    assert torch.isfinite(losses).all(), losses
    reference = torch.tensor([float(v) for v in expected(name, pairs)], dtype=torch.float64)
    torch.testing.assert_close(losses.double(), reference, rtol=1e-4, atol=1e-4)
    if name == "sft":
        return
    losses.sum().backward()
    assert chosen.grad is not None and torch.isfinite(chosen.grad).all()
    assert rejected.grad is not None and torch.isfinite(rejected.grad).all()


# DiscoPOP is not monotone around a zero margin for τ < 0.102 (see its docstring).
@pytest.mark.parametrize("name", sorted(set(ALL) - {"sft", "discopop"}))
def test_at_initialisation_the_gradient_favours_chosen(name: str) -> None:
    """With policy = reference, one descent step raises chosen over rejected log-probs
    (pairs of equal length, so length normalisation cannot change the sign). Default
    hyper-parameters: label smoothing would reverse the sign for confident pairs."""
    pairs = [{**p, "rc": p["sc"], "rr": p["sr"], "lr": p["lc"]} for p in random_pairs()]
    logps = to_logps(pairs)
    chosen = logps.chosen.clone().requires_grad_()
    rejected = logps.rejected.clone().requires_grad_()
    criterion = create_criterion(name.split("/")[0])
    criterion.pair_losses(
        SequenceLogps(chosen, rejected, logps.chosen_lengths, logps.rejected_lengths,
                      logps.ref_chosen, logps.ref_rejected)
    ).sum().backward()  # fmt: skip
    assert chosen.grad is not None and rejected.grad is not None
    assert ((chosen.grad - rejected.grad) < 0).all()


def test_reference_free_criteria_do_not_need_a_reference() -> None:
    lp = to_logps(random_pairs())
    no_ref = SequenceLogps(lp.chosen, lp.rejected, lp.chosen_lengths, lp.rejected_lengths)
    for name in ("simpo", "cpo", "orpo", "sft"):
        criterion = create_criterion(name)
        assert not criterion.needs_reference
        assert torch.isfinite(criterion.pair_losses(no_ref)).all()
    for name in sorted(builtin_names() - {"simpo", "cpo", "orpo", "sft", "combined"}):
        assert create_criterion(name).needs_reference, name


def test_nll_defaults() -> None:
    for name in builtin_names():
        if name == "combined":
            continue
        expected_scale = 1.0 if name in ("cpo", "orpo", "sft") else 0.0
        assert create_criterion(name).nll_scale == expected_scale, name


def test_combined_is_the_weighted_sum_with_each_term_reported() -> None:
    pairs = random_pairs()
    logps = to_logps(pairs)
    combined = create_criterion(
        "combined",
        {"terms": [{"name": "dpo", "weight": 0.8}, {"name": "bco_pair", "weight": 0.2},
                   {"name": "sft", "weight": 0.5}]},
    )  # fmt: skip
    want = [
        0.8 * d - 0.2 * (ls(0.1 * ratios(p)[0]) + ls(-0.1 * ratios(p)[1]))
        for d, p in zip(expected("dpo", pairs), pairs, strict=True)
    ]
    torch.testing.assert_close(
        combined.pair_losses(logps), torch.tensor([float(v) for v in want]), rtol=2e-5, atol=2e-5
    )
    assert combined.nll_scale == 0.5  # 0.5 × SFT's nll_scale of 1
    assert combined.needs_reference
    assert set(combined.extra_metric_names) == {"dpo_loss", "bco_pair_loss"}
    extras = combined.extra_metrics(logps)
    torch.testing.assert_close(extras["dpo_loss"], create_criterion("dpo").pair_losses(logps))
    torch.testing.assert_close(
        combined.chosen_rewards(logps), 0.1 * (logps.chosen - logps.ref_chosen)
    )  # type: ignore[operator]


def test_combined_config_errors_name_the_term() -> None:
    from fairseq2_preference.errors import PreferenceConfigError

    with pytest.raises(PreferenceConfigError, match="'dpoo' is not a known criterion"):
        create_criterion("combined", {"terms": [{"name": "dpoo"}]})
    with pytest.raises(PreferenceConfigError, match="'betta'"):
        create_criterion("combined", {"terms": [{"name": "dpo", "config": {"betta": 1}}]})
