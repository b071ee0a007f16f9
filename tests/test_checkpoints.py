"""Real checkpoints in: a Llama directory by path (Hugging Face and Meta layouts)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.checkpoints import (
    describe_tokenizer_path,
    follow_policy,
    read_checkpoint_dir,
    use_checkpoint_chat_template,
)
from fairseq2_preference.models.llama_config import hf_llama_config, llama_config

from hf_llama import build_meta_llama

IDS = torch.tensor([[0, 17, 250, 33, 301, 98, 7, 5], [0, 300, 12, 44, 45, 46, 2, 2]])


@pytest.fixture(scope="session")
def meta_llama(hf_llama: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_meta_llama(hf_llama, tmp_path_factory.mktemp("meta") / "Llama3-tiny-Instruct")


def transformers_logits(hf_dir: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32)
    with torch.no_grad():
        return model(IDS).logits


def fairseq2_logits(path: Path) -> torch.Tensor:
    from fairseq2.models.llama import get_llama_model_hub
    from fairseq2.nn import BatchLayout

    config = llama_config(read_checkpoint_dir(path).model_config)
    model = get_llama_model_hub().load_custom_model(path, config, device=torch.device("cpu"))
    model.eval()
    with torch.no_grad():
        return model(IDS, BatchLayout.of(IDS))  # type: ignore[no-any-return]


def test_hf_directory_has_several_shards(hf_llama: Path) -> None:
    assert len(list(hf_llama.glob("*.safetensors"))) >= 2


def test_hf_layout_loads_with_transformers_logits(hf_llama: Path) -> None:
    expected = transformers_logits(hf_llama)
    torch.testing.assert_close(fairseq2_logits(hf_llama), expected, atol=1e-5, rtol=0)


def test_meta_layout_loads_with_the_same_logits(hf_llama: Path, meta_llama: Path) -> None:
    checkpoint = read_checkpoint_dir(meta_llama)
    assert checkpoint.model_config["tied_embeddings"] is False
    assert checkpoint.tokenizer_config is None  # no tokenizer.model in this directory
    torch.testing.assert_close(
        fairseq2_logits(meta_llama), transformers_logits(hf_llama), atol=1e-5, rtol=0
    )


def test_ffn_width_and_rope_come_from_config_json(hf_llama: Path) -> None:
    """A wrong FFN width would not even load; a wrong RoPE gives other logits (above)."""
    config = read_checkpoint_dir(hf_llama).model_config
    from fairseq2.models.llama import create_llama_model

    model = create_llama_model(llama_config(config))
    assert model.decoder.layers[0].ffn.gate_proj.weight.shape == (96, 64)  # type: ignore[union-attr,index]
    assert config["rope_scale"]["factor"] == 8.0 and config["use_scaled_rope"] is True


def test_tokenizer_and_chat_template_come_from_the_directory(hf_llama: Path) -> None:
    checkpoint = read_checkpoint_dir(hf_llama)
    assert checkpoint.tokenizer_config == {"impl": "hg", "use_eot": True}
    assert checkpoint.chat_template is not None and "<|eot_id|>" in checkpoint.chat_template


def test_reference_and_tokenizer_follow_the_policy_unless_set(hf_llama: Path) -> None:
    from fairseq2.recipe.config import ModelSection, ReferenceModelSection, TokenizerSection

    model = ModelSection(path=hf_llama, config_overrides={"max_seq_len": 128})
    reference = ReferenceModelSection(name="default")
    tokenizer = TokenizerSection(name="default")
    follow_policy(model, reference, tokenizer, "default")
    assert model.family == "llama" and model.config_overrides["max_seq_len"] == 128  # type: ignore[index]
    assert (reference.path, reference.name, reference.family) == (hf_llama, None, "llama")
    assert (tokenizer.path, tokenizer.family) == (hf_llama, "llama")

    model = ModelSection(path=hf_llama)
    reference, tokenizer = ReferenceModelSection(name="mine"), TokenizerSection(name="mine")
    follow_policy(model, reference, tokenizer, "default")
    assert (reference.name, reference.path, tokenizer.name) == ("mine", None, "mine")

    named = ModelSection(name="llama3_2_1b_instruct")
    reference = ReferenceModelSection(name="default")
    follow_policy(named, reference, TokenizerSection(name="default"), "default")
    assert reference.name == "llama3_2_1b_instruct"


def test_an_explicit_tokenizer_path_loads_like_the_models(
    hf_llama: Path, meta_llama: Path, tiny_assets: Path, tmp_path: Path
) -> None:
    """``tokenizer.path`` set by hand: a Hugging Face directory or its tokenizer.json
    (not "not a valid SentencePiece model"), Meta's tokenizer.model; the user's own
    overrides and other families are kept."""
    from fairseq2.recipe.config import TokenizerSection

    for given in (hf_llama, hf_llama / "tokenizer.json"):
        section = TokenizerSection(name="llama3_1_8b_instruct", path=given)
        describe_tokenizer_path(section)
        assert (section.name, section.path, section.family) == (None, hf_llama, "llama")
        assert section.config_overrides == {"impl": "hg", "use_eot": True}
    section = TokenizerSection(path=hf_llama, config_overrides={"use_eot": False})
    describe_tokenizer_path(section)
    assert section.config_overrides == {"impl": "hg", "use_eot": False}
    meta = tmp_path / "meta"
    shutil.copytree(meta_llama, meta)
    (meta / "tokenizer.model").write_text("")
    section = TokenizerSection(path=meta)
    describe_tokenizer_path(section)
    assert section.path == meta / "tokenizer.model"
    assert section.config_overrides == {"impl": "tiktoken", "use_eot": True}
    section = TokenizerSection(path=hf_llama, family="qwen")
    describe_tokenizer_path(section)
    assert (section.family, section.config_overrides) == ("qwen", None)

    # and a run with it: the tiny model's tokenizer directory given by path
    from helpers import regime, train

    metrics = train(
        tmp_path / "run", tiny_assets, f"tokenizer.path={tiny_assets / 'tokenizer'}",
        *regime(1, 1),
    )  # fmt: skip
    assert float(metrics[0]["DPO Loss"]) > 0  # type: ignore[arg-type]


def test_meta_tokenizer_is_tiktoken_loaded_from_its_file(meta_llama: Path, tmp_path: Path) -> None:
    meta = tmp_path / "meta"
    shutil.copytree(meta_llama, meta)
    (meta / "tokenizer.model").write_text("")
    checkpoint = read_checkpoint_dir(meta)
    assert checkpoint.tokenizer_config == {"impl": "tiktoken", "use_eot": True}
    assert checkpoint.tokenizer_path == meta / "tokenizer.model"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("model_type", "mistral", "only Llama checkpoints"),
        ("rms_norm_eps", 1e-6, "rms_norm_eps"),
        ("rope_scaling", {"rope_type": "yarn", "factor": 2.0}, "'yarn'"),
    ],
)
def test_unsupported_config_json_is_named(key: str, value: object, message: str) -> None:
    base = {
        "model_type": "llama",
        "hidden_size": 64,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "intermediate_size": 96,
        "vocab_size": 512,
        "max_position_embeddings": 256,
    }
    with pytest.raises(PreferenceConfigError, match=message):
        hf_llama_config({**base, key: value})


def test_a_directory_without_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PreferenceConfigError, match=r"config.json \+ \*.safetensors"):
        read_checkpoint_dir(tmp_path)


def test_a_directory_tokenizer_keeps_its_own_chat_template(hf_llama: Path) -> None:
    """fairseq2's Llama tokenizer installs its built-in template; the directory's wins."""
    from fairseq2.models.llama import LLaMATokenizerConfig, load_llama_tokenizer
    from fairseq2.recipe.config import TokenizerSection
    from transformers import AutoTokenizer

    chat = [{"role": "user", "content": "Describe the red fox."}]
    expected = AutoTokenizer.from_pretrained(str(hf_llama)).apply_chat_template(
        chat, tokenize=False
    )
    tokenizer = load_llama_tokenizer(hf_llama, LLaMATokenizerConfig(impl="hg", use_eot=True))
    encoder = tokenizer.create_encoder()
    assert encoder.apply_chat_template(chat, tokenize=False) != expected  # type: ignore[attr-defined]
    use_checkpoint_chat_template(tokenizer, TokenizerSection(path=hf_llama, family="llama"))
    assert encoder.apply_chat_template(chat, tokenize=False) == expected  # type: ignore[attr-defined]


def test_alpaca_eval_of_a_directory_uses_its_tokenizer(hf_llama: Path) -> None:
    from fairseq2.recipe.config import ReferenceModelSection

    from fairseq2_preference.evaluation.recipe import AlpacaEvalConfig

    config = AlpacaEvalConfig(model=ReferenceModelSection(path=hf_llama))
    config.structure(None)  # type: ignore[arg-type]
    assert (config.model.family, config.tokenizer.path) == ("llama", hf_llama)
