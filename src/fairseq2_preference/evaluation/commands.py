"""The judging halves of ``fairseq2 lm alpaca_eval`` and ``fairseq2 lm judge_alpaca_eval``."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.evaluation.judge import (
    JudgeSection,
    append_result,
    judge,
    report,
    run_row,
)
from fairseq2_preference.evaluation.recipe import MODEL_OUTPUTS


def judge_after_generation(output_dir: Path) -> None:
    """After ``alpaca_eval`` generated ``OUT/model_outputs.json``: judge it as the run's
    own ``OUT/config.yaml`` says (rank 0 only; the other ranks are done)."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    section = JudgeSection(**_generation_config(output_dir).get("judge", {}))
    if not section.enabled:
        print(f"Outputs written to {output_dir / MODEL_OUTPUTS} (judge.enabled is false).")
        return
    _judge_and_record(output_dir / MODEL_OUTPUTS, output_dir, section)


def judge_main(argv: list[str]) -> None:
    """``fairseq2 lm judge_alpaca_eval MODEL_OUTPUTS``: judge outputs generated earlier."""
    parser = argparse.ArgumentParser(
        prog="fairseq2 lm judge_alpaca_eval",
        description="Judge AlpacaEval model outputs with alpaca_eval and add a results row.",
    )
    parser.add_argument("model_outputs", type=Path, help="model_outputs.json")
    parser.add_argument("--output_dir", type=Path, help="default: the outputs' directory")
    defaults = JudgeSection()
    for f in fields(JudgeSection):
        if f.name != "enabled":
            parser.add_argument(f"--{f.name}", default=getattr(defaults, f.name))
    args = parser.parse_args(argv)
    section = JudgeSection(
        **{f.name: getattr(args, f.name) for f in fields(JudgeSection) if f.name != "enabled"}
    )
    output_dir = args.output_dir or args.model_outputs.parent
    _judge_and_record(args.model_outputs, output_dir, section)


def _generation_config(directory: Path) -> dict[str, Any]:
    """The resolved config of the ``alpaca_eval`` run that wrote ``directory``, if any."""
    file = directory / "config.yaml"
    return yaml.safe_load(file.read_text()) if file.is_file() else {}


def _judge_and_record(model_outputs: Path, output_dir: Path, section: JudgeSection) -> None:
    """Judge, then describe the model from its generation run (or the outputs' generator)."""
    result = judge(model_outputs, output_dir, section)
    config = _generation_config(model_outputs.parent)
    if config:
        model = config["model"].get("name") or str(config["model"].get("path"))
        checkpoint_dir = config["common"]["assets"].get("prev_checkpoint_dir")
    else:
        outputs = json.loads(model_outputs.read_text())
        model, checkpoint_dir = str(outputs[0].get("generator", "")) if outputs else "", None
    row = run_row(section, model, checkpoint_dir)
    extra = {"Judge": section.annotator, "Model Outputs": str(model_outputs)}
    files = append_result(Path(section.results_table), result, row, extra)
    print(report(result, files))
