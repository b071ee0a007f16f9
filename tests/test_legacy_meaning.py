"""Configs from fairseq2 0.4's documentation translate into valid modern configs
that mean the same: the same batches, the same learning-rate schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fairseq2_preference.cli import main
from fairseq2_preference.data.batching import bucket_sizes

# In the style of the 0.4 docs: the budget equal to the longest sequence, a final lr.
DOC_CONFIG = """\
model: llama3_1_8b_instruct
dataset: openassistant2_llama3_preference_train
max_seq_len: 2048
max_num_tokens: 2048
criterion: dpo
criterion_config: {reference_model: llama3_1_8b_instruct, beta: 0.1}
lr_scheduler: cosine-annealing
lr_scheduler_config: {final_lr: 5.5e-07}
max_num_steps: 1000
"""


def dump(capsys: pytest.CaptureFixture[str], command: str, path: Path) -> dict:  # type: ignore[type-arg]
    main(["lm", command, "--dump-config", "--no-rich", "--config-file", str(path)])
    captured = capsys.readouterr()
    return yaml.safe_load(captured.out[captured.out.index("model:") :])  # type: ignore[no-any-return]


def test_a_0_4_doc_config_is_valid_and_keeps_its_meaning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "dpo_0.4.yaml"
    path.write_text(DOC_CONFIG)
    config = dump(capsys, "preference_finetune", path)

    dataset = config["dataset"]
    assert dataset["max_num_tokens"] == 4096
    # 0.4: one pair of 2048 tokens per batch, 2 of 1024, ...; the same now.
    for pairs, longest in bucket_sizes(dataset["max_num_tokens"], 2, 1, dataset["max_seq_len"]):
        assert pairs * longest <= 2048
    assert bucket_sizes(dataset["max_num_tokens"], 2, 1, 2048)[-1] == (1, 2048)

    schedule = config["lr_scheduler"]
    assert schedule["name"] == "cosine_annealing"
    assert schedule["config"]["final_lr"] == 5.5e-07
    assert schedule["config"]["final_lr_scale"] is None


def test_the_instruction_budget_keeps_its_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """SFT rows are one sequence each: the 0.4 budget already meant rows × longest."""
    path = tmp_path / "sft_0.4.yaml"
    path.write_text("model: llama3_1_8b_instruct\nmax_seq_len: 2048\nmax_num_tokens: 4096\n")
    assert dump(capsys, "instruction_finetune", path)["dataset"]["max_num_tokens"] == 4096
