"""Hugging Face preference datasets → our jsonl and cards.

Accepted row shapes (field names configurable), from the hub or local files:

* **strings**: ``prompt``, ``chosen``, ``rejected`` are texts (TRL's standard format);
* **conversational**: ``prompt`` is a message list ending with a user turn and
  ``chosen`` / ``rejected`` are the assistant turn(s) — or whole conversations
  that repeat the prompt first, as in ``HuggingFaceH4/ultrafeedback_binarized``;
* **no prompt column**: ``chosen`` / ``rejected`` are whole conversations sharing
  their prompt, as message lists or as ``\\n\\nHuman: ... \\n\\nAssistant: ...``
  transcripts (``Anthropic/hh-rlhf``); the shared prefix is the prompt.

In every case the two responses must each be a single, final assistant turn;
other rows are dropped and counted. Messages are ``{"role", "content"}`` with
roles ``user``/``human``, ``assistant``/``gpt`` and ``system``.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from fairseq2_preference.data_prep.arguments import prep_request
from fairseq2_preference.data_prep.commands import hf_preference_parser
from fairseq2_preference.data_prep.examples import Example, Turn, check_turns
from fairseq2_preference.data_prep.hygiene import normalize_prompt
from fairseq2_preference.data_prep.writer import PrepResult, prepare
from fairseq2_preference.offline import from_hub

ROLES = {
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant",
    "system": "system",
}  # fmt: skip

HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


@dataclass(frozen=True)
class Fields:
    prompt: str = "prompt"
    chosen: str = "chosen"
    rejected: str = "rejected"


class RowError(ValueError):
    """A row that does not have the shape of a preference pair (dropped, counted)."""


def to_example(row: Mapping[str, Any], row_id: str, fields: Fields, split: str | None) -> Example:
    """One dataset row as an :class:`Example`; raises :class:`RowError` for unusable rows."""
    prompt = row.get(fields.prompt)
    for name in (fields.chosen, fields.rejected):
        if row.get(name) is None:  # loaders fill a column missing from a row with None
            raise RowError(f"missing field {name!r}")
    chosen, rejected = _conversation(row[fields.chosen]), _conversation(row[fields.rejected])
    shared = _common_prefix(chosen, rejected)
    if prompt is not None:
        given = [("user", prompt)] if isinstance(prompt, str) else _messages(prompt)
        # Whole conversations repeat the prompt (and any earlier turns) before the
        # reply; bare replies share nothing, and the prompt comes from its column.
        if not (shared and shared[-1] == given[-1]):
            shared = given
    chosen_reply = _single_reply(_without_prefix(chosen, shared))
    rejected_reply = _single_reply(_without_prefix(rejected, shared))
    try:
        turns = check_turns(shared, row_id)
    except ValueError as ex:
        raise RowError(str(ex)) from None
    group = normalize_prompt(turns[0][1] if turns[0][0] != "system" else turns[-1][1])
    return Example(row_id, group, turns, chosen_reply, rejected_reply, split)


def _conversation(value: Any) -> list[Turn]:
    """A response or conversation: a bare string is one assistant turn, unless it is
    an HH-RLHF transcript."""
    if isinstance(value, str):
        return _hh_transcript(value) if HH_TURN.search(value) else [("assistant", value)]
    return _messages(value)


def _messages(value: Any) -> list[Turn]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RowError(f"expected a message list, found {type(value).__name__}")
    turns = []
    for message in value:
        if not isinstance(message, Mapping) or "content" not in message:
            raise RowError("messages need 'role' and 'content'")
        role = ROLES.get(str(message.get("role", "")).lower())
        if role is None:
            raise RowError(f"unknown role {message.get('role')!r}")
        turns.append((role, str(message["content"])))
    return turns


def _hh_transcript(text: str) -> list[Turn]:
    parts = HH_TURN.split(text)
    if parts[0].strip():
        raise RowError("text before the first 'Human:' turn")
    return [
        (ROLES[speaker.lower()], content)
        for speaker, content in zip(parts[1::2], parts[2::2], strict=True)
    ]


def _common_prefix(a: list[Turn], b: list[Turn]) -> list[Turn]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _without_prefix(turns: list[Turn], prefix: list[Turn]) -> list[Turn]:
    return turns[len(prefix) :] if turns[: len(prefix)] == prefix else turns


def _single_reply(turns: list[Turn]) -> str:
    if len(turns) != 1 or turns[0][0] != "assistant":
        raise RowError("a response is not a single, final assistant turn")
    return turns[0][1]


# -- loading -----------------------------------------------------------------------


def load_hf_dataset(source: str, config: str | None = None, split: str | None = None) -> Any:
    """``split`` (or, if ``None``, a ``DatasetDict`` of every split) of a hub dataset,
    a local data file (``.jsonl``/``.json``/``.parquet``: one split, ``train``), or a
    local dataset directory (data files, split sub-directories or a dataset script)."""
    import datasets

    path = Path(source).expanduser()
    if path.is_file():
        builder = "parquet" if path.suffix == ".parquet" else "json"
        split = None if split is None else "train"
        return datasets.load_dataset(builder, data_files=str(path), split=split)  # type: ignore[attr-defined]
    if path.is_dir():
        return datasets.load_dataset(str(path), config, split=split)  # type: ignore[attr-defined]
    with from_hub(
        f"Dataset {source!r} (not a local file or directory)",
        "Point to local .jsonl/.parquet files or a dataset directory instead.",
    ):
        return datasets.load_dataset(source, config, split=split)  # type: ignore[attr-defined]


def load_rows(source: str, split: str, config: str | None = None) -> Iterator[Mapping[str, Any]]:
    """Rows of ``split`` from a hub dataset, a local data file, or a local dataset directory."""
    yield from load_hf_dataset(source, config, split)


def build_examples(
    source: str,
    splits: Mapping[str, str | None],
    fields: Fields,
    drops: Counter[str],
    config: str | None = None,
) -> tuple[list[Example], list[Example]]:
    """Pairs, and SFT examples on the chosen responses, from ``splits`` (source split →
    our split, or ``None`` to let the writer hold out a dev set by prompt)."""
    pairs: list[Example] = []
    for source_split, our_split in splits.items():
        for i, row in enumerate(load_rows(source, source_split, config)):
            try:
                pairs.append(to_example(row, f"{source_split}:{i}", fields, our_split))
            except RowError as ex:
                drops[f"rows: {ex}"] += 1
    sft = [Example(ex.id, ex.group, ex.turns, ex.chosen, None, ex.split) for ex in pairs]
    return pairs, sft


# -- command line ------------------------------------------------------------------


def main(argv: list[str] | None = None) -> PrepResult:
    """``datasets/hf_preference_data_prep.py``: see ``--help``."""
    return prepare_from(hf_preference_parser().parse_args(argv))


def prepare_from(args: argparse.Namespace) -> PrepResult:
    """Prepare the data the parsed command line asks for."""
    fields = Fields(args.prompt_field, args.chosen_field, args.rejected_field)
    splits: dict[str, str | None] = {args.train_split: "train" if args.dev_split else None}
    if args.dev_split:
        splits[args.dev_split] = "dev"
    stem = re.sub(r"[^a-z0-9]+", "_", Path(args.source).stem.lower()).strip("_")
    options = {"config": args.config, "splits": splits, "fields": asdict(fields)}
    request = prep_request(args, stem, args.source, options)
    return prepare(
        request, lambda drops: build_examples(args.source, splits, fields, drops, args.config)
    )
