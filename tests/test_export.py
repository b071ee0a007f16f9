"""Weights in by path, a few DPO steps, weights out: ``fairseq2 lm export_hf``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from helpers import FAIRSEQ2, read_metrics, regime, run_cli, train

pytestmark = pytest.mark.slow

IDS = torch.tensor([[0, 17, 250, 33, 301, 98, 7, 5], [0, 300, 12, 44, 45, 46, 2, 2]])


@pytest.fixture(scope="module")
def run(hf_llama: Path, tiny_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DPO from the Hugging Face directory, reference and tokenizer left to follow it."""
    out = tmp_path_factory.mktemp("run") / "dpo"
    train(
        out,
        tiny_assets,
        f"model={{path: {hf_llama}}}",
        "del:reference_model",
        "del:tokenizer",
        *regime(4, 2),
        "regime.keep_last_n_checkpoints=2",
    )
    return out


def fairseq2_logits(run: Path, step: int) -> torch.Tensor:
    """The trained model as fairseq2 holds it: the config it recorded, the weights it saved."""
    import yaml
    from fairseq2.models.llama import create_llama_model
    from fairseq2.nn import BatchLayout

    from fairseq2_preference.models.llama_config import llama_config

    card = yaml.safe_load((run / "checkpoints" / "model.yaml").read_text())
    model = create_llama_model(llama_config(card["model_config"]))
    file = run / "checkpoints" / f"step_{step}" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    state = torch.load(file, map_location="cpu", weights_only=True)
    model.load_state_dict(state.get("model", state))
    model.eval()
    with torch.no_grad():
        return model(IDS, BatchLayout.of(IDS))  # type: ignore[no-any-return]


def export(run: Path, out: Path, *args: str) -> None:
    result = run_cli([str(FAIRSEQ2), "lm", "export_hf", str(run), str(out), *args])
    assert result.returncode == 0, result.stderr[-3000:]


def test_training_from_a_path_starts_at_ln2_with_everything_following(run: Path) -> None:
    rows = read_metrics(run, "train")
    assert rows[0]["DPO Loss"] == pytest.approx(0.693147, abs=1e-5)  # reference == policy
    assert [row["Step"] for row in rows] == [1, 2, 3, 4]
    config = (run / "config.yaml").read_text()
    assert config.count("family: llama") >= 3 and "use_eot: true" in config


def test_export_loads_in_transformers_with_fairseq2s_logits(run: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "hf"
    export(run, out)
    config = json.loads((out / "config.json").read_text())
    assert config["intermediate_size"] == 96  # fairseq2's own exporter writes 176
    assert (config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (0, 5, 2)
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [5, 1]  # <|eot_id|>, then <|end_of_text|>
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)

    model = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    with torch.no_grad():
        logits = model(IDS).logits
    torch.testing.assert_close(logits, fairseq2_logits(run, 4), atol=1e-5, rtol=0)


def test_export_of_an_earlier_step(run: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    export(run, tmp_path / "step2", "--step", "2")
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "step2"), dtype=torch.float32)
    with torch.no_grad():
        logits = model(IDS).logits
    torch.testing.assert_close(logits, fairseq2_logits(run, 2), atol=1e-5, rtol=0)
    assert not torch.allclose(logits, fairseq2_logits(run, 4))


