"""The data-preparation command lines, parsed before anything heavy is imported.

``datasets/*.py`` call :func:`run_script`: a wrong or missing argument (or
``--help``) is answered in a fraction of a second, and only a valid command line
imports the module that does the work (and, through it, fairseq2 and
``datasets``, seconds of start-up).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

OASST_HUB = "OpenAssistant/oasst2"
GSM8K_HUB = "openai/gsm8k"


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


def oasst_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Build OpenAssistant2 preference pairs and SFT examples, with fairseq2 "
        "asset cards naming them (<name>_preference_train, ..._dev, <name>_instruction_train, ...)."
    )
    parser.add_argument(
        "--source",
        help=f"local copy: a directory like the dataset repository, parquet files, or "
        f"*.messages.jsonl(.gz) / *.trees.jsonl(.gz) exports (default: the hub's {OASST_HUB})",
    )
    parser.add_argument(
        "--lang", default="en", help="root languages to keep, comma-separated, or 'all'"
    )
    parser.add_argument(
        "--pairing", choices=["rank0_vs_rest", "best_vs_worst"], default="rank0_vs_rest"
    )
    parser.add_argument("--first_turn_only", action="store_true", help="only first-turn prompts")
    parser.add_argument(
        "--include_synthetic", action="store_true", help="keep model-written replies"
    )
    add_output_arguments(parser, "openassistant2")
    return parser


def hf_preference_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Convert a Hugging Face preference dataset (prompt/chosen/rejected, as "
        "strings or message lists) into preference and SFT jsonl with fairseq2 asset cards."
    )
    parser.add_argument(
        "--source", required=True, help="hub dataset name, or a local file or directory"
    )
    parser.add_argument("--config", help="the hub dataset's configuration name, if it has several")
    parser.add_argument("--train_split", default="train", help="source split to train on")
    parser.add_argument(
        "--dev_split",
        help="source split to use as dev (e.g. test_prefs); by default, --dev_size prompts "
        "are held out from the train split",
    )
    parser.add_argument("--prompt_field", default="prompt")
    parser.add_argument("--chosen_field", default="chosen")
    parser.add_argument("--rejected_field", default="rejected")
    add_output_arguments(parser, "<source>")
    return parser


def gsm8k_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Mine GSM8K preference pairs: gold solutions vs sampled wrong answers."
    )
    parser.add_argument(
        "--model",
        required=True,
        help="model asset card, e.g. llama3_1_8b_instruct or checkpoint_step_1000",
    )
    parser.add_argument("--tokenizer", help="tokenizer asset card (default: --model)")
    parser.add_argument(
        "--asset_path",
        type=Path,
        action="append",
        default=[],
        help="extra asset card directory (repeatable)",
    )
    parser.add_argument(
        "--checkpoint_dir",
        type=Path,
        help="a run's checkpoints/ directory (cards checkpoint_step_<N>)",
    )
    parser.add_argument(
        "--source", help=f"local jsonl of {{question, answer}} (default: the hub's {GSM8K_HUB})"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument("--limit", type=int, help="only the first N problems")
    parser.add_argument("--num_samples", type=int, default=8)
    parser.add_argument("--max_rejected", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--top_p", type=float, default=0.95)
    parser.add_argument("--max_gen_len", type=int, default=512)
    parser.add_argument("--batch_size", type=int, default=16)
    add_output_arguments(parser, "gsm8k")
    return parser


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "oasst": oasst_parser,
    "hf_preference": hf_preference_parser,
    "gsm8k": gsm8k_parser,
}
"""Module of :mod:`fairseq2_preference.data_prep` → its command line."""


def run_script(name: str, argv: Sequence[str] | None = None) -> None:
    """Parse the command line of preparation ``name``, then import and run it; a
    user error (a missing source, an unreachable hub) ends it with one paragraph
    and status 2, not a traceback."""
    args = PARSERS[name]().parse_args(argv)
    module = importlib.import_module(f"fairseq2_preference.data_prep.{name}")
    from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError

    try:
        module.prepare_from(args)
    except (PreferenceConfigError, PreferenceDataError, FileNotFoundError) as ex:
        print(f"{sys.argv[0]}: error: {ex}", file=sys.stderr)
        sys.exit(2)
