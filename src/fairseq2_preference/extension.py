"""The fairseq2 extension of this package: what every fairseq2 process gets.

Declared under the entry-point group ``fairseq2.extension`` (``pyproject.toml``),
so fairseq2 runs :func:`register` whenever it initialises, in our recipes and
in fairseq2's own tools alike (``python -m fairseq2.assets list``).
"""

from __future__ import annotations

from fairseq2.composition import register_package_assets
from fairseq2.runtime.dependency import DependencyContainer


def register(container: DependencyContainer) -> None:
    """Add the packaged asset cards: hub checkpoints for the stock Llama 3.x names."""
    register_package_assets(container, "fairseq2_preference.models.cards")
