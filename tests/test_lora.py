"""LoRA: a frozen base, adapters that start at zero, the reference as the base with its
adapters off, adapter-only checkpoints, and exports (merged, and PEFT's format)."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fairseq2.models.llama import LLaMAConfig, create_llama_model
from fairseq2.nn import BatchLayout

from fairseq2_preference.models.lora import (
    LoraConfig,
    adapters_disabled,
    apply_lora,
    is_adapter_key,
    merged_state_dict,
)
from fairseq2_preference.tiny.assets import build_model, model_card, write_cards

from helpers import read_metrics, regime, train

LORA = "lora={rank: 8, alpha: 16, dropout: 0.0}"
FAST = "optimizer.config.lr=0.01"


def tiny_llama(vocab: int = 512, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    config = LLaMAConfig(
        model_dim=64, max_seq_len=128, vocab_size=vocab, pad_idx=2, num_layers=2,
        num_attn_heads=4, num_key_value_heads=2, ffn_inner_dim=256,
    )  # fmt: skip
    return create_llama_model(config)


def logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    model.eval()  # no adapter dropout
    with torch.no_grad():
        return model(ids, BatchLayout.of(ids))  # type: ignore[no-any-return]


def randomise_adapters(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if is_adapter_key(name):
                param.normal_(0, 0.05)


IDS = torch.randint(3, 500, (2, 12), generator=torch.Generator().manual_seed(0))


def test_adapters_start_at_zero_and_switch_off_to_the_base() -> None:
    base = tiny_llama()
    model = tiny_llama()
    wrapped = apply_lora(model, LoraConfig(rank=4, target_modules="all_linear"))
    assert len(wrapped) == 2 * 7 and all(".layers." in name for name in wrapped)
    torch.testing.assert_close(logits(model, IDS), logits(base, IDS), rtol=0, atol=0)
    randomise_adapters(model)
    assert not torch.allclose(logits(model, IDS), logits(base, IDS))
    with adapters_disabled(model):
        torch.testing.assert_close(logits(model, IDS), logits(base, IDS), rtol=0, atol=0)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(is_adapter_key(name) for name in trainable)


@pytest.mark.parametrize(
    ("targets", "count"),
    [("attention", 4), ("all_linear", 7), (r"self_attn\.(q_proj|v_proj)", 2), (r"ffn\.\w+", 3)],
)
def test_target_modules_by_preset_or_expression(targets: str, count: int) -> None:
    assert len(apply_lora(tiny_llama(), LoraConfig(target_modules=targets))) == 2 * count


def test_bad_target_modules_are_named() -> None:
    assert "not a preset nor a regular expression" in str(
        LoraConfig(target_modules="q_proj(").validate()
    )
    with pytest.raises(ValueError, match="matches no linear layer"):
        apply_lora(tiny_llama(), LoraConfig(target_modules="nothing_here"))


def test_merged_weights_give_the_adapted_models_logits() -> None:
    model = tiny_llama()
    apply_lora(model, LoraConfig(rank=4))
    randomise_adapters(model)
    merged = tiny_llama(seed=1)
    merged.load_state_dict(merged_state_dict(model))
    torch.testing.assert_close(logits(merged, IDS), logits(model, IDS), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def vocab_32k(tiny_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's tokenizer and data with a 32,768-row vocabulary (a real-size
    embedding table, as Llama 2's) on a tiny model: the card ``tiny_llama_32k``."""
    root = tmp_path_factory.mktemp("vocab32k")
    card = next(yaml.safe_load_all((tiny_assets / "cards" / "tiny.yaml").read_text()))
    config = {**card["model_config"], "vocab_size": 32_768}
    build_model(config, seed=0, out_file=root / "model" / "model.pt")
    big = model_card("tiny_llama_32k", config) | {"tokenizer": str(tiny_assets / "tokenizer")}
    write_cards([big], root / "cards" / "tiny32k.yaml")
    return root


def digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].detach().float().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.slow
def test_lora_run_at_a_real_vocabulary(tmp_path: Path, tiny_assets: Path, vocab_32k: Path) -> None:
    """Step 1 is ln 2 (the reference is the base, adapters off); only adapters
    change; a checkpoint is a few percent of the model; resuming repeats the
    uninterrupted run exactly."""
    cards = f"common.assets.user_paths=[{vocab_32k / 'cards'}]"
    model = ("model.name=tiny_llama_32k", "reference_model.name=tiny_llama_32k", cards)
    straight = train(tmp_path / "straight", tiny_assets, *model, LORA, FAST, *regime(6, 3))
    assert float(straight[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=1e-6)  # type: ignore[arg-type]

    out = tmp_path / "resumed"
    train(out, tiny_assets, *model, LORA, FAST, *regime(3, 3))
    resumed = train(out, tiny_assets, *model, LORA, FAST, *regime(6, 3))
    assert [float(m["Loss"]) for m in resumed[3:]] == [float(m["Loss"]) for m in straight[3:]]  # type: ignore[arg-type]

    step = out / "checkpoints" / "step_6" / "model" / "pp_00" / "tp_00" / "sdp_00.pt"
    adapters: dict[str, Any] = torch.load(step, weights_only=True)
    assert adapters and all(is_adapter_key(key) for key in adapters)
    full = (vocab_32k / "model" / "model.pt").stat().st_size
    assert step.stat().st_size <= 0.05 * full

    assert any(float(v.abs().max()) > 0 for k, v in adapters.items() if k.endswith("lora_B"))


def test_dpo_steps_change_the_adapters_and_nothing_else() -> None:
    """Hash the base before and after AdamW steps of DPO at a 32k vocabulary: only
    ``lora_A``/``lora_B`` move (fused AdamW, weight decay on, gradient clipping)."""
    from fairseq2_preference.criteria import create_criterion
    from fairseq2_preference.recipe.units import PreferenceComputer

    from test_units import batch_of, make_examples

    model = tiny_llama(vocab=32_768).train()
    apply_lora(model, LoraConfig(rank=4))
    base_before = digest({k: v for k, v in model.state_dict().items() if not is_adapter_key(k)})
    adapters_before = digest({k: v for k, v in model.state_dict().items() if is_adapter_key(k)})
    computer = PreferenceComputer(model, None, create_criterion("dpo"), reference_is_base=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    for seed in range(3):
        step = computer(batch_of(make_examples(4, seed=seed, vocab=500), packed=True))
        (step.loss / step.num_targets).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        if seed == 0:
            assert float(step.pair_losses.mean()) == pytest.approx(math.log(2), abs=1e-6)
    base_after = digest({k: v for k, v in model.state_dict().items() if not is_adapter_key(k)})
    adapters_after = digest({k: v for k, v in model.state_dict().items() if is_adapter_key(k)})
    assert base_after == base_before and adapters_after != adapters_before


@pytest.mark.slow
def test_lora_dpo_generalises_on_the_demo_task(tmp_path: Path, tiny_assets: Path) -> None:
    """The demo's held-out prompts with adapters alone trained."""
    out = tmp_path / "run"
    metrics = train(out, tiny_assets, "lora={rank: 16, alpha: 32}", "optimizer.config.lr=0.01")
    assert float(metrics[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=1e-6)  # type: ignore[arg-type]
    valid = read_metrics(out, "valid")
    assert float(valid[-1]["Rewards/Accuracies"]) > 0.8  # type: ignore[arg-type]


@pytest.mark.slow
def test_lora_fills_and_reads_the_reference_cache_with_its_base(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """``reference_model.cache: auto`` under LoRA: the base (adapters off) fills the
    cache, no reference model is loaded, and training reads it (step 1: ln 2)."""
    out = tmp_path / "run"
    cache = f"reference_model.cache_dir={tmp_path / 'cache'}"
    metrics = train(
        out, tiny_assets, LORA, FAST, "reference_model.cache=auto", cache, *regime(2, 2)
    )
    assert float(metrics[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=1e-6)  # type: ignore[arg-type]
    log = (out / "logs" / "rank_0.log").read_text()
    assert "Training from cached reference log-probs" in log
    assert "Loading tiny_llama model" in log and log.count("Loading tiny_llama model") == 1
    assert list((tmp_path / "cache").rglob("*.json"))


@pytest.mark.distributed
@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_processes_train_the_adapters_like_one(
    tmp_path: Path, tiny_assets: Path, parallelism: str
) -> None:
    """FSDP2 shards the frozen base and the adapters layer by layer; DDP reduces the
    adapters' gradients alone. Either way 2 × 4 pairs give 1 × 8 pairs' steps."""
    from test_distributed import single, torchrun

    one = single(tmp_path / "one", tiny_assets, LORA, FAST, "dataset.batch_size=8")
    two = torchrun(
        tmp_path / "two", tiny_assets, LORA, FAST, "dataset.batch_size=4",
        f"trainer.data_parallelism={parallelism}",
    )  # fmt: skip
    assert float(one[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=1e-6)  # type: ignore[arg-type]
    for a, b in zip(two, one, strict=True):
        for key in ("Loss", "Rewards/Margins", "Gradient Norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key  # type: ignore[arg-type]
    shards = list((tmp_path / "two" / "checkpoints" / "step_6" / "model").rglob("sdp_*.pt"))
    assert shards and all(
        all(is_adapter_key(k) for k in torch.load(f, weights_only=True)) for f in shards
    )


def test_qlora_base_is_quantised_and_is_the_reference() -> None:
    """NF4 and int8 bases (bitsandbytes, on the CPU here): close to the float32 model,
    adapters still at zero, and the adapters off give the quantised base itself."""
    from fairseq2_preference.models.quantization import QuantizedProjection, quantize_base

    pytest.importorskip("bitsandbytes")
    reference = logits(tiny_llama(), IDS)
    for kind, tolerance in (("nf4", 0.3), ("int8", 0.05)):  # 4 bits of random weights
        model = tiny_llama()
        apply_lora(model, LoraConfig(rank=4))
        assert quantize_base(model, kind, torch.float32) == 2 * 7  # type: ignore[arg-type]
        assert sum(isinstance(m, QuantizedProjection) for m in model.modules()) == 2 * 7
        quantized = logits(model, IDS)
        assert float((quantized - reference).norm() / reference.norm()) < tolerance, kind
        randomise_adapters(model)
        with adapters_disabled(model):
            torch.testing.assert_close(logits(model, IDS), quantized, rtol=0, atol=0)


def test_qlora_nf4_on_the_cpu_names_a_layer_it_cannot_pack() -> None:
    from fairseq2_preference.models.quantization import quantize_base

    pytest.importorskip("bitsandbytes")
    torch.manual_seed(0)
    model = create_llama_model(LLaMAConfig(
        model_dim=64, max_seq_len=128, vocab_size=512, num_layers=1, num_attn_heads=4,
        num_key_value_heads=2, ffn_inner_dim=256, ffn_inner_dim_multiple_of=16,
    ))  # fmt: skip
    with pytest.raises(ValueError, match=r"ffn\.gate_proj has 176 outputs.*multiple of 32"):
        quantize_base(model, "nf4", torch.float32)


@pytest.mark.slow
def test_qlora_int8_trains_from_ln2_and_resumes(tmp_path: Path, tiny_assets: Path) -> None:
    pytest.importorskip("bitsandbytes")
    qlora = "lora={rank: 8, alpha: 16, dropout: 0.0, quantize_base: int8}"
    out = tmp_path / "run"
    first = train(out, tiny_assets, qlora, FAST, *regime(2, 2))
    assert float(first[0]["DPO Loss"]) == pytest.approx(math.log(2), abs=1e-6)  # type: ignore[arg-type]
    resumed = train(out, tiny_assets, qlora, FAST, *regime(4, 2))
    assert [m["Step"] for m in resumed] == [1, 2, 3, 4]
    assert float(resumed[-1]["DPO Loss"]) < math.log(2)  # type: ignore[arg-type]
    assert (
        "QLoRA: 14 frozen linear layers stored in int8" in (out / "logs" / "rank_0.log").read_text()
    )
