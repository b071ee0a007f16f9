"""A run directory knows what it holds: resuming with other settings is refused,
and the config of every earlier start is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairseq2_preference.run.directory import changes

from helpers import recipe_args, regime, run_in_process


def test_changes_name_each_key_with_its_old_and_new_value() -> None:
    old = {"criterion": {"name": "dpo", "config": {"beta": 0.1}}, "regime": {"num_steps": 2}}
    new = {
        "criterion": {"name": "ipo", "config": {"beta": 0.1, "x": 1}},
        "regime": {"num_steps": 4},
    }
    assert changes(old, new, ("criterion",)) == [
        "criterion.config.x: '(unset)' → 1",
        "criterion.name: 'dpo' → 'ipo'",
    ]
    assert changes(old, new, ("dataset.name",)) == []


@pytest.mark.slow
def test_resuming_with_other_settings_is_refused_and_configs_are_kept(
    tmp_path: Path, tiny_assets: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"

    def start(*overrides: str) -> tuple[int, str]:
        return run_in_process(recipe_args(out, tiny_assets, [*regime(2, 2), *overrides]), capfd)

    rc, output = start()
    assert rc == 0, output[-3000:]
    assert (out / "run_identity.yaml").is_file()

    rc, output = start("criterion={name: ipo}", "regime.num_steps=4")
    assert rc == 2, output[-3000:]
    assert "holds a run with checkpoints up to step 2" in output
    assert "criterion.name: 'dpo' → 'ipo'" in output
    assert "use another output directory" in output and "checkpoint_step_2" in output
    assert "Traceback" not in output
    # The refused start trained nothing, and the run's config.yaml is the one it trained with.
    assert yaml.safe_load((out / "config.yaml").read_text())["criterion"]["name"] == "dpo"
    assert not (out / "config.1.yaml").exists()

    rc, output = start("optimizer.config.lr=0.002", "regime.num_steps=4")
    assert rc == 2, output[-3000:]
    assert "optimizer.config.lr: 0.001 → 0.002" in output and "would be ignored" in output

    rc, output = start("regime.num_steps=4")  # extending the run is what resuming is for
    assert rc == 0, output[-3000:]
    assert (out / "checkpoints" / "step_4").is_dir()
    assert yaml.safe_load((out / "config.1.yaml").read_text())["regime"]["num_steps"] == 2
    assert yaml.safe_load((out / "config.yaml").read_text())["regime"]["num_steps"] == 4
