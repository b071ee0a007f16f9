"""The fairseq2 extension of this package: what every fairseq2 process gets.

Declared under the entry-point group ``fairseq2.extension`` (``pyproject.toml``),
so fairseq2 runs :func:`register` whenever it initialises, in our recipes and
in fairseq2's own tools alike (``python -m fairseq2.assets list``).
"""

from __future__ import annotations

import os
from pathlib import Path

from fairseq2.composition import register_file_assets, register_package_assets
from fairseq2.runtime.dependency import DependencyContainer

TINY_DIR_VARIABLE = "FAIRSEQ2_PREFERENCE_TINY_DIR"


def default_tiny_dir() -> Path:
    """Where ``python -m fairseq2_preference.tiny`` writes the demo assets by default:
    ``$FAIRSEQ2_PREFERENCE_TINY_DIR``, else ``$XDG_CACHE_HOME/fairseq2_preference/tiny``
    (``~/.cache/...``). Its cards are read by every fairseq2 process, so the example
    configs name ``tiny_llama`` without a path and run from wherever they are copied."""
    if value := os.environ.get(TINY_DIR_VARIABLE):
        return Path(value).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "fairseq2_preference" / "tiny"


def register(container: DependencyContainer) -> None:
    """Add the packaged asset cards (hub checkpoints for the stock Llama 3.x names)
    and, once built, the tiny demo cards."""
    register_package_assets(container, "fairseq2_preference.cards")
    tiny_cards = default_tiny_dir() / "cards"
    if tiny_cards.is_dir():
        register_file_assets(container, tiny_cards)
