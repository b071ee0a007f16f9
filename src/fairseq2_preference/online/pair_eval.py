"""Reward accuracy of every round's policy on fixed, labelled held-out pairs.

DPO's own reward accuracy is measured against the round's reference — the
previous policy — so it restarts at zero every round and cannot show progress
across rounds. Here the implicit reward is taken against the *start* policy,
``r(x, y) = log π_r(y|x) − log π_0(y|x)`` (Rafailov et al. 2023, §5), on pairs
none of the rounds trains on: the accuracy is the share of pairs whose chosen
response gets the higher reward (ties count as wrong, so the start policy
scores 0). Rising accuracy means each round moved the policy further the way
the labels point.

The log-probs come from ``preference_reference_logps`` (data-parallel under the
``launcher``), with the policy as its reference model, into a cache under
``OUT/logps_cache``: content-addressed, so the start policy's numbers are
computed once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from fairseq2_preference.reference.store import ReferenceCache

SUMMARY = "reference_logps.json"


def sequence_logps(stage_dir: Path) -> dict[str, tuple[float, float]]:
    """``{id: (chosen, rejected)}`` summed log-probs of a ``preference_reference_logps`` run."""
    entries = json.loads((stage_dir / SUMMARY).read_text(encoding="utf-8"))
    (entry,) = [e for e in entries if e["role"] == "train"]
    directory = Path(entry["entry"])
    table = ReferenceCache(directory.parent).load(entry["key"])
    if table is None:
        raise FileNotFoundError(f"{directory}: the cache entry is incomplete.")
    logps = table.logps.to(torch.float64)
    return {i: (float(row[0]), float(row[1])) for i, row in zip(table.ids, logps, strict=True)}


def reward_accuracy(
    policy: Mapping[str, tuple[float, float]], start: Mapping[str, tuple[float, float]]
) -> float:
    """The share of pairs with ``r(chosen) > r(rejected)``, ``r = log π − log π_0``."""
    wins = [(policy[i][0] - start[i][0]) > (policy[i][1] - start[i][1]) for i in sorted(start)]
    return sum(wins) / len(wins)