def test_missing_step_is_a_clear_error(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fairseq2_preference.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["lm", "export_hf", str(run), str(tmp_path / "x"), "--step", "3"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "no checkpoint at step 3" in error and "step_2, step_4" in error


@pytest.fixture(scope="module")
def lora_run(hf_llama: Path, tiny_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """LoRA DPO on the Hugging Face directory (adapters on every linear layer)."""
    out = tmp_path_factory.mktemp("lora") / "dpo"
    train(
        out, tiny_assets, f"model={{path: {hf_llama}}}", "del:reference_model", "del:tokenizer",
        "lora={rank: 4, alpha: 8, dropout: 0.0}", "optimizer.config.lr=0.05", *regime(3, 3),
    )  # fmt: skip
    return out


def lora_logits(run: Path) -> torch.Tensor:
    """The trained LoRA model as fairseq2 rebuilds it: base + the saved adapters."""
    import yaml
    from fairseq2.models.llama import get_llama_model_hub
    from fairseq2.nn import BatchLayout

    from fairseq2_preference.models.llama_config import llama_config
    from fairseq2_preference.models.lora_checkpoint import load_trained_lora_model

    run_config = yaml.safe_load((run / "config.yaml").read_text())
    card = yaml.safe_load((run / "checkpoints" / "model.yaml").read_text())
    config = llama_config(card["model_config"])
    model, adapters = load_trained_lora_model(
        get_llama_model_hub(), None, run_config, config, run / "checkpoints" / "step_3"
    )
    assert any(float(v.abs().max()) > 0 for k, v in adapters.items() if "lora_B" in k)
    with torch.no_grad():
        return model(IDS, BatchLayout.of(IDS))  # type: ignore[no-any-return]


def test_lora_run_exports_merged_weights(lora_run: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    export(lora_run, tmp_path / "merged")
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32)
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, lora_logits(lora_run), atol=1e-4, rtol=0)


def test_lora_run_exports_a_peft_adapter_for_the_hugging_face_base(
    lora_run: Path, hf_llama: Path, tmp_path: Path
) -> None:
    """``peft.PeftModel.from_pretrained`` on the Hugging Face base (offline) gives the
    logits of fairseq2's trained model: names, the q/k rotary order and the scaling."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    export(lora_run, out, "--peft")
    config = json.loads((out / "adapter_config.json").read_text())
    assert (config["r"], config["lora_alpha"], config["peft_type"]) == (4, 8, "LORA")
    assert sorted(config["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    base = AutoModelForCausalLM.from_pretrained(str(hf_llama), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(out)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(IDS).logits, lora_logits(lora_run), atol=1e-4, rtol=0)


def test_peft_export_of_a_full_run_is_refused(run: Path, tmp_path: Path) -> None:
    result = run_cli([str(FAIRSEQ2), "lm", "export_hf", str(run), str(tmp_path / "x"), "--peft"])
    assert result.returncode == 2 and "trained without `lora`" in result.stderr


def test_lora_run_on_another_runs_checkpoint_exports_on_that_base(
    run: Path, tiny_assets: Path, tmp_path: Path
) -> None:
    """A LoRA run from ``last_checkpoint`` of a previous run (as online rounds and the
    demo's DPO stage train): the export merges the adapters into that checkpoint, not
    into a card of the LoRA run's own, adapter-only checkpoints."""
    import yaml
    from fairseq2.models.llama import create_llama_model
    from fairseq2.nn import BatchLayout
    from transformers import AutoModelForCausalLM

    from fairseq2_preference.models.llama_config import llama_config
    from fairseq2_preference.models.lora import LoraConfig, apply_lora
    from fairseq2_preference.models.lora_checkpoint import read_adapters

    lora = tmp_path / "lora"
    train(
        lora, tiny_assets, "model.name=last_checkpoint", "reference_model.name=last_checkpoint",
        f"common.assets.prev_checkpoint_dir={run / 'checkpoints'}",
        "lora={rank: 4, alpha: 8, dropout: 0.0}", "optimizer.config.lr=0.05", *regime(2, 2),
    )  # fmt: skip
    export(lora, tmp_path / "merged")

    card = yaml.safe_load((run / "checkpoints" / "model.yaml").read_text())
    expected = create_llama_model(llama_config(card["model_config"]))
    base = run / "checkpoints" / "step_4" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    state = torch.load(base, map_location="cpu", weights_only=True)
    expected.load_state_dict(state.get("model", state))
    apply_lora(expected, LoraConfig(rank=4, alpha=8, dropout=0.0))
    adapters = read_adapters(lora / "checkpoints" / "step_2")
    expected.load_state_dict({**expected.state_dict(), **adapters})
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged"), dtype=torch.float32)
    with torch.no_grad():
        want = expected.eval()(IDS, BatchLayout.of(IDS))
        torch.testing.assert_close(merged(IDS).logits, want, atol=1e-4, rtol=0)
        assert (want - fairseq2_logits(run, 4)).abs().max() > 1e-3  # the adapters moved it
