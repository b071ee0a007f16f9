"""From examples to files: clean, split, format, write (:mod:`.layout`), summarise.

A build is written beside the current data and swapped in whole, and
``prep.json`` is written last (:func:`swap_in`): a run that stops half way
leaves either the previous data with its marker, or no marker, so the next run
redoes the work; never a mix of two builds. A run whose marker matches (same
format version, source, options and files present) does nothing. No training
row repeats a prompt of the dev split (of either kind): such rows are dropped
and counted, and the written rows are checked.
"""

from __future__ import annotations

import json
import random
import shutil
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.formatting import PromptFormatter
from fairseq2_preference.data_prep.hygiene import (
    clean,
    drop_held_out_prompts,
    held_out_prompts,
    load_exclusions,
)
from fairseq2_preference.data_prep.layout import (
    MARKER,
    STAGING,
    rows_by_split,
    summary,
    swap_in,
    write_cards,
    write_rows,
)
from fairseq2_preference.io import atomic_write_text

PREP_FORMAT_VERSION = 3
"""Bump when the written data would differ for the same inputs; old outputs are then rebuilt."""

Builder = Callable[[Counter[str]], Sequence[list[Example]]]
"""Lists of examples of any kind: each :class:`Example` says whether it is a pair,
an instruction or an unpaired one (:attr:`Example.kind`)."""

KIND_NAMES = {"preference": "pairs", "instruction": "instruction examples",
              "unpaired": "unpaired examples"}  # fmt: skip


@dataclass
class PrepRequest:
    name: str
    """Dataset name; cards are ``<name>_preference_<split>`` and so on."""
    data_dir: Path
    card_dir: Path
    source: str
    """Where the data came from (hub id or local path), recorded in the marker."""
    options: Mapping[str, Any]
    """Everything else that determines the output, recorded in the marker."""
    formatter: PromptFormatter
    dev_size: int = 500
    seed: int = 0
    exclude_prompts: Path | None = None
    force: bool = False


@dataclass
class PrepResult:
    files: list[Path]
    card_file: Path
    counts: dict[str, int]
    drops: dict[str, int] = field(default_factory=dict)
    up_to_date: bool = False


def prepare(request: PrepRequest, build: Builder, log: Callable[[str], None] = print) -> PrepResult:
    """Build (via ``build``), clean, split, format and write a dataset, unless up to date."""
    marker = _marker_payload(request)
    existing = _read_marker(request.data_dir)
    card_file = request.card_dir / f"{request.name}.yaml"
    if not request.force and existing is not None and _matches(existing, marker, request):
        log(f"{request.name}: up to date in {request.data_dir} (use --force to rebuild).")
        return PrepResult(
            [request.data_dir / f for f in existing["files"]], card_file, existing["counts"],
            existing["drops"], up_to_date=True,
        )  # fmt: skip

    drops: Counter[str] = Counter()
    built = [ex for examples in build(drops) for ex in examples]
    exclude = load_exclusions(request.exclude_prompts) if request.exclude_prompts else set()
    by_kind = {
        kind: clean([ex for ex in built if ex.kind == kind], exclude, drops, what)
        for kind, what in KIND_NAMES.items()
    }
    split_of = split_groups(by_kind, request.dev_size, request.seed, log)
    every = [ex for examples in by_kind.values() for ex in examples]
    held_out = held_out_prompts(every, split_of)
    by_kind = {
        kind: drop_held_out_prompts(examples, held_out, split_of, drops, KIND_NAMES[kind])
        for kind, examples in by_kind.items()
    }
    outputs = {
        kind: rows_by_split(examples, split_of, request.formatter)
        for kind, examples in by_kind.items()
        if examples or kind != "unpaired"
    }
    check_no_dev_prompt_in_train(outputs)

    staging = request.data_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted run
    staged = write_rows(staging, outputs)
    swap_in(staging, request.data_dir)
    files = [request.data_dir / f.relative_to(staging) for f in staged]
    write_cards(card_file, request.name, request.data_dir, outputs)
    counts = {
        f"{kind} {split}": len(rows)
        for kind, splits in outputs.items()
        for split, rows in splits.items()
    }
    counts["groups"] = len({ex.group for examples in by_kind.values() for ex in examples})
    marker.update(
        counts=counts,
        drops=dict(sorted(drops.items())),
        files=[str(f.relative_to(request.data_dir)) for f in files],
    )
    atomic_write_text(
        request.data_dir / MARKER, json.dumps(marker, indent=2, ensure_ascii=False) + "\n"
    )
    log(summary(request.name, outputs, counts, drops, card_file))
    return PrepResult(files, card_file, counts, dict(drops))


