"""From examples to files: split, format, write jsonl chunks and asset cards, summarise.

Layout (DESIGN.md, Data)::

    <data_dir>/preference/<split>/data.chunk.0000.jsonl   {id, src, tgt_chosen, tgt_rejected}
    <data_dir>/instruction/<split>/data.chunk.0000.jsonl  {id, src, tgt}
    <data_dir>/prep.json                                  what was written, from what, how
    <card_dir>/<name>.yaml                                cards <name>_preference[_<split>],
                                                          <name>_instruction[_<split>]

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
import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.formatting import PromptFormatter
from fairseq2_preference.data_prep.hygiene import (
    clean,
    drop_held_out_prompts,
    held_out_prompts,
    load_exclusions,
)
from fairseq2_preference.io import atomic_write_jsonl, atomic_write_text

PREP_FORMAT_VERSION = 2
"""Bump when the written data would differ for the same inputs; old outputs are then rebuilt."""

MARKER = "prep.json"

STAGING = ".building"
"""Where a rebuild is written before it is swapped in (see :func:`swap_in`)."""

REPLACED = ".replaced"

CHUNK_SIZE = 50_000

FAMILIES = {"preference": "generic_preference", "instruction": "generic_instruction"}

Builder = Callable[[Counter[str]], tuple[list[Example], list[Example]]]


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
    pairs, instructions = build(drops)
    exclude = load_exclusions(request.exclude_prompts) if request.exclude_prompts else set()
    pairs = clean(pairs, exclude, drops, "pairs")
    instructions = clean(instructions, exclude, drops, "instruction examples")

    split_of = assign_splits([*pairs, *instructions], request.dev_size, request.seed, log)
    held_out = held_out_prompts([*pairs, *instructions], split_of)
    pairs = drop_held_out_prompts(pairs, held_out, split_of, drops, "pairs")
    instructions = drop_held_out_prompts(
        instructions, held_out, split_of, drops, "instruction examples"
    )
    outputs = {
        "preference": _rows(pairs, split_of, request.formatter),
        "instruction": _rows(instructions, split_of, request.formatter),
    }
    check_no_dev_prompt_in_train(outputs)

    staging = request.data_dir / STAGING
    shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted run
    staged = _write_rows(staging, outputs)
    swap_in(staging, request.data_dir)
    files = [request.data_dir / f.relative_to(staging) for f in staged]
    write_cards(card_file, request.name, request.data_dir, outputs)
    counts = {
        f"{kind} {split}": len(rows)
        for kind, splits in outputs.items()
        for split, rows in splits.items()
    }
    counts["groups"] = len({ex.group for ex in [*pairs, *instructions]})
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


def _rows(
    examples: Iterable[Example], split_of: Mapping[str, str], formatter: PromptFormatter
) -> dict[str, list[dict[str, str]]]:
    by_split: dict[str, list[dict[str, str]]] = {}
    for ex in examples:
        row = {"id": ex.id, "src": formatter(ex.turns)}
        if ex.rejected is None:
            row["tgt"] = ex.chosen.strip()
        else:
            row["tgt_chosen"] = ex.chosen.strip()
            row["tgt_rejected"] = ex.rejected.strip()
        by_split.setdefault(split_of[ex.group], []).append(row)
    return by_split


def _write_rows(
    data_dir: Path, outputs: Mapping[str, Mapping[str, list[dict[str, str]]]]
) -> list[Path]:
    written: list[Path] = []
    for kind, splits in outputs.items():
        for split, rows in sorted(splits.items()):
            for n, start in enumerate(range(0, len(rows), CHUNK_SIZE)):
                file = data_dir / kind / split / f"data.chunk.{n:04d}.jsonl"
                atomic_write_jsonl(file, rows[start : start + CHUNK_SIZE])
                written.append(file)
    return written


def swap_in(staging: Path, data_dir: Path) -> None:
    """Replace the data of ``data_dir`` by the complete build in ``staging``.

    A rebuild is all-or-nothing: the new files are written beside the old ones
    (which stay usable, with their marker, if the build is interrupted), then
    the marker is removed and each kind's directory renamed into place; the
    new marker is written last, after the cards. Interrupted during the swap,
    ``data_dir`` has no marker and the next run rebuilds; it is never "up to
    date" with a mix of two builds.
    """
    (data_dir / MARKER).unlink(missing_ok=True)
    replaced = data_dir / REPLACED
    shutil.rmtree(replaced, ignore_errors=True)
    replaced.mkdir(parents=True)
    for kind in FAMILIES:
        if (data_dir / kind).exists():
            (data_dir / kind).rename(replaced / kind)
        if (staging / kind).exists():
            (staging / kind).rename(data_dir / kind)
    shutil.rmtree(replaced)
    shutil.rmtree(staging)


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


def write_cards(
    card_file: Path, name: str, data_dir: Path, outputs: Mapping[str, Mapping[str, object]]
) -> None:
    """One card per dataset kind (all splits) and one per split, in one file."""
    cards: list[dict[str, str]] = []
    for kind, splits in outputs.items():
        if not splits:
            continue
        kind_dir = (data_dir / kind).resolve()
        family = FAMILIES[kind]
        cards.append({"name": f"{name}_{kind}", "dataset_family": family, "data": str(kind_dir)})
        for split in sorted(splits):
            cards.append(
                {
                    "name": f"{name}_{kind}_{split}",
                    "dataset_family": family,
                    "data": str(kind_dir / split),
                }
            )
    header = f"# fairseq2 asset cards written by fairseq2-preference's data preparation ({name}).\n"
    atomic_write_text(card_file, header + yaml.safe_dump_all(cards, sort_keys=False))


def summary(
    name: str,
    outputs: Mapping[str, Mapping[str, list[dict[str, str]]]],
    counts: Mapping[str, int],
    drops: Mapping[str, int],
    card_file: Path,
) -> str:
    lines = [f"{name}: {counts['groups']} conversation groups"]
    for kind, splits in outputs.items():
        parts = ", ".join(f"{split} {len(rows)}" for split, rows in sorted(splits.items()))
        lines.append(f"  {kind}: {parts or 'none'}")
        rows = [r for split_rows in splits.values() for r in split_rows]
        for key in ("src", "tgt_chosen", "tgt_rejected", "tgt"):
            lengths = [len(r[key]) for r in rows if key in r]
            if lengths:
                lines.append(
                    f"    {key} characters: mean {statistics.fmean(lengths):.0f}, "
                    f"median {statistics.median(lengths):.0f}, max {max(lengths)}"
                )
    if drops:
        lines.append("  dropped:")
        lines.extend(f"    {reason}: {n}" for reason, n in sorted(drops.items()))
    lines.append(f"  cards: {card_file}")
    return "\n".join(lines)


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
