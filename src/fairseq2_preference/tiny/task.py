"""A small preference task a tiny model learns in a few dozen steps, and generalises.

Prompt: ``Describe the <color> <animal>.`` Chosen: ``The <color> <animal> is
<trait>.`` Rejected: the same sentence with another colour. Preferring the chosen
response means copying the colour from the prompt, so reward accuracy on pairs
whose (colour, animal) combinations never occur in training measures whether the
preference was learned rather than memorised.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path

from fairseq2_preference.io import atomic_write_jsonl

COLORS = ("red", "blue", "green", "yellow", "purple", "orange", "black", "white")
ANIMALS = ("cat", "dog", "fox", "owl", "bear", "frog", "horse", "mouse")
TRAITS = ("calm", "quick", "small", "loud", "happy", "sleepy")


def color_task_rows(seed: int = 0, rejected_per_prompt: int = 2) -> dict[str, list[dict[str, str]]]:
    """``{"train": rows, "dev": rows}``; dev holds the combinations train never shows."""
    rng = random.Random(seed)
    splits: dict[str, list[dict[str, str]]] = {"train": [], "dev": []}
    for ci, color in enumerate(COLORS):
        for ai, animal in enumerate(ANIMALS):
            split = "dev" if (ci + ai) % len(COLORS) == 0 else "train"
            for trait in TRAITS:
                others = rng.sample([c for c in COLORS if c != color], rejected_per_prompt)
                for other in others:
                    splits[split].append(
                        {
                            "id": f"{color}-{animal}-{trait}-{other}",
                            "src": f"User: Describe the {color} {animal}.\nAssistant:",
                            "tgt_chosen": f" The {color} {animal} is {trait}.",
                            "tgt_rejected": f" The {other} {animal} is {trait}.",
                        }
                    )
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


def instruction_rows(
    splits: Mapping[str, Sequence[Mapping[str, str]]],
) -> dict[str, list[dict[str, str]]]:
    """The same task as SFT data: each prompt once, with its chosen response."""
    out: dict[str, list[dict[str, str]]] = {}
    for split, rows in splits.items():
        seen: dict[str, dict[str, str]] = {}
        for row in rows:
            key = row["src"] + row["tgt_chosen"]
            seen.setdefault(
                key,
                {"id": row["id"].rsplit("-", 1)[0], "src": row["src"], "tgt": row["tgt_chosen"]},
            )
        out[split] = list(seen.values())
    return out


def prompt_rows(
    splits: Mapping[str, Sequence[Mapping[str, str]]],
) -> dict[str, list[dict[str, str]]]:
    """The task's prompts for online training, each once, with what a correct answer
    names (``expected``: ``"<color> <animal>"``, the ``contains`` judge's rule)."""
    out: dict[str, list[dict[str, str]]] = {}
    for split, rows in splits.items():
        seen: dict[str, dict[str, str]] = {}
        for row in rows:
            color, animal = row["id"].split("-")[:2]
            seen.setdefault(
                row["src"],
                {"id": f"{color}-{animal}", "src": row["src"], "expected": f"{color} {animal}"},
            )
        out[split] = list(seen.values())
    return out


def write_jsonl_splits(splits: Mapping[str, Sequence[Mapping[str, str]]], out_dir: Path) -> None:
    """Write ``<out_dir>/<split>/data.chunk.0000.jsonl`` for each split."""
    for split, rows in splits.items():
        atomic_write_jsonl(out_dir / split / "data.chunk.0000.jsonl", rows)
