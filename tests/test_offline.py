"""Without the hub or the judge, commands fail within seconds, naming the local alternative."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fairseq2_preference.data_prep.gsm8k import load_problems
from fairseq2_preference.data_prep.hf_preference import load_hf_dataset
from fairseq2_preference.data_prep.oasst_messages import load_messages
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.evaluation.alpaca_data import load_instructions, load_reference_outputs
from fairseq2_preference.evaluation.judge import JudgeSection, judge
from fairseq2_preference.offline import reachable

from helpers import FAIRSEQ2, REPO, run_cli

CLOSED = "http://127.0.0.1:9"
"""The discard port: nothing listens, so a connection is refused at once."""

HUB_COMMANDS: list[tuple[Callable[[], object], str]] = [
    (lambda: load_messages(None), "pass them with --source"),
    (lambda: load_problems(None, "train", None), "with --source"),
    (lambda: load_instructions(None), "`--config alpaca_eval.instructions=<alpaca_eval.json>`"),
    (lambda: load_reference_outputs(None), "--reference_outputs <alpaca_eval_gpt4_baseline"),
    (lambda: load_hf_dataset("acme/prefs"), "Point to local .jsonl/.parquet files"),
]


@pytest.mark.parametrize(("command", "alternative"), HUB_COMMANDS)
def test_an_unreachable_hub_fails_fast_naming_the_alternative(
    monkeypatch: pytest.MonkeyPatch, command: Callable[[], object], alternative: str
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", CLOSED)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    start = time.monotonic()
    with pytest.raises(PreferenceConfigError) as error:
        command()
    assert time.monotonic() - start < 5
    message = str(error.value)
    assert f"{CLOSED} cannot be reached" in message and alternative in message
    assert "\n" not in message


def test_an_unreachable_judge_fails_fast(tmp_path: Path) -> None:
    record = {"instruction": "Say hi.", "output": "Hi.", "generator": "m", "dataset": "x"}
    outputs = tmp_path / "model_outputs.json"
    outputs.write_text(json.dumps([record]))
    references = tmp_path / "references.json"
    references.write_text(json.dumps([record]))
    section = JudgeSection(reference_outputs=str(references), base_url=CLOSED)
    start = time.monotonic()
    with pytest.raises(PreferenceConfigError, match=r"judge_alpaca_eval .*--base_url"):
        judge(outputs, tmp_path, section)
    assert time.monotonic() - start < 5


def test_reachable_probe() -> None:
    assert not reachable(CLOSED, timeout=1)


def test_offline_data_prep_is_one_paragraph(tmp_path: Path) -> None:
    script = REPO / "datasets" / "openassistant2_llama3_data_prep.py"
    out = ["--data_dir", str(tmp_path / "d"), "--card_dir", str(tmp_path / "c")]
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    result = run_cli([sys.executable, str(script), *out], env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "HF_HUB_OFFLINE=1 is set and the Hugging Face cache has no copy" in result.stderr
    assert "--source DIR_OR_FILE" in result.stderr


@pytest.mark.slow
def test_an_offline_hub_checkpoint_is_one_paragraph(tmp_path: Path) -> None:
    # The default config's model card points at hg://meta-llama/Llama-3.1-8B-Instruct.
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "FAIRSEQ2_DEVICE": "cpu"}
    result = run_cli([str(FAIRSEQ2), "lm", "preference_finetune", str(tmp_path / "run")], env=env)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    error = next(ln for ln in result.stderr.splitlines() if "Failed to download hg://" in ln)
    assert "offline mode is enabled" in error and "`--config model.path=<dir>`" in error
    assert "Traceback" in (tmp_path / "run" / "logs" / "rank_0.log").read_text()  # kept on disk
