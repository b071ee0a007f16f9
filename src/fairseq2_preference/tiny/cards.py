"""Where the tiny demo assets live by default, and when a run reads their cards.

``python -m fairseq2_preference.tiny`` writes to :func:`default_tiny_dir` unless
given a directory, and every recipe run reads the cards there, so the example
configs name ``tiny_llama`` without any path and run from wherever they are
copied. fairseq2 refuses two cards of one name, so the default cards are left
out when a configured card path (``common.assets.extra_paths`` or
``user_paths``, e.g. ``quick-start.sh``'s own build) already defines them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import yaml

TINY_DIR_VARIABLE: Final = "FAIRSEQ2_PREFERENCE_TINY_DIR"


def default_tiny_dir() -> Path:
    """``$FAIRSEQ2_PREFERENCE_TINY_DIR``, else ``$XDG_CACHE_HOME/fairseq2_preference/tiny``
    (``~/.cache/...``)."""
    if value := os.environ.get(TINY_DIR_VARIABLE):
        return Path(value).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "fairseq2_preference" / "tiny"


def card_names(path: Path) -> set[str]:
    """The names of the cards in a card file or directory."""
    files = [path] if path.is_file() else sorted(path.rglob("*.yaml"))
    names = set()
    for file in files:
        for card in yaml.safe_load_all(file.read_text(encoding="utf-8")):
            if isinstance(card, dict) and "name" in card:
                names.add(str(card["name"]))
    return names


def default_tiny_cards(configured: Iterable[Path]) -> Path | None:
    """The default tiny card directory, if built and not shadowed by ``configured`` paths."""
    cards = default_tiny_dir() / "cards"
    if not cards.is_dir():
        return None
    taken = set().union(*(card_names(p) for p in map(Path, configured) if p.exists()))
    return None if card_names(cards) & taken else cards
