"""The on-disk reference log-prob cache: content-addressed, atomic, shareable.

One entry per key (the hash of everything the numbers depend on, see
:mod:`fairseq2_preference.reference.fingerprint`)::

    <cache_dir>/<key>/manifest.json          written last; the entry exists iff it does
    <cache_dir>/<key>/table.<nonce>.pt       ids, logps float32 [n, k], counts int32 [n, k]
    <cache_dir>/<key>/fill.<nonce>/part-<rank>.pt   what each rank scored, while filling

Every file is written beside its target, fsync'ed and renamed over it, so a
reader sees a file whole or not at all. A fill writes one part per rank into a
directory of its own (``nonce`` is shared by the ranks of one run), then rank 0
merges the parts into a table and writes the manifest, which names the table
and its SHA-256. A run killed before that leaves no manifest, and a manifest
whose table is missing or does not match its hash is ignored: a half-written
entry is never read. Runs that fill the same key at once each write their own
parts and table; the last manifest wins and both tables are correct.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import torch
from fairseq2.logging import log

from fairseq2_preference.reference.table import ReferenceTable, merge_tables

FORMAT = 1

MANIFEST = "manifest.json"

CACHE_SUBDIR = "preference_reference_logps"


def default_cache_dir() -> Path:
    """``$FAIRSEQ2_CACHE_DIR/preference_reference_logps``, else the same under
    ``$XDG_CACHE_HOME/fairseq2`` or ``~/.cache/fairseq2`` (beside fairseq2's asset cache)."""
    root = os.environ.get("FAIRSEQ2_CACHE_DIR")
    if root:
        return Path(root).expanduser() / CACHE_SUBDIR
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "fairseq2" / CACHE_SUBDIR


def new_nonce() -> str:
    return uuid.uuid4().hex[:16]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ReferenceCache:
    """The entries under one cache directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def entry(self, key: str) -> Path:
        return self.root / key

    def load(self, key: str) -> ReferenceTable | None:
        """The table of a complete, intact entry, or ``None``."""
        entry = self.entry(key)
        manifest_file = entry / MANIFEST
        if not manifest_file.is_file():
            return None
        try:
            manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
            table_file = entry / manifest["table"]
            if manifest["format"] != FORMAT or manifest["key"] != key:
                raise ValueError("written for another key or format")
            if file_sha256(table_file) != manifest["sha256"]:
                raise ValueError(f"{table_file.name} does not match its SHA-256")
            data = torch.load(table_file, map_location="cpu", weights_only=True)
            table = ReferenceTable(data["ids"], data["logps"], data["counts"], str(entry))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as ex:
            log.warning("Reference cache entry {} is unusable ({}); ignoring it.", entry, ex)
            return None
        if len(table) != manifest.get("num_examples"):
            log.warning("Reference cache entry {} is incomplete; ignoring it.", entry)
            return None
        return table

    def write_part(self, key: str, nonce: str, rank: int, table: ReferenceTable) -> None:
        """Store what ``rank`` scored in fill ``nonce``."""
        part = self.entry(key) / f"fill.{nonce}" / f"part-{rank:05d}.pt"
        _atomic_torch_save(part, _payload(table))

    def commit(
        self, key: str, nonce: str, num_parts: int, description: dict[str, Any]
    ) -> ReferenceTable:
        """Merge the parts of fill ``nonce`` into a table and publish the entry."""
        entry = self.entry(key)
        fill_dir = entry / f"fill.{nonce}"
        parts = []
        for rank in range(num_parts):
            data = torch.load(fill_dir / f"part-{rank:05d}.pt", weights_only=True)
            parts.append(ReferenceTable(data["ids"], data["logps"], data["counts"]))
        table = merge_tables(parts)
        table.source = str(entry)
        table_file = entry / f"table.{nonce}.pt"
        _atomic_torch_save(table_file, _payload(table))
        manifest = {
            "format": FORMAT,
            "key": key,
            "table": table_file.name,
            "sha256": file_sha256(table_file),
            "num_examples": len(table),
            "num_responses": table.num_responses,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "description": description,
        }
        text = json.dumps(manifest, indent=1, default=str) + "\n"
        _atomic_write(entry / MANIFEST, lambda f: f.write(text.encode()))
        shutil.rmtree(fill_dir, ignore_errors=True)
        return table


def _payload(table: ReferenceTable) -> dict[str, Any]:
    counts = table.counts if table.counts is not None else torch.zeros_like(table.logps)
    return {"ids": table.ids, "logps": table.logps, "counts": counts.to(torch.int32)}


def _atomic_torch_save(path: Path, obj: object) -> None:
    _atomic_write(path, lambda f: torch.save(obj, f))


def _atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write beside ``path``, fsync, rename over it; readable by all (a shared cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
