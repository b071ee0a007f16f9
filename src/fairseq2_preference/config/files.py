"""What ``--preset`` and ``--config-file`` become: the one YAML file fairseq2 loads.

fairseq2's command line reads a single config file. This module lets a run
start from a packaged preset, overlay the user's file on it, and accept files in
the old flat layout (translated, with the modern equivalent printed). When
nothing needs combining or translating, the user's file is passed through
untouched, so fairseq2's own handling applies unchanged.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any, TextIO

import yaml
from fairseq2.utils.config import StandardConfigMerger

from fairseq2_preference.config.legacy import is_legacy, translate
from fairseq2_preference.errors import PreferenceConfigError


@dataclass(frozen=True)
class Preset:
    name: str
    path: Path
    description: str


def presets(command: str) -> dict[str, Preset]:
    """The packaged presets of ``command`` (e.g. ``preference_finetune``), by name."""
    folder = Path(str(files("fairseq2_preference.config.presets"))) / command
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        found[path.stem] = Preset(path.stem, path, first.lstrip("# ").strip())
    return found


def preset_path(command: str, name: str) -> Path:
    available = presets(command)
    if name not in available:
        raise PreferenceConfigError(
            f"'{name}' is not a preset of `{command}`. Presets: {', '.join(available) or 'none'}."
        )
    return available[name].path


def effective_config_file(
    command: str,
    preset: str | None,
    config_file: Path | None,
    workdir: Path,
    warn: TextIO | None = None,
) -> Path | None:
    """The file to hand to fairseq2: ``config_file`` itself, or a combination of the
    preset and ``config_file`` (each translated from the old layout if needed)
    written under ``workdir``. ``None`` when there is neither. Translation notes
    go to ``warn`` (default: standard error)."""
    sources = [p for p in (preset_path(command, preset) if preset else None, config_file) if p]
    if not sources:
        return None
    warn = warn or sys.stderr
    loaded = [(path, _load(path)) for path in sources]
    if len(loaded) == 1 and not is_legacy(loaded[0][1]):
        return loaded[0][0]

    merged: object = {}
    merger = StandardConfigMerger()
    for path, raw in loaded:
        if is_legacy(raw):
            raw = _translated(raw, path, command, warn)
        merged = merger.merge(merged, _resolve_dir(raw, path.parent))
    out = Path(tempfile.mkstemp(prefix="config.", suffix=".yaml", dir=workdir)[1])
    out.write_text(yaml.safe_dump(merged, sort_keys=False), encoding="utf-8")
    return out


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as ex:
        raise PreferenceConfigError(f"Cannot read the config file {path}: {ex.strerror}.") from None
    except yaml.YAMLError as ex:
        raise PreferenceConfigError(f"{path} is not valid YAML: {ex}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PreferenceConfigError(f"{path} must hold a mapping of config sections.")
    return raw


def _translated(raw: dict[str, Any], path: Path, command: str, warn: TextIO) -> dict[str, Any]:
    result = translate(raw, str(path), preference=command == "preference_finetune")
    notes = "".join(f"  - {note}\n" for note in result.notes)
    modern = yaml.safe_dump(result.config, sort_keys=False)
    warn.write(
        f"WARNING: {path} uses the old flat fairseq2 config layout; it was translated.\n"
        f"{notes}Its modern equivalent (save it to silence this warning):\n\n{modern}\n"
    )
    return result.config


def _resolve_dir(value: Any, directory: Path) -> Any:
    """Apply fairseq2's ``${dir}`` directive for a file that is about to be copied."""
    if isinstance(value, str):
        return value.replace("${dir}", str(directory.resolve()))
    if isinstance(value, dict):
        return {k: _resolve_dir(v, directory) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_dir(v, directory) for v in value]
    return value
