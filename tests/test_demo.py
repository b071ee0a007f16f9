"""The quick-start summary: held-out metrics decide, memorisation is not success."""

from __future__ import annotations

from pathlib import Path

from fairseq2_preference.tiny.summary import summarise
from fairseq2_preference.tiny.task import color_task_rows

from helpers import write_jsonl


def write_run(runs: Path, held_out_accuracy: float) -> None:
    train = [
        {"Step": 1, "DPO Loss": 0.693, "Rewards/Accuracies": 0.0},
        {"Step": 40, "DPO Loss": 0.001, "Rewards/Accuracies": 1.0},
    ]
    valid = [{"Step": 40, "DPO Loss": 0.9, "Rewards/Accuracies": held_out_accuracy}]
    write_jsonl(runs / "dpo" / "metrics" / "train.jsonl", train)
    write_jsonl(runs / "dpo" / "metrics" / "valid.jsonl", valid)


def test_memorisation_is_reported_as_failure(tmp_path: Path) -> None:
    write_run(tmp_path, held_out_accuracy=0.0)
    lines, passed = summarise(tmp_path)
    assert not passed
    assert "held-out reward accuracy 0.00" in lines[1] and "not a success" in lines[-1]


def test_generalisation_is_reported_next_to_training(tmp_path: Path) -> None:
    write_run(tmp_path, held_out_accuracy=0.95)
    lines, passed = summarise(tmp_path)
    assert passed
    assert "reward accuracy 1.00 (training batch" in lines[0]
    assert "held-out reward accuracy 0.95" in lines[1]


def test_without_held_out_metrics_there_is_no_claim(tmp_path: Path) -> None:
    write_run(tmp_path, 1.0)
    (tmp_path / "dpo" / "metrics" / "valid.jsonl").unlink()
    assert summarise(tmp_path)[1] is False


def test_the_demo_task_holds_out_whole_prompts() -> None:
    splits = color_task_rows(rejected_per_prompt=7)
    assert len(splits["train"]) + len(splits["dev"]) == 2688
    train_prompts = {row["src"] for row in splits["train"]}
    assert not train_prompts & {row["src"] for row in splits["dev"]}


def write_rounds(runs: Path, held_out_scores: list[float]) -> None:
    rows: list[dict[str, object]] = [
        {"round": r + 1, "policy": f"p{r}", "train_score": 0.5, "held_out_score": score,
         "pairs": 30, "reward_accuracy": 1.0, "held_out_reward_accuracy": 0.9,
         "eval_reward_accuracy": 0.8}
        for r, score in enumerate(held_out_scores[:-1])
    ]  # fmt: skip
    rows.append({"round": None, "policy": "p", "held_out_score": held_out_scores[-1]})
    write_jsonl(runs / "online" / "rounds.jsonl", rows)


def test_online_succeeds_only_when_the_held_out_score_rose(tmp_path: Path) -> None:
    write_rounds(tmp_path / "up", [0.35, 0.6, 0.7, 0.9])
    lines, passed = summarise(tmp_path / "up")
    assert passed and "rose 0.35 -> 0.90" in lines[-1]
    assert len([line for line in lines if line.startswith("online: ")]) == 4 + 1
    write_rounds(tmp_path / "flat", [0.35, 0.6, 0.5, 0.5])
    lines, passed = summarise(tmp_path / "flat")
    assert not passed and "not a success" in lines[-1]
    (tmp_path / "flat" / "online" / "rounds.jsonl").unlink()
    assert summarise(tmp_path / "flat") == (["online: no rounds written"], False)


def test_the_online_demo_holds_out_whole_prompts() -> None:
    from fairseq2_preference.tiny.task import prompt_rows

    splits = prompt_rows(color_task_rows(rejected_per_prompt=7))
    assert (len(splits["train"]), len(splits["dev"])) == (56, 8)
    assert not {row["src"] for row in splits["train"]} & {row["src"] for row in splits["dev"]}
