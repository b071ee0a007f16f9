"""Every registered criterion trains the tiny model end to end on CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from fairseq2_preference.criteria import create_criterion

from helpers import builtin_names, regime, train

pytestmark = pytest.mark.slow

STEPS = regime(8, 4)

CONFIGS: dict[str, dict[str, object]] = {
    "combined": {
        "terms": [
            {"name": "dpo"},
            {"name": "bco_pair", "weight": 0.2},
            {"name": "sft", "weight": 0.5},
        ]
    }
}

REFERENCE_LOADED = "specified in `reference_model` section"


PAIR_CRITERIA = sorted(builtin_names() - {"kto"})
"""KTO (one completion per example) trains in test_kto.py, on pairs and on feedback."""


@pytest.mark.parametrize("name", PAIR_CRITERIA)
def test_criterion_trains(tmp_path: Path, tiny_assets: Path, name: str) -> None:
    config = CONFIGS.get(name, {})
    needs_reference = create_criterion(name, config).needs_reference
    reference = [] if needs_reference else ["reference_model=null"]
    out = tmp_path / name
    criterion = "criterion=" + json.dumps({"name": name, "config": config})
    metrics = train(out, tiny_assets, *STEPS, criterion, *reference)

    losses = [float(m["Loss"]) for m in metrics]  # type: ignore[arg-type]
    assert all(math.isfinite(x) for x in losses)
    assert sum(losses[-3:]) / 3 < losses[0], losses

    log = (out / "logs" / "rank_0.log").read_text()
    assert (REFERENCE_LOADED in log) == needs_reference
    if name == "combined":
        for key in ("combined/dpo_loss", "combined/bco_pair_loss"):
            assert key in metrics[-1]


def test_reference_free_criterion_ignores_a_configured_reference(
    tmp_path: Path, tiny_assets: Path
) -> None:
    out = tmp_path / "simpo"
    train(out, tiny_assets, *STEPS, "criterion={name: simpo}")  # reference_model is set
    log = (out / "logs" / "rank_0.log").read_text()
    assert REFERENCE_LOADED not in log
    assert "reference-free; `reference_model` is not loaded" in log