def split_groups(
    by_kind: Mapping[str, list[Example]], dev_size: int, seed: int, log: Callable[[str], None]
) -> dict[str, str]:
    """Split the groups of pairs and instructions (:func:`assign_splits`), then those
    that only unpaired examples come from, in the same proportion: adding unpaired
    feedback to a dataset leaves the split of its pairs as it was."""
    primary = [*by_kind["preference"], *by_kind["instruction"]]
    split_of = assign_splits(primary, dev_size, seed, log)
    rest = [ex for ex in by_kind["unpaired"] if ex.group not in split_of]
    groups = {ex.group for ex in rest}
    if groups:
        share = sum(s == "dev" for s in split_of.values()) / max(1, len(split_of))
        extra = round(share * len(groups)) if split_of else dev_size
        split_of.update(assign_splits(rest, extra, seed, lambda _: None))
    return split_of


def assign_splits(
    examples: Sequence[Example], dev_size: int, seed: int, log: Callable[[str], None] = print
) -> dict[str, str]:
    """Split by group: after a seeded shuffle of the groups, the last ``dev_size``
    ones are ``dev``, the rest ``train``. Examples with a preset split keep it.

    A source with no more groups than ``dev_size`` (e.g. a small sample) keeps a
    tenth of them as dev instead, and says so.
    """
    split_of = {ex.group: ex.split for ex in examples if ex.split is not None}
    free = sorted({ex.group for ex in examples} - set(split_of))
    if free and dev_size >= len(free):
        log(
            f"Only {len(free)} groups to split: holding out {len(free) // 10} (a tenth) "
            f"as dev instead of {dev_size}."
        )
        dev_size = len(free) // 10
    random.Random(seed).shuffle(free)
    for i, group in enumerate(free):
        split_of[group] = "dev" if i >= len(free) - dev_size else "train"
    return split_of  # type: ignore[return-value]


def check_no_dev_prompt_in_train(outputs: Mapping[str, Mapping[str, list[dict[str, str]]]]) -> None:
    """Refuse to write data whose training rows repeat a dev prompt (any kind)."""
    held_out = {
        row["src"] for splits in outputs.values() for split, rows in splits.items()
        if split != "train" for row in rows
    }  # fmt: skip
    leaked = [
        row["id"] for splits in outputs.values() for row in splits.get("train", [])
        if row["src"] in held_out
    ]  # fmt: skip
    if leaked:
        raise RuntimeError(
            f"{len(leaked)} training row(s) repeat a dev prompt (ids {', '.join(leaked[:5])}); "
            "this is a bug in the data preparation, please report it."
        )


def _marker_payload(request: PrepRequest) -> dict[str, Any]:
    """The marker's identity fields, as they read back from JSON (tuples become lists)."""
    payload = {
        "format_version": PREP_FORMAT_VERSION,
        "name": request.name,
        "source": request.source,
        "options": {
            **request.options,
            "formatter": request.formatter.slug,
            "dev_size": request.dev_size,
            "seed": request.seed,
            "exclude_prompts": str(request.exclude_prompts) if request.exclude_prompts else None,
        },
        "card_file": str((request.card_dir / f"{request.name}.yaml").resolve()),
    }
    result: dict[str, Any] = json.loads(json.dumps(payload))
    return result


def _read_marker(data_dir: Path) -> dict[str, Any] | None:
    try:
        marker: dict[str, Any] = json.loads((data_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker


def _matches(existing: Mapping[str, Any], wanted: Mapping[str, Any], request: PrepRequest) -> bool:
    same = all(existing.get(k) == v for k, v in wanted.items())
    files = [request.data_dir / f for f in existing.get("files", [])]
    return same and all(f.is_file() for f in files) and Path(wanted["card_file"]).is_file()
