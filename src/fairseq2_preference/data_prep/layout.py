"""What a prepared dataset looks like on disk, and how a build replaces the last one.

Layout (DESIGN.md, Data)::

    <data_dir>/preference/<split>/data.chunk.0000.jsonl   {id, src, tgt_chosen, tgt_rejected}
    <data_dir>/instruction/<split>/data.chunk.0000.jsonl  {id, src, tgt}
    <data_dir>/unpaired/<split>/data.chunk.0000.jsonl     {id, src, tgt, label} (where built)
    <data_dir>/prep.json                                  what was written, from what, how
    <card_dir>/<name>.yaml                                cards <name>_preference[_<split>],
                                                          <name>_instruction[_<split>],
                                                          <name>_unpaired[_<split>]

:mod:`.writer` decides what goes in; this module writes it.
"""

from __future__ import annotations

import shutil
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.formatting import PromptFormatter
from fairseq2_preference.io import atomic_write_jsonl, atomic_write_text

MARKER = "prep.json"

STAGING = ".building"
"""Where a rebuild is written before it is swapped in (see :func:`swap_in`)."""

REPLACED = ".replaced"

CHUNK_SIZE = 50_000

FAMILIES = {
    "preference": "generic_preference",
    "instruction": "generic_instruction",
    "unpaired": "generic_unpaired",
}


def rows_by_split(
    examples: Iterable[Example], split_of: Mapping[str, str], formatter: PromptFormatter
) -> dict[str, list[dict[str, Any]]]:
    by_split: dict[str, list[dict[str, Any]]] = {}
    for ex in examples:
        row: dict[str, Any] = {"id": ex.id, "src": formatter(ex.turns)}
        if ex.rejected is None:
            row["tgt"] = ex.chosen.strip()
            if ex.label is not None:
                row["label"] = ex.label
        else:
            row["tgt_chosen"] = ex.chosen.strip()
            row["tgt_rejected"] = ex.rejected.strip()
        by_split.setdefault(split_of[ex.group], []).append(row)
    return by_split


def write_rows(
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
