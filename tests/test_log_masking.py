"""No secret reaches a log or the console, although fairseq2 logs the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from fairseq2_preference.run.log_masking import mask, secrets

from helpers import FAIRSEQ2, recipe_args, run_cli

SECRETS = {
    "OPENAI_API_KEY": "sk-test-0123456789abcdef",
    "HF_TOKEN": "hf_abcdefghijklmnop",
    "WANDB_API_KEY": "0123456789abcdef0123",
    "MY_SERVICE_TOKEN": "tok-56789-xyz",
    "AWS_SECRET_ACCESS_KEY": "aws/secret+value12345",
    "DB_PASSWORD": "hunter2",  # short: masked where it follows its name
    "GITHUB_TOKEN_FILE_KEY": "ghp_0000111122223333",
}
NOT_SECRET = {"TOKENIZERS_PARALLELISM": "false", "KEYBOARD_LAYOUT": "uk", "OMP_NUM_THREADS": "1"}


def test_secret_names_are_recognised_and_others_left_alone() -> None:
    found = dict(secrets({**SECRETS, **NOT_SECRET}))
    assert found == SECRETS


def test_mask_replaces_values_in_env_listings_and_free_text() -> None:
    env = {**SECRETS, **NOT_SECRET}
    text = ", ".join(f"{k}={v}" for k, v in env.items()) + " | judge key sk-test-0123456789abcdef"
    masked = mask(text, env)
    for value in SECRETS.values():
        assert value not in masked
    assert "OPENAI_API_KEY=****" in masked and "DB_PASSWORD=****" in masked
    assert "TOKENIZERS_PARALLELISM=false" in masked and "judge key ****" in masked


@pytest.mark.slow
def test_a_training_run_logs_no_secret(tmp_path: Path, tiny_assets: Path) -> None:
    out = tmp_path / "run"
    overrides = ["regime.num_steps=1", "regime.validate_every_n_steps=1",
                 "regime.checkpoint_every_n_steps=1"]  # fmt: skip
    result = run_cli([str(FAIRSEQ2), *recipe_args(out, tiny_assets, overrides)], env=SECRETS)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (out / "logs" / "rank_0.log").read_text()
    console = result.stdout + result.stderr
    assert "Environment Variables - " in log and "OPENAI_API_KEY=****" in log
    for value in SECRETS.values():
        assert value not in console and value not in log
