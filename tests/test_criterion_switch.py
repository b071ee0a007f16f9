"""``--config criterion.name=X`` starts from X's defaults, not the file's hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairseq2_preference.cli import main
from fairseq2_preference.config.criterion_switch import switch_overrides
from fairseq2_preference.criteria import structure_criterion_config

from helpers import TINY_CONFIG

FILE = ["out", "--config-file", "x.yaml", "--no-rich"]


def dumped_criterion(capsys: pytest.CaptureFixture[str], *overrides: str) -> dict[str, object]:
    main(["lm", "preference_finetune", "--config-file", str(TINY_CONFIG),
          "--dump-config", "--config", *overrides])  # fmt: skip
    criterion: dict[str, object] = yaml.safe_load(capsys.readouterr().out)["criterion"]
    return criterion


def defaults(name: str) -> dict[str, object]:
    return dict(vars(structure_criterion_config(name, {})))


def test_switching_starts_from_the_new_criterions_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The tiny config is DPO with beta 0.1; SimPO's own default beta is 2.0.
    assert defaults("simpo")["beta"] != 0.1
    switched = dumped_criterion(capsys, "criterion.name=simpo")
    assert switched == {"name": "simpo", "config": defaults("simpo")}

    given = dumped_criterion(capsys, "criterion.config.gamma=0.3", "criterion.name=simpo")
    assert given == {"name": "simpo", "config": {**defaults("simpo"), "gamma": 0.3}}


def test_same_criterion_keeps_the_files_hyper_parameters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert dumped_criterion(capsys, "criterion.name=dpo")["config"] == {
        **defaults("dpo"),
        "beta": 0.1,
    }
    assert dumped_criterion(capsys, "criterion.config.beta=0.5")["config"] == {
        **defaults("dpo"),
        "beta": 0.5,
    }


def test_switch_overrides(tmp_path: Path) -> None:
    dpo = tmp_path / "dpo.yaml"
    dpo.write_text("criterion:\n  name: dpo\n  config: {beta: 0.1}\n")
    assert switch_overrides([*FILE, "--config", "set:criterion.name=orpo"], dpo, "dpo") == [
        "--config",
        "criterion.config={}",
    ]
    args = [*FILE, "--config", "criterion.config.beta=2", "criterion.name=simpo", "--no-rich"]
    assert switch_overrides(args, dpo, "dpo") == [
        "--config", "criterion.config={}", "--config", "criterion.config.beta=2",
    ]  # fmt: skip
    assert switch_overrides([*FILE, "--config", "criterion.name=dpo"], dpo, "sft") == []
    assert switch_overrides([*FILE, "--config", "criterion.name=sft"], None, "sft") == []
    assert switch_overrides([*FILE, "--config", "regime.num_steps=3"], dpo, "dpo") == []
