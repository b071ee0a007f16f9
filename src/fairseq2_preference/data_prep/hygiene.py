"""Dataset hygiene: what is dropped before writing, and why (every drop is counted)."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

from fairseq2_preference.data_prep.examples import Example


def normalize_prompt(text: str) -> str:
    """Lower-cased, whitespace-collapsed: how prompts are compared with an eval set."""
    return re.sub(r"\s+", " ", text).strip().lower()


def load_exclusions(path: Path) -> set[str]:
    """Normalised prompts to exclude, from an AlpacaEval-style JSON list of
    ``{"instruction": ...}``, a jsonl of such objects (``instruction`` or
    ``prompt`` key), or a text file with one prompt per line."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        items = json.loads(text)
    elif path.suffix == ".jsonl":
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        items = [line for line in text.splitlines() if line.strip()]
    prompts = set()
    for item in items:
        value = item if isinstance(item, str) else item.get("instruction", item.get("prompt"))
        if not isinstance(value, str):
            raise ValueError(f"{path}: every entry needs an 'instruction' (or 'prompt') string.")
        prompts.add(normalize_prompt(value))
    return prompts


def clean(
    examples: Iterable[Example], exclude: set[str], drops: Counter[str], what: str
) -> list[Example]:
    """Drop eval-set prompts, pairs with identical responses, exact duplicates, and
    unpaired completions rated both ways for the same prompt."""
    examples = list(examples)
    labels: dict[tuple[object, ...], set[bool]] = {}
    for ex in examples:
        if ex.label is not None:
            labels.setdefault((ex.turns, ex.chosen.strip()), set()).add(ex.label)
    kept: list[Example] = []
    seen: set[tuple[object, ...]] = set()
    for ex in examples:
        if exclude and normalize_prompt(ex.first_prompt) in exclude:
            drops[f"{what}: prompt is in the exclusion list"] += 1
            continue
        if ex.rejected is not None and ex.chosen.strip() == ex.rejected.strip():
            drops[f"{what}: chosen and rejected are identical"] += 1
            continue
        if ex.label is not None and len(labels[ex.turns, ex.chosen.strip()]) > 1:
            drops[f"{what}: the same completion is rated both ways"] += 1
            continue
        key = (ex.turns, ex.chosen, ex.rejected, ex.label)
        if key in seen:
            drops[f"{what}: exact duplicate"] += 1
            continue
        seen.add(key)
        kept.append(ex)
    return kept


def held_out_prompts(examples: Iterable[Example], split_of: Mapping[str, str]) -> set[str]:
    """The normalised first prompts of every example outside the ``train`` split."""
    return {normalize_prompt(ex.first_prompt) for ex in examples if split_of[ex.group] != "train"}


def drop_held_out_prompts(
    examples: Iterable[Example],
    held_out: set[str],
    split_of: Mapping[str, str],
    drops: Counter[str],
    what: str,
) -> list[Example]:
    """Drop training examples whose first prompt is also a dev (held-out) example's.

    Splits are assigned by group (a conversation tree), but the same prompt is
    often asked in several trees; without this, validation would score prompts
    the model was trained on.
    """
    kept = []
    for ex in examples:
        if split_of[ex.group] == "train" and normalize_prompt(ex.first_prompt) in held_out:
            drops[f"{what}: training prompt is also a dev prompt"] += 1
            continue
        kept.append(ex)
    return kept
