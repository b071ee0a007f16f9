"""Loading a trained model with fairseq2 and sampling from it, for data mining and evaluation.

A model is named the way recipe configs name it: an asset card (built-in, from
``--asset_path`` directories, or ``checkpoint_step_<N>`` / ``last_checkpoint`` of a
run's ``checkpoints/`` directory). Prompts are ``src`` texts, formatted exactly
as for training; the tokenizer adds BOS, generation stops at its EOS, and the
returned texts have special tokens removed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.models.clm import CausalLM
from torch.nn.utils.rnn import pad_sequence


@dataclass(frozen=True)
class SamplingOptions:
    temperature: float = 0.7
    """0 means greedy decoding (beam search of width 1)."""
    top_p: float = 0.9
    max_gen_len: int = 512
    num_samples: int = 1
    """Completions per prompt (sampling only)."""


def init_assets(asset_paths: Sequence[Path] = (), checkpoint_dir: Path | None = None) -> None:
    """Initialise fairseq2 for this process with extra card directories and a run's
    checkpoints. Call once, before loading anything."""
    from fairseq2 import init_fairseq2
    from fairseq2.composition import register_checkpoint_models, register_file_assets
    from fairseq2.runtime.dependency import DependencyContainer

    def extras(container: DependencyContainer) -> None:
        for path in asset_paths:
            register_file_assets(container, Path(path).expanduser().resolve())
        if checkpoint_dir is not None:
            register_checkpoint_models(container, Path(checkpoint_dir).expanduser().resolve())

    init_fairseq2(extras=extras)


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def load(model_name: str, tokenizer_name: str, device: torch.device) -> tuple[CausalLM, Tokenizer]:
    """The model (eval mode, bf16 on GPU, fp32 on CPU) and tokenizer named by asset cards."""
    from fairseq2.data.tokenizers import load_tokenizer
    from fairseq2.models import load_model

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = load_model(model_name, device=device, dtype=dtype)
    if not isinstance(model, CausalLM):
        raise ValueError(f"{model_name} is not a causal language model.")
    return model.eval(), load_tokenizer(tokenizer_name)


@torch.inference_mode()
def generate(
    model: CausalLM,
    tokenizer: Tokenizer,
    prompts: Sequence[str],
    options: SamplingOptions,
    batch_size: int = 16,
    device: torch.device | None = None,
) -> list[list[str]]:
    """``options.num_samples`` completions (one if greedy) for each prompt, in order."""
    from fairseq2.generation.beam_search import BeamSearchSequenceGenerator
    from fairseq2.generation.sampling import SamplingSequenceGenerator, TopPSampler
    from fairseq2.nn import BatchLayout

    device = device or next(model.parameters()).device
    generator: BeamSearchSequenceGenerator | SamplingSequenceGenerator
    if options.temperature == 0.0:
        generator = BeamSearchSequenceGenerator(
            model,
            tokenizer.vocab_info,
            beam_size=1,
            max_gen_len=options.max_gen_len,
        )
    else:
        generator = SamplingSequenceGenerator(
            model,
            tokenizer.vocab_info,
            TopPSampler(p=options.top_p),
            num_gens=options.num_samples,
            max_gen_len=options.max_gen_len,
            temperature=options.temperature,
        )
    encode = tokenizer.create_encoder(mode="prompt")
    decode = tokenizer.create_decoder(skip_special_tokens=True)
    pad = tokenizer.vocab_info.pad_idx or 0

    completions: list[list[str]] = []
    for chunk in _chunks(prompts, batch_size):
        encoded = [encode(prompt) for prompt in chunk]
        seqs = pad_sequence(encoded, batch_first=True, padding_value=pad).to(device)
        layout = BatchLayout.of(seqs, [len(e) for e in encoded])
        output = generator(seqs, layout)
        for hypotheses in output.hypotheses:
            completions.append([decode(h.seq).strip() for h in hypotheses])
    return completions


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
