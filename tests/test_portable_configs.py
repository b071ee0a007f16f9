"""Example configs run from wherever they are copied; missing demo cards say how to build them."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from fairseq2_preference.tiny.cards import default_tiny_cards

from helpers import FAIRSEQ2, REPO, TINY_CONFIG, read_metrics, regime, run_cli, train


def test_no_example_config_depends_on_where_it_sits() -> None:
    for config in sorted((REPO / "example_configurations").rglob("*.yaml")):
        settings = [ln for ln in config.read_text().splitlines() if not ln.lstrip().startswith("#")]
        assert not [ln for ln in settings if "${dir}" in ln or ".demo" in ln], config


def run_copied_config(
    tmp_path: Path, tiny_dir: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    copy = tmp_path / "elsewhere" / "my_dpo.yaml"
    copy.parent.mkdir()
    shutil.copy(TINY_CONFIG, copy)
    out = tmp_path / "run"
    args = ["lm", "preference_finetune", str(out), "--config-file", str(copy), "--no-rich",
            "--config", *regime(2, 2)]  # fmt: skip
    env = {"FAIRSEQ2_PREFERENCE_TINY_DIR": str(tiny_dir)}
    return out, run_cli([str(FAIRSEQ2), *args], env=env)


@pytest.mark.slow
def test_a_copied_example_config_runs_on_the_built_tiny_assets(
    tmp_path: Path, tiny_assets: Path
) -> None:
    out, result = run_copied_config(tmp_path, tiny_assets)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [m["Step"] for m in read_metrics(out, "train")] == [1, 2]


@pytest.mark.slow
def test_unbuilt_tiny_assets_say_how_to_build_them(tmp_path: Path) -> None:
    _, result = run_copied_config(tmp_path, tmp_path / "not_built")
    assert result.returncode != 0
    stderr = result.stderr
    assert "tiny_llama is not a known model" in stderr
    assert "run `python -m fairseq2_preference.tiny` once" in stderr
    assert str(tmp_path / "not_built") in stderr


@pytest.mark.slow
def test_configured_tiny_cards_take_the_place_of_the_default_ones(
    tmp_path: Path, tiny_assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default directory holds cards of the same names as the configured
    # `extra_paths` (tiny_assets): fairseq2 would refuse the duplicates.
    default = tmp_path / "default_tiny"
    shutil.copytree(tiny_assets, default)
    monkeypatch.setenv("FAIRSEQ2_PREFERENCE_TINY_DIR", str(default))
    metrics = train(tmp_path / "run", tiny_assets, *regime(2, 2))
    assert [m["Step"] for m in metrics] == [1, 2]


def test_default_tiny_cards_are_read_unless_shadowed(
    tmp_path: Path, tiny_assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIRSEQ2_PREFERENCE_TINY_DIR", str(tiny_assets))
    assert default_tiny_cards([]) == tiny_assets / "cards"
    assert default_tiny_cards([tmp_path / "missing", tiny_assets / "cards"]) is None
    other = tmp_path / "other.yaml"
    other.write_text("name: something_else\nmodel_family: llama\n")
    assert default_tiny_cards([other]) == tiny_assets / "cards"
    monkeypatch.setenv("FAIRSEQ2_PREFERENCE_TINY_DIR", str(tmp_path / "never_built"))
    assert default_tiny_cards([]) is None
