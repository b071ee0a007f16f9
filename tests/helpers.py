"""Helpers to run the recipe for real and to read what it wrote."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY_CONFIG = REPO / "example_configurations" / "tiny_dpo_cpu.yaml"
TINY_SFT_CONFIG = REPO / "example_configurations" / "tiny_sft_cpu.yaml"
FAIRSEQ2 = Path(sys.executable).with_name("fairseq2")

os.environ["FAIRSEQ2_DEVICE"] = "cpu"
os.environ.setdefault("FAIRSEQ2_NO_PROGRESS", "1")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One thread a process when the workers share the cores: two workers of two
    # threads each would oversubscribe a 2-core machine.
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def regime(num_steps: int, every: int) -> tuple[str, ...]:
    """Overrides for a short run: ``num_steps``, validating and checkpointing ``every`` steps."""
    return (
        f"regime.num_steps={num_steps}",
        f"regime.validate_every_n_steps={every}",
        f"regime.checkpoint_every_n_steps={every}",
    )


def recipe_args(
    out_dir: Path,
    assets: Path,
    overrides: Sequence[str],
    config_file: Path = TINY_CONFIG,
    command: str = "preference_finetune",
) -> list[str]:
    return [
        "lm",
        command,
        str(out_dir),
        "--config-file",
        str(config_file),
        "--no-rich",
        "--config",
        f"common.assets.extra_paths=[{assets / 'cards'}]",
        *overrides,
    ]


def train(
    out_dir: Path, assets: Path, *overrides: str, sft: bool = False
) -> list[dict[str, object]]:
    """Run ``fairseq2 lm preference_finetune`` (``instruction_finetune`` with ``sft``)
    in-process on the tiny config; return the train metrics."""
    from fairseq2_preference.cli import main

    if sft:
        args = recipe_args(out_dir, assets, overrides, TINY_SFT_CONFIG, "instruction_finetune")
    else:
        args = recipe_args(out_dir, assets, overrides)
    main([*args, "--no-exit-on-error"])
    return read_metrics(out_dir, "train")


def run_in_process(args: Sequence[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``fairseq2 ARGS`` in this process (no interpreter start-up): the exit status
    and everything written to stdout and stderr, as :func:`run_cli` would see it.
    For commands whose behaviour does not depend on a fresh process (the
    environment, logging set up at import)."""
    from fairseq2_preference.cli import main

    capfd.readouterr()
    try:
        main(list(args))
        status = 0
    except SystemExit as ex:
        status = ex.code if isinstance(ex.code, int) else 1
    captured = capfd.readouterr()
    return status, captured.out + captured.err


def run_cli(
    args: Sequence[str], *, timeout: float = 300, env: dict[str, str | None] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command in a fresh process, as a user would; capture its output.
    ``env`` adds variables to this process's environment (``None``: removes one)."""
    environ = {**os.environ, **(env or {})}
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={key: value for key, value in environ.items() if value is not None},
        cwd=REPO,
    )


def read_metrics(out_dir: Path, split: str) -> list[dict[str, object]]:
    file = out_dir / "metrics" / f"{split}.jsonl"
    return [json.loads(line) for line in file.read_text().splitlines()]


def read_jsonl_dir(path: Path) -> list[dict[str, str]]:
    """Every row of every ``*.jsonl`` below ``path``, sorted by id."""
    rows = [
        json.loads(line)
        for file in sorted(path.rglob("*.jsonl"))
        for line in file.read_text().splitlines()
    ]
    return sorted(rows, key=lambda row: row["id"])


def write_jsonl(path: Path, lines: Sequence[str | dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines)
    path.write_text(text)
    return path


def builtin_names() -> set[str]:
    """Registered criteria defined in this package (tests and plug-ins add others)."""
    from fairseq2_preference.criteria import criterion_kls, criterion_names

    return {
        name
        for name in criterion_names()
        if criterion_kls(name).__module__.startswith("fairseq2_preference.criteria.")
    }
