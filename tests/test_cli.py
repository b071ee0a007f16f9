"""The ``fairseq2`` command: help, config dumping and clear errors with status 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from helpers import FAIRSEQ2, read_metrics, recipe_args, run_cli, run_in_process, write_jsonl


def test_help_lists_the_commands() -> None:
    result = run_cli([str(FAIRSEQ2), "--help"])
    assert result.returncode == 0
    assert "lm preference_finetune" in result.stdout


def test_unknown_command_exits_2() -> None:
    result = run_cli([str(FAIRSEQ2), "lm", "nope"])
    assert result.returncode == 2
    assert "unknown command 'lm nope'" in result.stderr


def test_dump_config_structures_the_criterion(capfd: pytest.CaptureFixture[str]) -> None:
    status, output = run_in_process(
        ["lm", "preference_finetune", "--dump-config", "--config", "criterion.config.beta=0.25"],
        capfd,
    )
    assert status == 0, output[-2000:]
    assert "beta: 0.25" in output and "label_smoothing: 0.0" in output
    assert "data_parallelism: fsdp" in output  # the 8-GPU defaults


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
    tmp_path: Path,
    tiny_assets: Path,
    setup: list[str] | str,
    message: str,
    capfd: pytest.CaptureFixture[str],
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
    status, output = run_in_process(recipe_args(tmp_path / "run", tiny_assets, setup), capfd)
    assert status == 2, output[-3000:]
    assert message in output
    assert "Traceback" not in output


def test_group_help_and_module_entry_point() -> None:
    result = run_cli([str(FAIRSEQ2), "lm", "--help"])
    assert result.returncode == 0
    assert "lm instruction_finetune" in result.stdout and "lm preference_finetune" in result.stdout
    result = run_cli([sys.executable, "-m", "fairseq2_preference", "--help"])
    assert result.returncode == 0 and "lm preference_finetune" in result.stdout


def test_command_help_shows_our_options_and_fairseq2s(capfd: pytest.CaptureFixture[str]) -> None:
    status, output = run_in_process(["lm", "preference_finetune", "--help"], capfd)
    assert status == 0
    assert "--preset NAME" in output and "--config-file" in output


def test_list_presets(capfd: pytest.CaptureFixture[str]) -> None:
    status, output = run_in_process(["lm", "instruction_finetune", "--list-presets"], capfd)
    assert status == 0
    assert "llama3_1_base" in output and "llama3_1_instruct_lr_anneal_0" in output


def test_config_errors_are_one_paragraph(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    status, output = run_in_process(
        [
            "lm",
            "preference_finetune",
            str(tmp_path / "x"),
            "--no-rich",
            "--config",
            "trainer.foo=1",
        ],
        capfd,
    )
    assert status == 2
    assert "extra key(s) foo" in output and "Traceback" not in output


@pytest.mark.slow
def test_old_layout_tiny_config_trains(
    tmp_path: Path, tiny_assets: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old.yaml"
    old.write_text(
        "model: tiny_llama\ndataset: tiny_preference\nmax_seq_len: 64\nmax_num_tokens: 1024\n"
        "mixed_precision: none\ndtype: float32\ndata_parallelism: ddp\n"
        "activation_checkpointing: false\ncriterion: dpo\n"
        "criterion_config: {reference_model: tiny_llama, beta: 0.1}\n"
        "optimizer_config: {lr: 1.0e-3}\nlr_scheduler: noop\nmax_num_steps: 10\n"
        "checkpoint_every_n_steps: 5\npublish_metrics_every_n_steps: 1\n"
    )
    out = tmp_path / "run"
    assets = f"common.assets.extra_paths=[{tiny_assets / 'cards'}]"
    status, output = run_in_process(
        ["lm", "preference_finetune", str(out), "--config-file", str(old),
         "--no-sweep-dir", "--no-rich", "--config", assets],
        capfd,
    )  # fmt: skip
    assert status == 0, output[-3000:]
    assert "uses the old flat fairseq2 config layout" in output
    losses = [float(m["Loss"]) for m in read_metrics(out, "train")]  # type: ignore[arg-type]
    assert losses[0] == pytest.approx(0.693147, abs=1e-5) and losses[-1] < losses[0]
