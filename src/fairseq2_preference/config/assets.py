"""``common.assets.user_paths``: a user's card directories that add to the configured ones.

fairseq2 reads extra cards from ``common.assets.extra_paths``, but a command
line override (``--config common.assets.extra_paths=[mine]``) *replaces* the
list, so the cards a config file pointed to (e.g. the model's) vanish. This
option is a second list, read in addition to ``extra_paths``: a config keeps
its own ``extra_paths`` and a user adds theirs with
``--config common.assets.user_paths=[~/cards]``. Unlike ``extra_paths``, a
path that does not exist is an error, not a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import final

from fairseq2.assets import AssetMetadataProvider, AssetMetadataSource, FileAssetMetadataLoader
from fairseq2.recipe.config import AssetsConfig, CommonSection
from fairseq2.runtime.dependency import DependencyContainer
from typing_extensions import override

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.tiny.cards import TINY_DIR_VARIABLE, default_tiny_cards, default_tiny_dir


@dataclass(kw_only=True)
class PreferenceAssetsConfig(AssetsConfig):
    user_paths: Sequence[Path] = field(default_factory=list)
    """Card files or directories read in addition to ``extra_paths``."""


@dataclass(kw_only=True)
class PreferenceCommonSection(CommonSection):
    assets: PreferenceAssetsConfig = field(default_factory=PreferenceAssetsConfig)

    deterministic: bool = False
    """Bitwise-repeatable runs on CUDA: PyTorch's deterministic kernels
    (``torch.use_deterministic_algorithms``, warning where an operator has none),
    and the packed attention's padded-block route instead of the flash kernel,
    whose backward accumulates with atomics. Slower; also set
    ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` in the environment for cuBLAS."""


@final
class UserAssetMetadataSource(AssetMetadataSource):
    """The cards under ``common.assets.user_paths``, and the default tiny demo cards
    (:mod:`fairseq2_preference.tiny.cards`) unless a configured path defines the same names."""

    def __init__(self, section: CommonSection, metadata_loader: FileAssetMetadataLoader) -> None:
        self._paths = [Path(p).expanduser() for p in getattr(section.assets, "user_paths", ())]
        self._configured = [*self._paths, *map(Path, section.assets.extra_paths)]
        self._metadata_loader = metadata_loader

    @override
    def load(self) -> Iterator[AssetMetadataProvider]:
        for path in self._paths:
            if not path.exists():
                raise PreferenceConfigError(
                    f"The card directory {path} (in `common.assets.user_paths`) does not exist. "
                    "Point it to a directory of asset-card .yaml files, or build the tiny demo "
                    "cards with `python -m fairseq2_preference.tiny DIR` and use DIR/cards."
                )
            yield self._metadata_loader.load(path)
        tiny = default_tiny_cards(self._configured)
        if tiny is not None:
            yield self._metadata_loader.load(tiny)


UNKNOWN_CARD = re.compile(r"^(\S+) is not a known (model|dataset|tokenizer)\b")


class _UnknownCardHint(logging.Filter):
    """Adds to fairseq2's "X is not a known model" how to make the card known."""

    def filter(self, record: logging.LogRecord) -> bool:
        match = UNKNOWN_CARD.match(record.getMessage())
        if match is None or record.levelno < logging.ERROR:
            return True
        if match.group(1).startswith("tiny_"):
            hint = (
                "The tiny demo cards are not built: run `python -m fairseq2_preference.tiny` "
                f"once (it writes {default_tiny_dir()}, ${TINY_DIR_VARIABLE} moves it), "
                "which every training command then reads."
            )
        else:
            hint = (
                "Add the directory of its card with `--config common.assets.user_paths=[DIR]` "
                "(a missing `common.assets.extra_paths` directory is only warned about above)."
            )
        record.msg, record.args = f"{record.getMessage()} {hint}", ()
        return True


_HINT = _UnknownCardHint()


def install_unknown_card_hint() -> None:
    """Make fairseq2's unknown-card errors say how to add the card (idempotent)."""
    logger = logging.getLogger("fairseq2")
    if _HINT not in logger.filters:
        logger.addFilter(_HINT)


def register_user_assets(container: DependencyContainer) -> None:
    """Make a recipe read ``common.assets.user_paths``."""
    container.collection.register_type(AssetMetadataSource, UserAssetMetadataSource)  # type: ignore[type-abstract]
