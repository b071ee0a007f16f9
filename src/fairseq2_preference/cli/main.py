"""Dispatch of ``fairseq2 GROUP COMMAND [options]``, and its one-paragraph errors.

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
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from fairseq2_preference.cli import arguments
from fairseq2_preference.cli.commands import COMMANDS, CONFIG_OF, usage
from fairseq2_preference.run.log_masking import install_log_masking
from fairseq2_preference.run.quiet_logs import install_quiet_logs

if TYPE_CHECKING:  # fairseq2 is imported only once a command runs: `--help` stays fast
    from fairseq2.recipe.base import Recipe


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

    ours, passthrough = arguments.parser().parse_known_args(options)
    if ours.list_presets:
        arguments.print_presets(CONFIG_OF.get(name, name))
        return
    if "-h" in passthrough or "--help" in passthrough:
        print(arguments.EXTRA_OPTIONS)

    assert command.recipe is not None
    recipe = command.recipe()
    with tempfile.TemporaryDirectory(prefix="fairseq2-preference-") as workdir:
        from fairseq2_preference.config.assets import install_unknown_card_hint
        from fairseq2_preference.config.criterion_switch import switch_overrides
        from fairseq2_preference.config.files import effective_config_file
        from fairseq2_preference.errors import output_dir_problem

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
        output_dir = arguments.output_dir(passthrough)
        problem = None if output_dir is None else output_dir_problem(output_dir)
        if problem is not None:
            _fail(problem, f"fairseq2 {group} {name}")
        kept = None if output_dir is None else arguments.set_aside_config(output_dir)
        sys.argv = [f"fairseq2 {group} {name}", *passthrough]
        install_quiet_logs()
        install_unknown_card_hint()
        try:
            _run(recipe)
        except SystemExit as ex:
            if ex.code == 2 and kept is not None and output_dir is not None:
                from fairseq2_preference.run.directory import restore_config

                restore_config(output_dir, kept)  # nothing was trained with the new one
            raise
    output_dir = arguments.output_dir(passthrough)
    if command.after is not None and output_dir is not None:
        try:
            command.after(output_dir)
        except PreferenceConfigError as ex:
            _fail(str(ex), f"fairseq2 {group} {name}")


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

        from fairseq2_preference.errors import describe, user_error_message

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
