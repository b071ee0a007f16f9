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
