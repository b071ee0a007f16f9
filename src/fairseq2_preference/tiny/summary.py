"""The summary ``quick-start.sh`` prints after its CPU demo: training next to held-out.

A falling training loss alone says nothing about learning: a model can memorise
its training pairs. The demo's held-out split shares no prompt with training
(``synthetic.color_task_rows``), so its reward accuracy says whether the
preference generalised. The summary reports both, and calls the run a success
only when held-out reward accuracy exceeds :data:`GENERALISATION_THRESHOLD`.

After online DPO (``quick-start.sh --online``) there are no given pairs to hold out:
the judge scores the policy's own samples on held-out prompts each round, and the
run is a success when that score rose by :data:`ONLINE_GAIN` from the SFT model.

``python -m fairseq2_preference.tiny.summary RUNS_DIR`` (``RUNS_DIR/{sft,dpo|online}``);
exit status 1 when DPO did not generalise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GENERALISATION_THRESHOLD = 0.8
ONLINE_GAIN = 0.2
ACCURACY = "Rewards/Accuracies"


def _rows(run: Path, split: str) -> list[dict[str, float]]:
    file = run / "metrics" / f"{split}.jsonl"
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]


def summarise(runs: Path) -> tuple[list[str], bool]:
    """The summary lines, and whether DPO's held-out reward accuracy passes the threshold."""
    lines = []
    sft_train, sft_valid = _rows(runs / "sft", "train"), _rows(runs / "sft", "valid")
    if sft_train:
        nll_start, nll_end = sft_train[0]["NLL Loss"], sft_train[-1]["NLL Loss"]
        line = f"sft: NLL Loss {nll_start:.3f} (step 1) -> {nll_end:.3f}"
        if sft_valid:
            line += f"; held-out {sft_valid[-1]['NLL Loss']:.3f}"
        lines.append(line + f" (step {sft_train[-1]['Step']})")
    if (runs / "online").is_dir():
        online, passed = _online(runs / "online")
        return lines + online, passed
    train, valid = _rows(runs / "dpo", "train"), _rows(runs / "dpo", "valid")
    if not train:
        return [*lines, "dpo: no metrics written"], False
    first, last = train[0], train[-1]
    lines.append(
        f"dpo: DPO Loss {first['DPO Loss']:.3f} (step 1) -> {last['DPO Loss']:.3f}, "
        f"reward accuracy {last[ACCURACY]:.2f} (training batch, step {last['Step']})"
    )
    if not valid:
        return [*lines, "dpo: no held-out metrics, so no evidence of generalisation"], False
    end = valid[-1]
    lines.append(
        f"dpo: held-out DPO Loss {valid[0]['DPO Loss']:.3f} (step {valid[0]['Step']}) -> "
        f"{end['DPO Loss']:.3f}, held-out reward accuracy {end[ACCURACY]:.2f} "
        f"(step {end['Step']}, prompts never seen in training)"
    )
    passed = end[ACCURACY] > GENERALISATION_THRESHOLD
    if passed:
        lines.append("dpo: the preference generalises to held-out prompts.")
    else:
        lines.append(
            f"dpo: held-out reward accuracy is not above {GENERALISATION_THRESHOLD}: the model "
            "fits its training pairs without generalising; this run is not a success."
        )
    return lines, passed


def _online(run: Path) -> tuple[list[str], bool]:
    file = run / "rounds.jsonl"
    if not file.is_file():
        return ["online: no rounds written"], False
    rows = [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines()]
    lines = []
    for row in rows:
        if row["round"] is None:
            lines.append(f"online: the final policy: held-out score {row['held_out_score']:.3f}")
            continue
        lines.append(
            f"online: round {row['round']}: held-out score {row['held_out_score']:.3f} (the "
            f"policy it samples from), {row['pairs']} pairs, reward accuracy "
            f"{row['reward_accuracy']:.2f} (training batch) / "
            f"{row['held_out_reward_accuracy']:.2f} (held-out pairs) / "
            f"{row['eval_reward_accuracy']:.2f} (eval pairs, vs the SFT model)"
        )
    scores = [row["held_out_score"] for row in rows]
    passed = len(rows) > 1 and scores[-1] > scores[0] + ONLINE_GAIN
    if passed:
        lines.append(
            f"online: the held-out score rose {scores[0]:.2f} -> {scores[-1]:.2f} on prompts "
            "never sampled in training, from no preference data."
        )
    else:
        lines.append(
            f"online: the held-out score did not rise by {ONLINE_GAIN} ({scores[0]:.2f} -> "
            f"{scores[-1]:.2f}); this run is not a success."
        )
    return lines, passed


def main() -> None:
    lines, passed = summarise(Path(sys.argv[1]))
    for line in lines:
        print(f"[quick-start] {line}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
