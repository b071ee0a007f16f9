"""The summary ``quick-start.sh`` prints after its CPU demo: training next to held-out.

A falling training loss alone says nothing about learning: a model can memorise
its training pairs. The demo's held-out split shares no prompt with training
(``synthetic.color_task_rows``), so its reward accuracy says whether the
preference generalised. The summary reports both, and calls the run a success
only when held-out reward accuracy exceeds :data:`GENERALISATION_THRESHOLD`.

``python -m fairseq2_preference.tiny.summary RUNS_DIR`` (``RUNS_DIR/{sft,dpo}``); exit
status 1 when DPO did not generalise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GENERALISATION_THRESHOLD = 0.8
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


def main() -> None:
    lines, passed = summarise(Path(sys.argv[1]))
    for line in lines:
        print(f"[quick-start] {line}")
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
