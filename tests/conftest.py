"""Session fixtures: tiny offline assets built once per test run."""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers  # noqa: F401  (sets the environment before fairseq2 is imported)


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tokenizer, model, synthetic data and cards (``<dir>/cards``), built once."""
    from fairseq2_preference.tiny.assets import build_tiny_assets

    out = tmp_path_factory.mktemp("tiny")
    build_tiny_assets(out)
    return out


@pytest.fixture(scope="session")
def tokenizer(tiny_assets: Path):  # type: ignore[no-untyped-def]
    from fairseq2.models.llama import LLaMATokenizerConfig, load_llama_tokenizer

    return load_llama_tokenizer(tiny_assets / "tokenizer", LLaMATokenizerConfig(impl="hg"))


@pytest.fixture(scope="session")
def hf_llama(tiny_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama in the Hugging Face layout (safetensors shards, tokenizer files)."""
    from hf_llama import build_hf_llama

    return build_hf_llama(tiny_assets / "tokenizer", tmp_path_factory.mktemp("hf") / "llama")


@pytest.fixture(scope="session")
def tiny_sft(tiny_assets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model after the demo's SFT (``<dir>/checkpoints``), trained once."""
    from helpers import train

    out = tmp_path_factory.mktemp("sft") / "run"
    train(out, tiny_assets, sft=True)
    return out
