"""The ``fairseq2`` command: help, config dumping and clear errors with status 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import FAIRSEQ2, recipe_args, run_cli, write_jsonl


def test_help_lists_the_commands() -> None:
    result = run_cli([str(FAIRSEQ2), "--help"])
    assert result.returncode == 0
    assert "lm preference_finetune" in result.stdout


def test_unknown_command_exits_2() -> None:
    result = run_cli([str(FAIRSEQ2), "lm", "nope"])
    assert result.returncode == 2
    assert "unknown command 'lm nope'" in result.stderr


def test_dump_config_structures_the_criterion() -> None:
    result = run_cli(
        [str(FAIRSEQ2), "lm", "preference_finetune", "--dump-config",
         "--config", "criterion.config.beta=0.25"]
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "beta: 0.25" in result.stdout and "label_smoothing: 0.0" in result.stdout
    assert "data_parallelism: fsdp" in result.stdout  # the 8-GPU defaults


GOOD = {"src": "q", "tgt_chosen": "a", "tgt_rejected": "b"}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (["criterion.name=dpoo"], "'dpoo' is not a known criterion. Available criteria: apo_down"),
        (["criterion.config.betta=1"], "Criterion 'dpo' has no hyper-parameter(s) 'betta'"),
        (["criterion.config.beta=-1"], "`beta` must be > 0"),
        (["reference_model=null"], "Criterion 'dpo' needs a reference model"),
        ("malformed", "bad.jsonl, line 2: not valid JSON"),
        ("missing", "bad.jsonl, line 1: missing key(s) 'tgt_rejected'"),
        ("empty", "bad.jsonl, line 1: 'tgt_chosen' is empty"),
    ],
)
def test_user_errors_exit_2_with_one_clear_message(
    tmp_path: Path, tiny_assets: Path, setup: list[str] | str, message: str
) -> None:
    if isinstance(setup, str):
        rows = {
            "malformed": [GOOD, '{"src": "q", "tgt_chosen": "a",'],
            "missing": [{"src": "q", "tgt_chosen": "a"}],
            "empty": [{**GOOD, "tgt_chosen": ""}],
        }[setup]
        path = write_jsonl(tmp_path / "bad.jsonl", rows)  # type: ignore[arg-type]
        setup = ["dataset.name=null", "dataset.family=generic_preference",
                 f"dataset.config_overrides.path={path}"]  # fmt: skip
    result = run_cli([str(FAIRSEQ2), *recipe_args(tmp_path / "run", tiny_assets, setup)])
    assert result.returncode == 2, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert message in output
    assert "Traceback" not in output
