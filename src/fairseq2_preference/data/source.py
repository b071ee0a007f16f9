"""Where a jsonl dataset's rows live: a file, a directory of chunks, or split sub-directories.

A dataset path is one of

* a ``.jsonl`` file — a single, unnamed split;
* a directory of ``*.jsonl`` chunks — a single, unnamed split;
* a directory whose sub-directories hold the chunks (``train/``, ``dev/``, ...)
  — one named split per sub-directory.

An unnamed split serves whichever split is asked for; a named one must exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fairseq2.assets import get_asset_download_manager
from fairseq2.recipe.error import SplitNotKnownError
from fairseq2.utils.uri import Uri

from fairseq2_preference.errors import PreferenceConfigError


@dataclass(frozen=True)
class JsonlSource:
    path: Path
    """The local file or directory."""

    splits: tuple[str, ...]
    """The named splits, or empty when the path is a single unnamed split."""

    @staticmethod
    def open(path: str | Path) -> JsonlSource:
        """Resolve ``path`` (a local path or a URI fairseq2 can download) and scan it."""
        uri = Uri.maybe_parse(str(path))
        if uri is not None and uri.scheme != "file":
            local = get_asset_download_manager().download_dataset(uri)
        else:
            local = uri.to_path() if uri is not None else Path(path).expanduser()

        if local.is_file():
            return JsonlSource(local, ())
        if not local.is_dir():
            raise PreferenceConfigError(
                f"Dataset path {local} does not exist. Point it to a .jsonl file or to a "
                "directory of .jsonl chunks (optionally in split sub-directories)."
            )

        splits = tuple(
            sorted(d.name for d in local.iterdir() if d.is_dir() and any(d.rglob("*.jsonl")))
        )
        if splits and any(local.glob("*.jsonl")):
            raise PreferenceConfigError(
                f"Dataset directory {local} holds both .jsonl files and split sub-directories "
                f"({', '.join(splits)}); move the top-level files into a split directory."
            )
        if not splits and not any(local.glob("*.jsonl")):
            raise PreferenceConfigError(f"Dataset directory {local} contains no .jsonl file.")
        return JsonlSource(local, splits)

    def has_split(self, split: str) -> bool:
        """Whether ``split`` is one of the named splits."""
        return split in self.splits

    def files(self, split: str) -> list[Path]:
        """The chunk files of ``split``, in a stable order."""
        if self.path.is_file():
            return [self.path]
        if not self.splits:
            return sorted(self.path.glob("*.jsonl"))
        if split not in self.splits:
            raise SplitNotKnownError(str(self.path), split, self.splits)
        return sorted(self.path.joinpath(split).rglob("*.jsonl"))
