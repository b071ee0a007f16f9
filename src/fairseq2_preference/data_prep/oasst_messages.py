"""OpenAssistant2 messages from any of its sources, normalised to one flat form.

* the Hugging Face hub dataset, through ``datasets.load_dataset`` (the default);
* a local copy of its parquet files (a directory laid out like the dataset
  repository, ``data/train-*.parquet`` and ``data/validation-*.parquet``, or the
  files themselves);
* the project's exports, ``*.messages.jsonl(.gz)`` (one message per line) and
  ``*.trees.jsonl(.gz)`` (one nested tree per line).

A malformed line or a truncated download is an error naming the file and line.
:mod:`.oasst` builds pairs and SFT examples from the messages.
"""

from __future__ import annotations

import gzip
import json
import math
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fairseq2_preference.data_prep.commands import OASST_HUB
from fairseq2_preference.errors import PreferenceDataError
from fairseq2_preference.offline import from_hub

HUB_DATASET = OASST_HUB


@dataclass(frozen=True)
class Message:
    message_id: str
    parent_id: str | None
    tree_id: str
    role: str
    text: str
    lang: str
    rank: int | None
    deleted: bool
    review_result: bool | None
    synthetic: bool
    quality: float | None = None
    """The annotators' mean ``quality`` label (0 to 1), if any rated it."""


def load_messages(source: str | Path | None = None) -> list[Message]:
    """All messages of ``source`` (``None``: the hub dataset), normalised."""
    if source is None:
        return _from_hf_rows(_hub_rows())
    path = Path(source).expanduser()
    if path.is_dir():
        parquet = sorted(path.glob("data/*.parquet")) or sorted(path.glob("*.parquet"))
        if parquet:
            return _from_hf_rows(_parquet_rows(parquet))
        exports = sorted(path.glob("*.messages.jsonl*")) or sorted(path.glob("*.trees.jsonl*"))
        if not exports:
            raise FileNotFoundError(
                f"{path} holds no oasst2 data: expected data/*.parquet, *.parquet, "
                "*.messages.jsonl(.gz) or *.trees.jsonl(.gz)."
            )
        return [m for file in exports for m in load_messages(file)]
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist.")
    if path.suffix == ".parquet":
        return _from_hf_rows(_parquet_rows([path]))
    if ".trees.jsonl" in path.name:
        return [_normalise(m, f"{path}, line {n}") for n, m in _trees(path)]
    if ".jsonl" in path.name:
        return [_normalise(m, f"{path}, line {n}") for n, m in _json_lines(path)]
    raise ValueError(f"{path}: unknown format (expected .parquet, .jsonl or .jsonl.gz).")


def _hub_rows() -> Iterator[tuple[str, Mapping[str, Any]]]:
    import datasets

    with from_hub(
        f"The {HUB_DATASET} dataset",
        "Download its files (data/*.parquet, or the 2023-11-05 *.messages.jsonl.gz export) "
        "where the hub is reachable and pass them with --source DIR_OR_FILE.",
    ):
        splits = datasets.load_dataset(HUB_DATASET)  # type: ignore[attr-defined]
    for split, rows in splits.items():
        for i, row in enumerate(rows):
            yield f"{HUB_DATASET} [{split}] row {i}", row


def _parquet_rows(files: list[Path]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    import datasets

    data_files = [str(f) for f in files]
    rows = datasets.load_dataset("parquet", data_files=data_files, split="train")  # type: ignore[attr-defined]
    for i, row in enumerate(rows):
        yield f"{', '.join(map(str, files))} row {i}", row


def _from_hf_rows(rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[Message]:
    return [_normalise(row, where) for where, row in rows]


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as ex:
                    raise PreferenceDataError(
                        f"{path}, line {number}: not valid JSON ({ex.msg}); a truncated "
                        "download ends like this: download the file again."
                    ) from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as ex:
        raise PreferenceDataError(
            f"{path}: the compressed file is truncated or corrupt after line {number} ({ex}). "
            "Download it again (compare its size with the source's), then rerun."
        ) from None
    except UnicodeDecodeError as ex:
        raise PreferenceDataError(
            f"{path}, line {number + 1}: not UTF-8 text ({ex.reason}). Download the file again."
        ) from None


def _trees(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Flatten each tree line into its messages (tree fields copied onto each)."""
    for number, tree in _json_lines(path):
        stack: list[tuple[Any, str | None]] = [(tree.get("prompt"), None)]
        while stack:
            node, parent_id = stack.pop()
            if node is None:
                continue
            message = {k: v for k, v in node.items() if k != "replies"}
            message.setdefault("parent_id", parent_id)
            message["message_tree_id"] = tree.get("message_tree_id")
            yield number, message
            stack.extend((reply, node.get("message_id")) for reply in node.get("replies") or [])


def _label(labels: Any, name: str) -> float | None:
    """A label's value: exports nest ``{name: {value, count}}``, the hub dataset has
    lists ``{name: [...], value: [...], count: [...]}``."""
    if not isinstance(labels, Mapping):
        return None
    if isinstance(labels.get("name"), list):
        names, values, counts = labels["name"], labels.get("value") or [], labels.get("count")
        entries = {
            n: {"value": v, "count": c}
            for n, v, c in zip(names, values, counts or [1] * len(names), strict=False)
        }
    else:
        entries = dict(labels)
    entry = entries.get(name)
    if not isinstance(entry, Mapping) or not entry.get("count") or entry.get("value") is None:
        return None
    return float(entry["value"])


def _normalise(raw: Mapping[str, Any], where: str) -> Message:
    try:
        rank = raw.get("rank")
        if isinstance(rank, float):
            rank = None if math.isnan(rank) else int(rank)
        return Message(
            message_id=str(raw["message_id"]),
            parent_id=raw.get("parent_id"),
            tree_id=str(raw.get("message_tree_id") or raw["message_id"]),
            role=str(raw["role"]),
            text=str(raw["text"]),
            lang=str(raw.get("lang") or ""),
            rank=rank,
            deleted=bool(raw.get("deleted", False)),
            review_result=raw.get("review_result"),
            synthetic=bool(raw.get("synthetic", False)),
            quality=_label(raw.get("labels"), "quality"),
        )
    except KeyError as ex:
        raise PreferenceDataError(
            f"{where}: an oasst2 message needs the field {ex.args[0]!r}."
        ) from None
