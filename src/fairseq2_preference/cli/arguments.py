"""The options this package adds to fairseq2's command line, and the ones it reads.

fairseq2's own parser takes everything else; these are parsed first and
removed (``--preset``, ``--list-presets``, ``--no-sweep-dir``) or read and
passed on (``--config-file``, ``OUTPUT_DIR``).
"""

from __future__ import annotations

from argparse import ArgumentParser
from pathlib import Path

EXTRA_OPTIONS = """\
fairseq2-preference options (before fairseq2's own, listed below):
  --preset NAME      start from a packaged preset; a --config-file is applied on top
  --list-presets     list the presets of this command and exit
  --no-sweep-dir     write into OUTPUT_DIR itself (the default here; kept for old scripts)
  --config-file may also be in the flat layout of the fairseq2 0.4 recipes (translated).
"""


def parser() -> ArgumentParser:
    """Our options; ``parse_known_args`` leaves fairseq2's to fairseq2."""
    ours = ArgumentParser(add_help=False, allow_abbrev=False)
    ours.add_argument("--preset")
    ours.add_argument("--list-presets", action="store_true")
    ours.add_argument("--no-sweep-dir", action="store_true")
    ours.add_argument("--config-file", type=Path)
    return ours


def output_dir(recipe_args: list[str]) -> Path | None:
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


def set_aside_config(output_dir: Path) -> Path | None:
    """Keep an earlier start's config.yaml (on the first process only)."""
    from fairseq2.utils.env import StandardEnvironment, get_rank

    from fairseq2_preference.run.directory import set_aside_config as set_aside

    if get_rank(StandardEnvironment()) not in (None, 0):
        return None
    return set_aside(output_dir)


def print_presets(command: str) -> None:
    from fairseq2_preference.config.files import presets

    for preset in presets(command).values():
        print(f"{preset.name:<32} {preset.description}")
