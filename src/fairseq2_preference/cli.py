"""The ``fairseq2`` command: ``fairseq2 GROUP COMMAND [fairseq2 recipe options]``.

fairseq2 0.8.1 ships its recipe command line as a library function
(``fairseq2.recipe.cli.main``) but no ``fairseq2`` executable; this module maps
``GROUP COMMAND`` to a recipe and hands the rest of the arguments to it, so
``--config-file``, ``--config k=v``, ``--dump-config`` and ``--no-rich`` behave
exactly as in fairseq2.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fairseq2.recipe.base import Recipe


@dataclass(frozen=True)
class Command:
    summary: str
    recipe: Callable[[], Recipe]


def _preference_finetune() -> Recipe:
    from fairseq2_preference.recipe import PreferenceFinetuneRecipe

    return PreferenceFinetuneRecipe()


def _instruction_finetune() -> Recipe:
    from fairseq2_preference.recipe import InstructionFinetuneRecipe

    return InstructionFinetuneRecipe()


COMMANDS: dict[str, dict[str, Command]] = {
    "lm": {
        "preference_finetune": Command(
            "finetune a language model on preference pairs (DPO, ...)", _preference_finetune
        ),
        "instruction_finetune": Command(
            "supervised finetuning on instruction data (SFT)", _instruction_finetune
        ),
    },
}


def usage() -> str:
    lines = ["usage: fairseq2 GROUP COMMAND [-h] ...", "", "commands:"]
    for group, commands in COMMANDS.items():
        for name, command in commands.items():
            lines.append(f"  {group} {name:<24} {command.summary}")
    lines += ["", "Run `fairseq2 GROUP COMMAND --help` for the options of a command."]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        sys.exit(0 if args else 2)
    group, *rest = args
    commands = COMMANDS.get(group)
    if commands is None or not rest or rest[0] not in commands:
        if rest and rest[0] in ("-h", "--help") and commands is not None:
            print(usage())
            sys.exit(0)
        what = " ".join(args[:2])
        print(f"fairseq2: unknown command '{what}'.\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    name, *recipe_args = rest
    recipe = commands[name].recipe()
    sys.argv = [f"fairseq2 {group} {name}", *recipe_args]

    from fairseq2.recipe.cli import main as recipe_main

    recipe_main(recipe)
