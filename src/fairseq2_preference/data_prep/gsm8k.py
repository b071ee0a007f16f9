"""GSM8K preference pairs with model-sampled negatives (no vLLM needed).

For each problem, sample answers from a model with fairseq2's generator and keep
those that are *well formatted but wrong* as rejected responses — they end with
``#### <number>`` like the gold solutions, but with another number — and the
gold solution as the chosen one. Mined negatives are hard negatives: the same
style and length as correct answers, so the pair isolates correctness.

Problems come from the hub dataset ``openai/gsm8k`` (config ``main``) or a
local jsonl of ``{"question", "answer"}`` rows in the same format.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from fairseq2_preference.data_prep.arguments import prep_request
from fairseq2_preference.data_prep.commands import GSM8K_HUB, gsm8k_parser
from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.formatting import PromptFormatter
from fairseq2_preference.data_prep.writer import PrepResult, prepare
from fairseq2_preference.models.generation import (
    SamplingOptions,
    default_device,
    generate,
    init_assets,
    load,
)
from fairseq2_preference.offline import from_hub

HUB_DATASET = GSM8K_HUB

INSTRUCTION = (
    'Solve the problem step by step, then give the final answer on its own line as "#### <number>".'
)

FINAL_ANSWER = re.compile(r"####\s*(-?[\d,]*\.?\d+)\s*$")

CALCULATOR = re.compile(r"<<[^>]*>>")


def final_number(text: str) -> float | None:
    """The number after a closing ``#### `` line, or ``None`` if the text has none."""
    match = FINAL_ANSWER.search(text.strip())
    if match is None:
        return None
    try:
        return float(match.group(1).replace(",", ""))
    except ValueError:
        return None


def clean_solution(answer: str) -> str:
    """A GSM8K gold solution without its calculator annotations (``<<48/2=24>>``)."""
    return CALCULATOR.sub("", answer).strip()


def prompt_turns(question: str) -> tuple[tuple[str, str], ...]:
    return (("user", f"{question.strip()}\n{INSTRUCTION}"),)


def load_problems(source: str | None, split: str, limit: int | None) -> list[dict[str, str]]:
    if source is None:
        import datasets

        with from_hub(
            f"The {HUB_DATASET} dataset",
            "Pass a local jsonl of {question, answer} rows with --source.",
        ):
            rows = datasets.load_dataset(HUB_DATASET, "main", split=split)  # type: ignore[attr-defined]
        problems = [{"question": r["question"], "answer": r["answer"]} for r in rows]
    else:
        lines = Path(source).read_text(encoding="utf-8").splitlines()
        problems = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if not isinstance(row.get("question"), str) or not isinstance(row.get("answer"), str):
                raise ValueError(f"{source}, line {number}: needs 'question' and 'answer' strings.")
            problems.append(row)
    for i, problem in enumerate(problems):
        if final_number(problem["answer"]) is None:
            raise ValueError(f"Problem {i}: the gold answer does not end with '#### <number>'.")
    return problems[:limit] if limit is not None else problems


def mine(
    problems: Sequence[Mapping[str, str]],
    samples: Sequence[Sequence[str]],
    max_rejected: int,
    drops: Counter[str],
) -> tuple[list[Example], list[Example]]:
    """Pairs (gold vs each distinct well-formatted wrong sample, at most ``max_rejected``
    per problem) and SFT examples (the gold solutions)."""
    pairs: list[Example] = []
    sft: list[Example] = []
    for i, (problem, completions) in enumerate(zip(problems, samples, strict=True)):
        gold_text = clean_solution(problem["answer"])
        gold = final_number(gold_text)
        turns = prompt_turns(problem["question"])
        group = f"gsm8k-{i}"
        sft.append(Example(f"{group}:gold", group, turns, gold_text))
        kept: list[str] = []
        for text in completions:
            value = final_number(text)
            if value is None:
                drops["samples: not well formatted (no final '#### <number>')"] += 1
            elif gold is not None and abs(value - gold) < 1e-6:
                drops["samples: correct"] += 1
            elif text in kept:
                drops["samples: repeated"] += 1
            elif len(kept) >= max_rejected:
                drops["samples: over --max_rejected"] += 1
            else:
                kept.append(text)
        if not kept:
            drops["problems: no well-formatted wrong sample"] += 1
        for j, text in enumerate(kept):
            pairs.append(Example(f"{group}:{j}", group, turns, gold_text, text))
    return pairs, sft


def sample(
    problems: Sequence[Mapping[str, str]],
    formatter: PromptFormatter,
    model_name: str,
    tokenizer_name: str,
    options: SamplingOptions,
    batch_size: int,
    seed: int,
) -> list[list[str]]:
    device = default_device()
    model, tokenizer = load(model_name, tokenizer_name, device)
    torch.manual_seed(seed)
    prompts = [formatter(prompt_turns(p["question"])) for p in problems]
    return generate(model, tokenizer, prompts, options, batch_size, device)


def main(argv: list[str] | None = None) -> PrepResult:
    """``datasets/gsm8k_negatives_data_prep.py``: see ``--help``."""
    return prepare_from(gsm8k_parser().parse_args(argv))


def prepare_from(args: argparse.Namespace) -> PrepResult:
    """Prepare the data the parsed command line asks for."""
    options = SamplingOptions(args.temperature, args.top_p, args.max_gen_len, args.num_samples)
    source = args.source or f"{HUB_DATASET}:{args.split}"
    request = prep_request(
        args,
        "gsm8k",
        source,
        {
            "model": args.model,
            "checkpoint_dir": str(args.checkpoint_dir) if args.checkpoint_dir else None,
            "limit": args.limit,
            "max_rejected": args.max_rejected,
            "sampling": asdict(options),
        },
    )

    def build(drops: Counter[str]) -> tuple[list[Example], list[Example]]:
        problems = load_problems(args.source, args.split, args.limit)
        init_assets(args.asset_path, args.checkpoint_dir)
        tokenizer = args.tokenizer or args.model
        samples = sample(
            problems, request.formatter, args.model, tokenizer, options, args.batch_size, args.seed
        )
        return mine(problems, samples, args.max_rejected, drops)

    return prepare(request, build)
