"""``fairseq2 lm preference_iterate OUT --config-file iterate.yaml [--config k=v ...]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairseq2_preference.errors import PreferenceDataError


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fairseq2 lm preference_iterate",
        description="Online, iterative DPO: each round samples from the policy, judges the "
        "samples, pairs best with worst and trains from the policy with itself as the "
        "reference. Rerun the same command to resume. See OVERVIEW.md, 'Online, iterative DPO'.",
    )
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--config-file", type=Path, help="the iterate config (YAML)")
    parser.add_argument("--config", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)

    from fairseq2_preference.online.config import load_config
    from fairseq2_preference.online.rounds import Iteration, StageFailed

    try:
        rows = Iteration(load_config(args.config_file, args.config), args.output_dir)()
    except (PreferenceDataError, StageFailed) as error:
        print(f"fairseq2 lm preference_iterate: error: {error}", file=sys.stderr)
        sys.exit(1)
    print(table(rows))
    print(f"Rounds: {args.output_dir / 'rounds.jsonl'}")


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per round: the judge's mean score of the policy's samples on training and
    held-out prompts, the pairs they gave, DPO's reward accuracy at the round's end
    (training batch / held-out pairs, against the round's reference) and the
    trained policy's reward accuracy on ``eval_pairs`` against the start policy."""
    lines = [
        "round  sampled from                 score: train  held-out  pairs  "
        "reward acc: train  held-out  eval pairs"
    ]
    for row in rows:
        head = f"{row['round'] or 'eval':<6} {_short(row['policy']):<28} "
        scores = f"{_num(row.get('train_score')):>12}  {_num(row.get('held_out_score')):>8}"
        if row["round"] is None:
            lines.append(head + scores)
            continue
        lines.append(
            f"{head}{scores}  {row['pairs']:>5}  {_num(row['reward_accuracy']):>17}  "
            f"{_num(row['held_out_reward_accuracy']):>8}  {_num(row['eval_reward_accuracy']):>10}"
        )
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _short(policy: str) -> str:
    return policy if len(policy) <= 28 else "..." + policy[-25:]
