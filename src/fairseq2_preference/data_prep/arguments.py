"""The command-line options every data-preparation script shares, and what they build."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fairseq2_preference.data_prep.formatting import make_formatter
from fairseq2_preference.data_prep.writer import PrepRequest
from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError


def add_output_arguments(parser: argparse.ArgumentParser, default_name: str) -> None:
    """``--data_dir``, ``--card_dir``, naming, formatting, splitting and rebuild options."""
    group = parser.add_argument_group("output")
    group.add_argument("--data_dir", type=Path, required=True, help="where the jsonl files go")
    group.add_argument("--card_dir", type=Path, required=True, help="where the asset card goes")
    group.add_argument("--name", help=f"dataset name (default: {default_name}_<format>)")
    group.add_argument(
        "--chat_template",
        help="a Hugging Face tokenizer (hub name or path) whose chat template formats the "
        "prompts (default: the Llama 3 Instruct format)",
    )
    group.add_argument(
        "--dev_size", type=int, default=500, help="groups held out as dev (default 500)"
    )
    group.add_argument("--seed", type=int, default=0, help="seed of the train/dev shuffle")
    group.add_argument(
        "--exclude_prompts",
        type=Path,
        help="drop examples whose first prompt is in this file (e.g. AlpacaEval's JSON)",
    )
    group.add_argument("--force", action="store_true", help="rebuild even if up to date")


def prep_request(
    args: argparse.Namespace, default_name: str, source: str, options: Mapping[str, Any]
) -> PrepRequest:
    """The :class:`PrepRequest` of parsed :func:`add_output_arguments` options."""
    formatter = make_formatter(args.chat_template)
    return PrepRequest(
        name=args.name or f"{default_name}_{formatter.slug}",
        data_dir=args.data_dir,
        card_dir=args.card_dir,
        source=source,
        options={**options, "chat_template": args.chat_template},
        formatter=formatter,
        dev_size=args.dev_size,
        seed=args.seed,
        exclude_prompts=args.exclude_prompts,
        force=args.force,
    )


def run_script(main: Callable[[], object]) -> None:
    """Run a preparation script's ``main``; a user error (a missing source, an
    unreachable hub) ends it with one paragraph and status 2, not a traceback."""
    try:
        main()
    except (PreferenceConfigError, PreferenceDataError, FileNotFoundError) as ex:
        print(f"{sys.argv[0]}: error: {ex}", file=sys.stderr)
        sys.exit(2)
