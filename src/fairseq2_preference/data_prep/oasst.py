"""OpenAssistant2 (``OpenAssistant/oasst2``): messages → preference pairs and SFT examples.

Messages come from the hub, parquet files or the project's exports
(:mod:`.oasst_messages`).

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
  none is ranked;
* unpaired feedback (for KTO): among two or more usable ranked replies, the
  rank-0 one is a thumbs up and the last-ranked a thumbs down (the ones between
  give no example, nor does the best usable one when the rank-0 reply is not
  usable, as for pairs); any other usable reply is rated by its annotators' mean
  ``quality`` label: at least ``good_quality`` (0.75) up, at most
  ``bad_quality`` (0.25) down, in between no example. The same completion rated
  both ways for one prompt gives no example. Written to ``unpaired/`` with
  ``<name>_unpaired`` cards.

Every skipped group is counted by reason in the summary.
"""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from fairseq2_preference.data_prep.arguments import prep_request
from fairseq2_preference.data_prep.commands import oasst_parser
from fairseq2_preference.data_prep.examples import Example
from fairseq2_preference.data_prep.oasst_messages import HUB_DATASET, Message, load_messages
from fairseq2_preference.data_prep.writer import PrepResult, prepare

Pairing = Literal["rank0_vs_rest", "best_vs_worst"]


@dataclass(frozen=True)
class BuildOptions:
    langs: tuple[str, ...] | None = ("en",)
    """Languages of the tree root to keep; ``None`` keeps all."""
    pairing: Pairing = "rank0_vs_rest"
    first_turn_only: bool = False
    include_synthetic: bool = False
    good_quality: float = 0.75
    """Unpaired feedback: a reply rated at least this (``quality``, 0 to 1) is desirable..."""
    bad_quality: float = 0.25
    """... and at most this undesirable (between: no example)."""


# -- building ----------------------------------------------------------------------


def build_examples(
    messages: Iterable[Message], options: BuildOptions, drops: Counter[str]
) -> tuple[list[Example], list[Example], list[Example]]:
    """(preference pairs, SFT examples, unpaired feedback) of ``messages``; skipped
    groups and replies counted in ``drops``."""
    by_id = {m.message_id: m for m in messages}
    children: dict[str, list[Message]] = defaultdict(list)
    for m in by_id.values():
        if m.parent_id is not None:
            children[m.parent_id].append(m)

    pairs: list[Example] = []
    instructions: list[Example] = []
    unpaired: list[Example] = []
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

        for reply in usable:
            label = _feedback(reply, ranked, options)
            if label is None:
                drops["unpaired: neither best, worst nor clearly rated"] += 1
            else:
                reply_id = f"{prompt.message_id}:{reply.message_id}"
                unpaired.append(Example(reply_id, prompt.tree_id, turns, reply.text, label=label))

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
    return pairs, instructions, unpaired


def _feedback(reply: Message, ranked: list[Message], options: BuildOptions) -> bool | None:
    """A reply's thumbs up or down: best or worst of two or more ranked siblings, else
    its ``quality`` rating when clear (see the module docstring); ``None`` otherwise."""
    if len(ranked) >= 2 and reply.rank is not None:  # the ranking decides
        if reply is ranked[0] and reply.rank == 0:
            return True
        return False if reply is ranked[-1] else None
    if reply.quality is None:
        return None
    if reply.quality >= options.good_quality:
        return True
    if reply.quality <= options.bad_quality:
        return False
    return None


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
    return prepare_from(oasst_parser().parse_args(argv))


def prepare_from(args: argparse.Namespace) -> PrepResult:
    """Prepare the data the parsed command line asks for."""
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
