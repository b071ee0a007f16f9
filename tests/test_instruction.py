"""`fairseq2 lm instruction_finetune`: SFT on generic_instruction data, then DPO from it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from fairseq2_preference.errors import PreferenceConfigError

from helpers import read_metrics, regime, train

pytestmark = pytest.mark.slow

SHORT = regime(6, 3)


def test_sft_then_dpo_from_its_checkpoint(
    tmp_path: Path, tiny_assets: Path, tiny_sft: Path
) -> None:
    sft = read_metrics(tiny_sft, "train")
    losses = [float(m["Loss"]) for m in sft]  # type: ignore[arg-type]
    assert losses[-1] < 0.5 * losses[0]
    assert (
        "NLL Loss" in sft[0] and "Logps/Rejected" not in sft[0] and "Rewards/Margins" not in sft[0]
    )
    assert read_metrics(tiny_sft, "valid")

    dpo = train(
        tmp_path / "dpo",
        tiny_assets,
        *SHORT,
        f"common.assets.prev_checkpoint_dir={tiny_sft / 'checkpoints'}",
        "model.name=checkpoint_step_40",
        "reference_model.name=checkpoint_step_40",
    )
    assert float(dpo[0]["Loss"]) == pytest.approx(math.log(2), abs=1e-5)
    # The SFT model already prefers the (trained-on) chosen responses' wording.
    assert float(dpo[0]["Logps/Chosen"]) > float(dpo[0]["Logps/Rejected"])  # type: ignore[arg-type]


def test_pair_criterion_on_instruction_data_is_refused(tmp_path: Path, tiny_assets: Path) -> None:
    with pytest.raises(PreferenceConfigError, match="'dpo' needs preference pairs"):
        train(tmp_path / "x", tiny_assets, *SHORT, "criterion={name: dpo}", sft=True)


def test_sft_on_preference_data_uses_the_chosen_responses(
    tmp_path: Path, tiny_assets: Path
) -> None:
    metrics = train(
        tmp_path / "x", tiny_assets, *SHORT, "criterion={name: sft}", "reference_model=null"
    )
    assert "SFT Loss" not in metrics[0] and "Rewards/Margins" not in metrics[0]
    assert float(metrics[-1]["NLL Loss"]) < float(metrics[0]["NLL Loss"])  # type: ignore[arg-type]
