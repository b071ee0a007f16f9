"""The ``fairseq2`` command: ``fairseq2 GROUP COMMAND [options]``.

fairseq2 0.8.1 ships its recipe command line as a library function
(``fairseq2.recipe.cli.main``) but no ``fairseq2`` executable. This module maps
``GROUP COMMAND`` to a recipe and runs fairseq2's command line on it, so
``--config-file``, ``--config k=v``, ``--dump-config`` and ``--no-rich`` behave
exactly as in fairseq2, and adds:

* ``--preset NAME`` / ``--list-presets``: packaged presets (a ``--config-file``
  is overlaid on the preset);
* ``--no-sweep-dir``: as in the fairseq2 0.4 scripts (already the default here);
* config files in the old flat layout, translated with a warning;
* config errors as one paragraph instead of a stack trace.

Exit status: 0 on success, 2 for user or configuration errors, 1 otherwise.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from argparse import ArgumentParser
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fairseq2_preference.log_masking import install_log_masking
from fairseq2_preference.quiet_logs import install_quiet_logs

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
    from fairseq2_preference.recipe import PreferenceFinetuneRecipe

    return PreferenceFinetuneRecipe()


def _instruction_finetune() -> Recipe:
    from fairseq2_preference.recipe import InstructionFinetuneRecipe

    return InstructionFinetuneRecipe()


def _reference_logps() -> Recipe:
    from fairseq2_preference.reference.command import ReferenceLogpsRecipe

    return ReferenceLogpsRecipe()


def _alpaca_eval() -> Recipe:
    from fairseq2_preference.evaluation.recipe import AlpacaEvalRecipe

    return AlpacaEvalRecipe()


def _report_after_training(output_dir: Path) -> None:
    from fairseq2_preference.run_report import report_after_training

    report_after_training(output_dir)


def _plot_runs(argv: list[str]) -> None:
    from fairseq2_preference.curves import main as plot_main

    plot_main(argv)


def _judge_after_generation(output_dir: Path) -> None:
    from fairseq2_preference.evaluation.commands import judge_after_generation

    judge_after_generation(output_dir)


def _judge_alpaca_eval(argv: list[str]) -> None:
    from fairseq2_preference.evaluation.commands import judge_main

    judge_main(argv)


def _export_hf(argv: list[str]) -> None:
    from fairseq2_preference.export import main as export_main

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

EXTRA_OPTIONS = """\
fairseq2-preference options (before fairseq2's own, listed below):
  --preset NAME      start from a packaged preset; a --config-file is applied on top
  --list-presets     list the presets of this command and exit
  --no-sweep-dir     write into OUTPUT_DIR itself (the default here; kept for old scripts)
  --config-file may also be in the flat layout of the fairseq2 0.4 recipes (translated).
"""


def usage(group: str | None = None) -> str:
    lines = ["usage: fairseq2 GROUP COMMAND [OUTPUT_DIR] [options]", "", "commands:"]
    for name, commands in COMMANDS.items():
        if group in (None, name):
            lines += [f"  {name} {cmd:<22} {c.summary}" for cmd, c in commands.items()]
    lines += ["", "Run `fairseq2 GROUP COMMAND --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    install_log_masking()
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    group, *rest = args
    if group not in COMMANDS:
        _fail(f"unknown command group '{group}'.\n\n{usage()}")
    if not rest or rest[0] in ("-h", "--help"):
        print(usage(group))
        sys.exit(0 if rest else 2)
    name, *options = rest
    if name not in COMMANDS[group]:
        _fail(f"unknown command '{group} {name}'.\n\n{usage(group)}")
    command = COMMANDS[group][name]
    from fairseq2_preference.errors import PreferenceConfigError

    if command.run is not None:
        try:
            command.run(options)
        except PreferenceConfigError as ex:
            _fail(str(ex), f"fairseq2 {group} {name}")
        return

    ours, passthrough = _parser().parse_known_args(options)
    if ours.list_presets:
        _print_presets(CONFIG_OF.get(name, name))
        return
    if "-h" in passthrough or "--help" in passthrough:
        print(EXTRA_OPTIONS)

    assert command.recipe is not None
    recipe = command.recipe()
    with tempfile.TemporaryDirectory(prefix="fairseq2-preference-") as workdir:
        from fairseq2_preference.config_files import effective_config_file
        from fairseq2_preference.criterion_switch import switch_overrides
        from fairseq2_preference.user_assets import install_unknown_card_hint
        from fairseq2_preference.user_errors import output_dir_problem

        try:
            config_file = effective_config_file(
                CONFIG_OF.get(name, name), ours.preset, ours.config_file, Path(workdir)
            )
        except PreferenceConfigError as ex:
            _fail(str(ex), f"fairseq2 {group} {name}")
        if config_file is not None:
            passthrough += ["--config-file", str(config_file)]
        criterion = getattr(recipe.config_kls(), "criterion", None)
        if criterion is not None:
            passthrough += switch_overrides(passthrough, config_file, criterion.name)
        if ours.no_sweep_dir:
            passthrough += ["--config", "common.no_sweep_dir=true"]
        if not sys.stderr.isatty() and "--no-rich" not in passthrough:
            passthrough.append("--no-rich")  # piped: plain lines, no wrapping at 80 columns
        output_dir = _output_dir(passthrough)
        problem = None if output_dir is None else output_dir_problem(output_dir)
        if problem is not None:
            _fail(problem, f"fairseq2 {group} {name}")
        kept = None if output_dir is None else _set_aside_config(output_dir)
        sys.argv = [f"fairseq2 {group} {name}", *passthrough]
        install_quiet_logs()
        install_unknown_card_hint()
        try:
            _run(recipe)
        except SystemExit as ex:
            if ex.code == 2 and kept is not None and output_dir is not None:
                from fairseq2_preference.run_directory import restore_config

                restore_config(output_dir, kept)  # nothing was trained with the new one
            raise
    output_dir = _output_dir(passthrough)
    if command.after is not None and output_dir is not None:
        try:
            command.after(output_dir)
        except PreferenceConfigError as ex:
            _fail(str(ex), f"fairseq2 {group} {name}")


def _set_aside_config(output_dir: Path) -> Path | None:
    """Keep an earlier start's config.yaml (on the first process only)."""
    from fairseq2.utils.env import StandardEnvironment, get_rank

    from fairseq2_preference.run_directory import set_aside_config

    if get_rank(StandardEnvironment()) not in (None, 0):
        return None
    return set_aside_config(output_dir)


def _output_dir(recipe_args: list[str]) -> Path | None:
    """The OUTPUT_DIR positional of fairseq2's command line (None with --dump-config)."""
    if "--dump-config" in recipe_args:
        return None
    with_values = {"--config-file", "--checkpoint-dir"}
    skip = False
    for arg in recipe_args:
        if skip:
            skip = False
        elif arg in with_values:
            skip = True
        elif arg == "--config":
            return None  # --config swallows what follows; fairseq2 wants OUTPUT_DIR first
        elif not arg.startswith("-"):
            return Path(arg)
    return None


def _parser() -> ArgumentParser:
    parser = ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--preset")
    parser.add_argument("--list-presets", action="store_true")
    parser.add_argument("--no-sweep-dir", action="store_true")
    parser.add_argument("--config-file", type=Path)
    return parser


def _print_presets(command: str) -> None:
    from fairseq2_preference.config_files import presets

    for preset in presets(command).values():
        print(f"{preset.name:<32} {preset.description}")


def _run(recipe: Recipe) -> None:
    from fairseq2.logging import log
    from fairseq2.recipe.cli import main as recipe_main

    one_paragraph = _OneParagraphConfigErrors()
    log.logger.addFilter(one_paragraph)
    try:
        recipe_main(recipe)
    except SystemExit as ex:
        if one_paragraph.user_error and ex.code == 1:  # fairseq2's status for these
            raise SystemExit(2) from None
        raise
    finally:
        log.logger.removeFilter(one_paragraph)


class _OneParagraphConfigErrors(logging.Filter):
    """fairseq2 logs an unparsable config, a corrupt card or one naming a missing
    file with a stack trace; a user needs the reason (and exit status 2)."""

    user_error = False

    def filter(self, record: logging.LogRecord) -> bool:
        from fairseq2.recipe.error import RecipeConfigParseError

        from fairseq2_preference.errors import describe
        from fairseq2_preference.user_errors import user_error_message

        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        if isinstance(error, RecipeConfigParseError):
            message: str | None = (
                f"{describe(error)} Run with --dump-config to see every valid option."
            )
        else:
            message = user_error_message(error)
            self.user_error = message is not None
        if message is not None:
            record.msg = message
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def _fail(message: str, prog: str = "fairseq2") -> None:
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(2)
