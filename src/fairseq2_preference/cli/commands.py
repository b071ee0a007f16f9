"""The commands of ``fairseq2 GROUP COMMAND``: what each runs, imported only when it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # fairseq2 is imported only once a command runs: `--help` stays fast
    from fairseq2.recipe.base import Recipe


@dataclass(frozen=True)
class Command:
    summary: str
    recipe: Callable[[], Recipe] | None = None
    """A fairseq2 recipe run through fairseq2's command line."""
    after: Callable[[Path], None] | None = None
    """Runs after a successful recipe run, given its output directory."""
    run: Callable[[list[str]], None] | None = None
    """A plain command (no recipe), given its arguments."""


def _preference_finetune() -> Recipe:
    from fairseq2_preference.recipe.preference import PreferenceFinetuneRecipe

    return PreferenceFinetuneRecipe()


def _instruction_finetune() -> Recipe:
    from fairseq2_preference.recipe.preference import InstructionFinetuneRecipe

    return InstructionFinetuneRecipe()


def _reference_logps() -> Recipe:
    from fairseq2_preference.recipe.reference_logps import ReferenceLogpsRecipe

    return ReferenceLogpsRecipe()


def _alpaca_eval() -> Recipe:
    from fairseq2_preference.evaluation.recipe import AlpacaEvalRecipe

    return AlpacaEvalRecipe()


def _preference_sample() -> Recipe:
    from fairseq2_preference.online.sample_recipe import SampleRecipe

    return SampleRecipe()


def _report_after_training(output_dir: Path) -> None:
    from fairseq2_preference.run.report import report_after_training

    report_after_training(output_dir)


def _plot_runs(argv: list[str]) -> None:
    from fairseq2_preference.run.curves import main as plot_main

    plot_main(argv)


def _judge_after_generation(output_dir: Path) -> None:
    from fairseq2_preference.evaluation.commands import judge_after_generation

    judge_after_generation(output_dir)


def _judge_alpaca_eval(argv: list[str]) -> None:
    from fairseq2_preference.evaluation.commands import judge_main

    judge_main(argv)


def _preference_iterate(argv: list[str]) -> None:
    from fairseq2_preference.online.commands import main as iterate_main

    iterate_main(argv)


def _export_hf(argv: list[str]) -> None:
    from fairseq2_preference.models.export import main as export_main

    export_main(argv)


COMMANDS: dict[str, dict[str, Command]] = {
    "lm": {
        "preference_finetune": Command(
            "finetune a language model on preference pairs (DPO, SimPO, ORPO, ...)",
            _preference_finetune,
            after=_report_after_training,
        ),
        "instruction_finetune": Command(
            "supervised finetuning on instruction data (SFT)",
            _instruction_finetune,
            after=_report_after_training,
        ),
        "preference_reference_logps": Command(
            "compute a training config's reference log-probs once, into the cache",
            _reference_logps,
        ),
        "preference_sample": Command(
            "sample K completions per prompt from a model, data-parallel (samples.jsonl)",
            _preference_sample,
        ),
        "preference_iterate": Command(
            "online, iterative DPO: rounds of sampling, judging, pairing and training",
            run=_preference_iterate,
        ),
        "alpaca_eval": Command(
            "generate AlpacaEval outputs from a model, then judge them (WR, LC WR)",
            _alpaca_eval,
            after=_judge_after_generation,
        ),
        "judge_alpaca_eval": Command(
            "judge an existing model_outputs.json and add a results-table row",
            run=_judge_alpaca_eval,
        ),
        "plot_runs": Command(
            "plot loss / reward accuracy / margin curves of one or more runs into a PNG",
            run=_plot_runs,
        ),
        "export_hf": Command(
            "export a run's checkpoint (the last, or --step N) in the Hugging Face format",
            run=_export_hf,
        ),
    },
}

CONFIG_OF = {"preference_reference_logps": "preference_finetune"}
"""Commands that take another command's config, presets included."""


def usage(group: str | None = None) -> str:
    lines = ["usage: fairseq2 GROUP COMMAND [OUTPUT_DIR] [options]", "", "commands:"]
    for name, commands in COMMANDS.items():
        if group in (None, name):
            lines += [f"  {name} {cmd:<22} {c.summary}" for cmd, c in commands.items()]
    lines += ["", "Run `fairseq2 GROUP COMMAND --help` for the options of a command."]
    return "\n".join(lines)
