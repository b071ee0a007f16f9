"""OpenAssistant2 (``OpenAssistant/oasst2``): messages → preference pairs and SFT examples.

Sources, all normalised to one flat message form:

* the Hugging Face hub dataset, through ``datasets.load_dataset`` (the default);
* a local copy of its parquet files (a directory laid out like the dataset
  repository, ``data/train-*.parquet`` and ``data/validation-*.parquet``, or the
  files themselves);
* the project's exports, ``*.messages.jsonl(.gz)`` (one message per line) and
  ``*.trees.jsonl(.gz)`` (one nested tree per line).

Pairs (rank semantics of the dataset: ranks compare siblings, 0 is best):

* a *group* is a prompter message with its assistant replies;
* a reply is *usable* if it is not deleted, not flagged as spam
  (``review_result: false``) and, unless ``include_synthetic``, not synthetic;
* a group is kept if its tree's root message has a requested language and every
  message of its conversation so far is usable;
* among the usable replies with a rank, the rank-0 one is chosen and each other
  one is rejected (``rank0_vs_rest``), or only the worst one
  (``best_vs_worst``). If the rank-0 reply is not usable (deleted, spam) the
  group gives no pair — the remaining ranks say nothing about which is best.
  Unranked replies never enter a pair.
* the SFT example of a group is its rank-0 reply, or its only usable reply when
  none is ranked.

Every skipped group is counted by reason in the summary.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from fairseq2_preference.data_prep.arguments import add_output_arguments, prep_request
from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.writer import PrepResult, prepare
from fairseq2_preference.errors import PreferenceDataError
from fairseq2_preference.offline import from_hub

HUB_DATASET = "OpenAssistant/oasst2"

Pairing = Literal["rank0_vs_rest", "best_vs_worst"]


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


@dataclass(frozen=True)
class BuildOptions:
    langs: tuple[str, ...] | None = ("en",)
    """Languages of the tree root to keep; ``None`` keeps all."""
    pairing: Pairing = "rank0_vs_rest"
    first_turn_only: bool = False
    include_synthetic: bool = False


# -- loading -----------------------------------------------------------------------


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
        )
    except KeyError as ex:
        raise PreferenceDataError(
            f"{where}: an oasst2 message needs the field {ex.args[0]!r}."
        ) from None


# -- building ----------------------------------------------------------------------


def build_examples(
    messages: Iterable[Message], options: BuildOptions, drops: Counter[str]
) -> tuple[list[Example], list[Example]]:
    """(preference pairs, SFT examples) of ``messages``; skipped groups counted in ``drops``."""
    by_id = {m.message_id: m for m in messages}
    children: dict[str, list[Message]] = defaultdict(list)
    for m in by_id.values():
        if m.parent_id is not None:
            children[m.parent_id].append(m)

    pairs: list[Example] = []
    instructions: list[Example] = []
    for prompt in sorted(by_id.values(), key=lambda m: (m.tree_id, m.message_id)):
        replies = [r for r in children.get(prompt.message_id, []) if r.role == "assistant"]
        if prompt.role != "prompter" or not replies:
            continue
        thread = _thread(prompt, by_id)
        reason = _skip_reason(prompt, thread, options)
        if reason is not None:
            drops[f"group skipped: {reason}"] += 1
            continue
        turns = tuple(("user" if m.role == "prompter" else "assistant", m.text) for m in thread)
        usable = [r for r in replies if _usable(r, options)]
        ranked = sorted((r for r in usable if r.rank is not None), key=lambda r: r.rank or 0)

        best = ranked[0] if ranked and ranked[0].rank == 0 else None
        sft_reply = (
            best if best is not None else (usable[0] if len(usable) == 1 and not ranked else None)
        )
        if sft_reply is not None:
            instructions.append(
                Example(
                    f"{prompt.message_id}:{sft_reply.message_id}",
                    prompt.tree_id,
                    turns,
                    sft_reply.text,
                )
            )

        if len(ranked) < 2:
            drops["no pair: fewer than two usable ranked replies"] += 1
            continue
        if best is None:
            drops["no pair: the rank-0 reply is deleted, flagged or synthetic"] += 1
            continue
        losers = ranked[1:] if options.pairing == "rank0_vs_rest" else ranked[-1:]
        for loser in losers:
            pair_id = f"{prompt.message_id}:{best.message_id}:{loser.message_id}"
            pairs.append(Example(pair_id, prompt.tree_id, turns, best.text, loser.text))
    return pairs, instructions


def _thread(prompt: Message, by_id: Mapping[str, Message]) -> list[Message]:
    """The conversation from the root to ``prompt``."""
    thread = [prompt]
    while thread[-1].parent_id is not None:
        parent = by_id.get(thread[-1].parent_id)
        if parent is None:  # an incomplete export; treat the oldest known message as root
            break
        thread.append(parent)
    return thread[::-1]


def _usable(m: Message, options: BuildOptions) -> bool:
    return (
        not m.deleted
        and m.review_result is not False
        and (options.include_synthetic or not m.synthetic)
    )


def _skip_reason(prompt: Message, thread: list[Message], options: BuildOptions) -> str | None:
    if options.first_turn_only and prompt.parent_id is not None:
        return "not a first turn (first_turn_only)"
    if options.langs is not None and thread[0].lang not in options.langs:
        return "language not selected"
    if not all(_usable(m, options) for m in thread):
        return "deleted, flagged or synthetic message in the conversation"
    return None


# -- command line ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> PrepResult:
    """``datasets/openassistant2_llama3_data_prep.py``: see ``--help``."""
    parser = argparse.ArgumentParser(
        description="Build OpenAssistant2 preference pairs and SFT examples, with fairseq2 "
        "asset cards naming them (<name>_preference_train, ..._dev, <name>_instruction_train, ...)."
    )
    parser.add_argument(
        "--source",
        help=f"local copy: a directory like the dataset repository, parquet files, or "
        f"*.messages.jsonl(.gz) / *.trees.jsonl(.gz) exports (default: the hub's {HUB_DATASET})",
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
    args = parser.parse_args(argv)

    options = BuildOptions(
        langs=None if args.lang == "all" else tuple(args.lang.split(",")),
        pairing=args.pairing,
        first_turn_only=args.first_turn_only,
        include_synthetic=args.include_synthetic,
    )
    source = str(Path(args.source).resolve()) if args.source else HUB_DATASET
    request = prep_request(args, "openassistant2", source, asdict(options))
    return prepare(
        request, lambda drops: build_examples(load_messages(args.source), options, drops)
    )
