"""Pin R-DPO against an independent scalar computation (run with the package installed)."""

from __future__ import annotations

import math

import pytest
import torch

from fairseq2_preference.criteria import SequenceLogps, create_criterion, criterion_names


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def test_registered_through_the_entry_point() -> None:
    assert "rdpo" in criterion_names()


def test_matches_formula() -> None:
    g = torch.Generator().manual_seed(0)
    n = 16
    logps = SequenceLogps(
        chosen=-torch.rand(n, generator=g) * 50,
        rejected=-torch.rand(n, generator=g) * 50,
        chosen_lengths=torch.randint(1, 60, (n,), generator=g).float(),
        rejected_lengths=torch.randint(1, 60, (n,), generator=g).float(),
        ref_chosen=-torch.rand(n, generator=g) * 50,
        ref_rejected=-torch.rand(n, generator=g) * 50,
    )
    beta, alpha = 0.2, 0.03
    losses = create_criterion("rdpo", {"beta": beta, "alpha": alpha}).pair_losses(logps)

    assert logps.ref_chosen is not None and logps.ref_rejected is not None
    for i in range(n):
        h = float(logps.chosen[i] - logps.ref_chosen[i]) - float(
            logps.rejected[i] - logps.ref_rejected[i]
        )
        gap = float(logps.chosen_lengths[i] - logps.rejected_lengths[i])
        expected = -log_sigmoid(beta * h - alpha * gap)
        assert float(losses[i]) == pytest.approx(expected, rel=1e-5, abs=1e-6)
