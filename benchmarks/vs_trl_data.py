"""What both sides of ``vs_trl.py`` share: the checkpoint, the data and the figures.

Importable from this project's environment and from TRL's own (torch and
transformers only), so that both sides read the same weights and token ids and
compute their figures with the same formulas.

* the checkpoint: a seeded random ``transformers.LlamaForCausalLM`` saved in the
  Hugging Face layout; this project loads it with
  :mod:`fairseq2_preference.models.checkpoints`, TRL with ``from_pretrained``;
* the data: ``{"id", "prompt", "chosen", "rejected"}`` rows of token ids (each
  response ends with :data:`EOS_ID`), fixed-shape or chat-like lengths;
* the figures: real tokens are the tokens of the chosen and rejected sequences
  (prompt + response), the same count on both sides; computed tokens are the
  positions the model runs over, padding included; model FLOPs per step are
  ``6·N·computed`` for the policy (forward + backward) plus ``2·N·computed`` for
  the live reference (forward), ``N`` the parameters less the input embeddings.
"""

from __future__ import annotations

import json
import math
import random
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

PAD_ID, UNK_ID, EOS_ID = 0, 1, 2
"""Reserved ids; sampled tokens are drawn from ``[3, vocab)``."""


@dataclass(frozen=True)
class LlamaShape:
    dim: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int
    vocab: int
    max_seq_len: int = 4096


def save_random_llama(shape: LlamaShape, out_dir: Path, seed: int = 0) -> Path:
    """A seeded random ``LlamaForCausalLM`` (untied, float32) in the Hugging Face layout."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab,
        hidden_size=shape.dim,
        intermediate_size=shape.ffn,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.max_seq_len,
        rms_norm_eps=1e-5,
        rope_theta=500_000.0,
        tie_word_embeddings=False,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # fast init on a GPU
        model = LlamaForCausalLM(config)
    model.save_pretrained(str(out_dir))
    return out_dir


def _tokens(rng: random.Random, count: int, vocab: int) -> list[int]:
    return [rng.randrange(3, vocab) for _ in range(count)]


def _lognormal(rng: random.Random, mean: float, sigma: float, low: int, high: int) -> int:
    mu = math.log(mean) - sigma**2 / 2  # so that the mean is `mean`
    return min(high, max(low, round(rng.lognormvariate(mu, sigma))))


def make_rows(
    kind: str, pairs: int, vocab: int, seq_len: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Preference rows of token ids.

    ``fixed``: every sequence ``seq_len`` tokens, a prompt of ``min(64, seq_len/4)``.
    ``chat``: prompts of ~60 and responses of ~150 tokens on average, log-normal
    (σ 0.6), chosen and rejected lengths drawn independently; a sequence is at
    most ``seq_len`` tokens.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(pairs):
        if kind == "fixed":
            prompt_len = min(64, seq_len // 4)
            lens = [seq_len - prompt_len] * 2
        elif kind == "chat":
            prompt_len = _lognormal(rng, 60, 0.6, 4, seq_len // 4)
            lens = [_lognormal(rng, 150, 0.6, 2, seq_len - prompt_len) for _ in range(2)]
        else:
            raise ValueError(f"Unknown data kind {kind!r}: use 'fixed' or 'chat'.")
        prompt = _tokens(rng, prompt_len, vocab)
        chosen, rejected = ([*_tokens(rng, n - 1, vocab), EOS_ID] for n in lens)
        rows.append({"id": str(i), "prompt": prompt, "chosen": chosen, "rejected": rejected})
    return rows


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")


def read_rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def real_tokens(rows: list[dict[str, Any]]) -> int:
    """Tokens of the chosen and rejected sequences (prompt + response), no padding."""
    return sum(2 * len(r["prompt"]) + len(r["chosen"]) + len(r["rejected"]) for r in rows)


def param_counts(model: torch.nn.Module, input_embeddings: torch.nn.Module) -> tuple[int, int]:
    """All parameters, and ``N`` of the FLOP formula: all but the input embedding table."""
    total = sum(p.numel() for p in model.parameters())
    return total, total - sum(p.numel() for p in input_embeddings.parameters())


@dataclass
class Measurement:
    """One side's timed window; ``report`` turns it into the printed figures."""

    side: str
    seconds: float
    steps: int
    real_tokens: int
    model_real_tokens: int
    """Non-padding positions the model ran over (``real_tokens`` less what a side
    drops, e.g. the last token of each sequence that predicts nothing)."""
    computed_tokens: int
    params: tuple[int, int]
    """All parameters, and those the FLOP formula counts (:func:`param_counts`)."""
    losses: list[float]

    def report(self, device: torch.device, peak_tflops: float) -> dict[str, Any]:
        import transformers

        figures: dict[str, Any] = {
            "side": self.side,
            "device": device_name(device),
            "params": self.params[0],
            "timed_steps": self.steps,
            "ms_per_step": round(1000 * self.seconds / self.steps, 1),
            "real_tokens_per_s": round(self.real_tokens / self.seconds, 1),
            "padding_efficiency": round(self.model_real_tokens / self.computed_tokens, 4),
            "loss_step1": self.losses[0],
            "loss_step1_minus_ln2": self.losses[0] - math.log(2),
            "losses": self.losses,
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        }
        if device.type == "cuda":
            figures["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            flops = 8 * self.params[1] * self.computed_tokens
            figures["mfu"] = round(flops / self.seconds / (peak_tflops * 1e12), 4)
        else:  # Linux reports ru_maxrss in KiB
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            figures["peak_memory_gib"] = round(rss / 2**20, 3)
        return figures


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
