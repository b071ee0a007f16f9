"""The cache key: a hash of everything that determines the reference log-probs.

A key covers the data files of the split (content), the reference checkpoint
(content of every file), its family/architecture/config and dtype, the autocast
dtype of the forward pass, the tokenizer (content of its files and its config),
the encode modes, source masking, the length filter and the fairseq2 version
(whose tokenizer code and chat templates encode the data). Change any of them and
the key changes: the lookup misses instead of returning stale numbers. What
does not change the numbers (names of cards, paths, the batch size, β, the
criterion) is left out, so a sweep shares one entry.

**Checkpoint fingerprint.** Each file is hashed in full (SHA-256), so a changed
tensor always misses, even one rewritten with the same size and timestamps.
Hashing an 8B checkpoint (16 GB) reads it once, about as long as loading it; the
digest is then remembered in ``<cache_dir>/digests.json`` under the file's
path, size, modification *and* change time and inode. Every rewrite of a file
updates its change time (which, unlike the modification time, cannot be set
back by ``touch`` or ``cp -p``), so the remembered digest is only reused for the
very file that was hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fairseq2
import torch
from fairseq2.assets import AssetStore, get_asset_download_manager
from fairseq2.recipe.config import ReferenceModelSection, TokenizerSection

from fairseq2_preference.data import HfPreferenceDataset, JsonlDataset, PreferenceDataset
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.reference.store import FORMAT, file_sha256


class DigestMemo:
    """File content digests, remembered across runs (see the module docstring)."""

    def __init__(self, file: Path) -> None:
        self.file = file
        try:
            loaded = json.loads(file.read_text(encoding="utf-8"))
            self._known: dict[str, str] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self._known = {}
        self._dirty = False

    def digest(self, path: Path) -> str:
        resolved = path.resolve()
        st = resolved.stat()
        stamp = f"{resolved}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"
        known = self._known.get(stamp)
        if known is None:
            known = self._known[stamp] = file_sha256(resolved)
            self._dirty = True
        return known

    def save(self) -> None:
        """Write the memo back (atomically; a concurrent writer's additions may be lost,
        which only costs hashing those files again)."""
        if self._dirty:
            atomic_write_text(self.file, json.dumps(self._known, indent=0) + "\n")
            self._dirty = False


def tree_digests(path: Path, memo: DigestMemo) -> list[list[str]]:
    """``[relative path, sha256]`` of ``path`` or of every file below it.

    Hidden files and directories (e.g. a hub download's ``.cache/``) are skipped:
    they hold bookkeeping, not weights.
    """
    if path.is_file():
        return [[path.name, memo.digest(path)]]
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist.")
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
    )
    return [[p.relative_to(path).as_posix(), memo.digest(p)] for p in files]


def model_description(
    section: ReferenceModelSection, store: AssetStore, memo: DigestMemo
) -> dict[str, Any]:
    """The reference checkpoint's content and how it is built."""
    meta: dict[str, Any]
    if section.path is not None:
        local = Path(section.path)
        meta = {"family": section.family, "arch": section.arch}
    else:
        card = store.retrieve_card(str(section.name))
        meta = _card_fields(card, ("model_family", "model_arch", "model_config"))
        uri = card.field("checkpoint").as_uri()
        local = uri.to_path() if uri.scheme == "file" else _download(uri, model=True)
    return {
        **meta,
        "config_overrides": section.config_overrides,
        "dtype": section.dtype,
        "files": tree_digests(local, memo),
    }


def tokenizer_description(
    section: TokenizerSection, store: AssetStore, memo: DigestMemo
) -> dict[str, Any]:
    """The tokenizer's files and configuration."""
    meta: dict[str, Any]
    local: Path | None
    if section.path is not None:
        local, meta = Path(section.path), {"family": section.family}
    else:
        card = store.retrieve_card(str(section.name))
        meta = _card_fields(card, ("tokenizer_family", "tokenizer_config", "model_family"))
        field = card.maybe_get_field("tokenizer")
        uri = field.as_uri() if field is not None else None
        if uri is None:
            local = None
        else:
            local = uri.to_path() if uri.scheme == "file" else _download(uri, model=False)
    files = tree_digests(local, memo) if local is not None else []
    return {**meta, "config_overrides": section.config_overrides, "files": files}


def data_description(dataset: PreferenceDataset, split: str, memo: DigestMemo) -> dict[str, Any]:
    """The split's content: its jsonl files by name (rows without an id are named
    after their file), or the Arrow files ``datasets`` loaded an ``hf_preference``
    split into, plus the columns read."""
    if isinstance(dataset, JsonlDataset):
        files = dataset.source.files(split)
        extra: dict[str, Any] = {"fields": list(dataset.schema.fields)}
    elif isinstance(dataset, HfPreferenceDataset):
        name = next(iter(dataset.splits)) if dataset.single_file else split
        files = [Path(f["filename"]) for f in dataset.splits[name].cache_files]
        extra = {"split": name, "fields": dataclasses.asdict(dataset.fields)}
        if not files:
            raise PreferenceConfigError(
                f"The {split} split of {dataset.location} is held in memory, not in Arrow "
                "files, so its content cannot be fingerprinted for the reference cache; "
                "set `reference_model.cache: off`."
            )
    else:
        raise PreferenceConfigError(
            f"`reference_model.cache` supports jsonl (generic_*) and hf_preference datasets, "
            f"not {type(dataset).__name__}; set `reference_model.cache: off`."
        )
    return {**extra, "files": sorted([file.name, memo.digest(file)] for file in files)}


def cache_key(
    *,
    data: dict[str, Any],
    reference: dict[str, Any],
    tokenizer: dict[str, Any],
    encoding: dict[str, Any],
    autocast: torch.dtype | None,
) -> tuple[str, dict[str, Any]]:
    """``(key, description)``: the description is stored in the entry's manifest."""
    description = {
        "format": FORMAT,
        "fairseq2": fairseq2.__version__,  # its tokenizers and chat templates encode the data
        "data": data,
        "reference": reference,
        "autocast": autocast,
        "tokenizer": tokenizer,
        "encoding": encoding,
    }
    canonical = json.dumps(description, sort_keys=True, default=_plain)
    description = json.loads(canonical)
    return hashlib.sha256(canonical.encode()).hexdigest()[:40], description


def _card_fields(card: Any, names: Sequence[str]) -> dict[str, Any]:
    fields = {name: card.maybe_get_field(name) for name in names}
    return {name: f.value for name, f in fields.items() if f is not None}


def _download(uri: Any, model: bool) -> Path:
    manager = get_asset_download_manager()
    if model:
        return manager.download_model(uri)
    return manager.download_tokenizer(uri)


def _plain(obj: object) -> object:
    """JSON for config values: dataclasses as dicts, everything else (dtypes, paths) as text."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)
