"""Switching the criterion on the command line starts from the new criterion's defaults.

fairseq2 merges ``--config`` overrides into the config file node by node, so
``--config criterion.name=simpo`` on a DPO config keeps DPO's
``criterion.config`` (β = 0.1, where SimPO wants 2.0–2.5) and silently trains
SimPO with it. When an override names a criterion other than the config file's
(or the recipe default's), :func:`switch_overrides` adds overrides that reset
``criterion.config`` first and then re-apply any ``criterion.config...`` values
given on the command line, so only those differ from the new criterion's defaults.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml


def config_items(args: Sequence[str]) -> list[str]:
    """The ``key=value`` / ``del:key`` items of every ``--config`` option in ``args``."""
    items: list[str] = []
    taking = False
    for arg in args:
        if arg == "--config":
            taking = True
        elif arg.startswith("-"):
            taking = False
        elif taking:
            items.append(arg.strip())
    return items


def _key_value(item: str) -> tuple[str, str]:
    key, _, value = item.partition("=")
    key = key.strip()
    return key.removeprefix("set:"), value


def file_criterion(config_file: Path | None) -> str | None:
    """``criterion.name`` as set in ``config_file``, if it sets one."""
    if config_file is None:
        return None
    data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    criterion = data.get("criterion") if isinstance(data, dict) else None
    name = criterion.get("name") if isinstance(criterion, dict) else None
    return str(name) if name is not None else None


def switch_overrides(args: Sequence[str], config_file: Path | None, default: str) -> list[str]:
    """Extra fairseq2 arguments that make a criterion switch start from its defaults."""
    items = config_items(args)
    names = [yaml.safe_load(v) for k, v in map(_key_value, items) if k == "criterion.name"]
    if not names:
        return []
    base = file_criterion(config_file) or default
    if str(names[-1]) == base:
        return []
    given = [i for i in items if _key_value(i)[0].startswith("criterion.config")]
    reset = ["--config", "criterion.config={}"]
    return [*reset, "--config", *given] if given else reset
