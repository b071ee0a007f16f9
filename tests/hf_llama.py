"""A tiny Llama checkpoint in the Hugging Face and Meta layouts, built with ``transformers``.

Random weights, several safetensors shards, the tiny byte-level BPE tokenizer
(Llama 3 special tokens) with a chat template, a Llama 3.1-style RoPE scaling
and an FFN width that is not fairseq2's ``4 × model_dim`` default, so that a
config derived wrongly gives other logits.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

CHAT_TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
ROPE_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def build_hf_llama(tokenizer_dir: Path, out_dir: Path) -> Path:
    """Write ``config.json``, safetensors shards and tokenizer files to ``out_dir``."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out_dir))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16_384,
        rms_norm_eps=1e-5,
        rope_theta=500_000.0,
        rope_scaling=dict(ROPE_SCALING),
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.save_pretrained(str(out_dir), max_shard_size="150KB")
    return out_dir


def build_meta_llama(hf_dir: Path, out_dir: Path) -> Path:
    """The same weights in Meta's layout: ``consolidated.00.pth`` + ``params.json``."""
    from fairseq2.models.llama import convert_llama_state_dict
    from fairseq2.models.llama.interop import convert_to_ref_llama_state_dict
    from safetensors.torch import load_file

    from fairseq2_preference.models.checkpoints import read_checkpoint_dir
    from fairseq2_preference.models.llama_config import llama_config

    state: dict[str, object] = {}
    for shard in sorted(hf_dir.glob("*.safetensors")):
        state.update(load_file(shard))
    config = llama_config(read_checkpoint_dir(hf_dir).model_config)
    meta = convert_to_ref_llama_state_dict(convert_llama_state_dict(state, config))
    out_dir.mkdir(parents=True)
    torch.save(meta, out_dir / "consolidated.00.pth")
    hf = json.loads((hf_dir / "config.json").read_text())
    params = {
        "dim": hf["hidden_size"],
        "n_layers": hf["num_hidden_layers"],
        "n_heads": hf["num_attention_heads"],
        "n_kv_heads": hf["num_key_value_heads"],
        "vocab_size": hf["vocab_size"],
        "ffn_dim_multiplier": 0.5625,  # int(4·64·0.5625 · 2/3) = 96 = intermediate_size
        "multiple_of": 32,
        "norm_eps": 1e-5,
        "rope_theta": hf["rope_theta"],
        "use_scaled_rope": True,
        "max_seq_len": hf["max_position_embeddings"],
    }
    (out_dir / "params.json").write_text(json.dumps(params))
    return out_dir


def populate_hub_cache(hf_home: Path, repo_id: str, checkpoint: Path) -> None:
    """Lay ``checkpoint`` out as the Hugging Face hub cache does after a download:
    ``hub/models--org--name/{refs/main, snapshots/<revision>/...}``."""
    revision = "0" * 40
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / revision
    shutil.copytree(checkpoint, snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
