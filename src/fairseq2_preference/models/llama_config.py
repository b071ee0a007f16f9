"""``LLaMAConfig`` fields from a checkpoint's own description of its model.

A Hugging Face ``config.json`` and Meta's ``params.json`` each describe a Llama;
fairseq2 builds the model from a ``LLaMAConfig`` instead. :func:`hf_llama_config`
and :func:`meta_llama_config` give the fields that build the same network (or a
clear error for what fairseq2's Llama cannot express); :func:`llama_config`
turns them into a ``LLaMAConfig`` for loading outside a recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fairseq2_preference.errors import PreferenceConfigError

if TYPE_CHECKING:
    from fairseq2.models.llama import LLaMAConfig

FAIRSEQ2_RMS_NORM_EPS = 1e-5
"""The epsilon of fairseq2's ``RMSNorm`` in Llama models (not configurable)."""


def llama_config(fields: dict[str, Any]) -> LLaMAConfig:
    """A ``LLaMAConfig`` from the fields this module derives (for loading outside a recipe)."""
    from fairseq2.models.llama import LLaMAConfig, LLaMARoPEScaleConfig

    fields = dict(fields)
    rope = dict(fields.pop("rope_scale", {}))
    if "frequency_factors" in rope:
        rope["frequency_factors"] = tuple(rope["frequency_factors"])
    return LLaMAConfig(**fields, rope_scale=LLaMARoPEScaleConfig(**rope))


def hf_llama_config(hf: dict[str, Any], source: str = "config.json") -> dict[str, Any]:
    """``LLaMAConfig`` fields equal to a Hugging Face ``LlamaConfig`` (``config.json``).

    The FFN width is given exactly: fairseq2 computes ``ffn_inner_dim × scale ×
    multiplier`` rounded up to ``multiple_of``, so scale 1, multiplier 1 and
    multiple 1 make it ``intermediate_size``.
    """
    if hf.get("model_type") != "llama":
        raise PreferenceConfigError(
            f"{source}: `model_type` is {hf.get('model_type')!r}; only Llama checkpoints load "
            "by path. Qwen models load by name (e.g. `model.name=qwen25_7b_instruct`)."
        )
    _require(hf, source, "hidden_act", "silu")
    _require(hf, source, "attention_bias", False)
    _require(hf, source, "mlp_bias", False)
    _require(hf, source, "rms_norm_eps", FAIRSEQ2_RMS_NORM_EPS)
    model_dim, num_heads = int(hf["hidden_size"]), int(hf["num_attention_heads"])
    head_dim = hf.get("head_dim") or model_dim // num_heads
    if head_dim * num_heads != model_dim:
        raise PreferenceConfigError(
            f"{source}: `head_dim` × `num_attention_heads` ({head_dim} × {num_heads}) must "
            f"equal `hidden_size` ({model_dim}) for fairseq2's Llama."
        )
    config: dict[str, Any] = {
        "model_dim": model_dim,
        "max_seq_len": int(hf["max_position_embeddings"]),
        "vocab_size": int(hf["vocab_size"]),
        "pad_idx": hf.get("pad_token_id"),
        "tied_embeddings": bool(hf.get("tie_word_embeddings", False)),
        "num_layers": int(hf["num_hidden_layers"]),
        "num_attn_heads": num_heads,
        "num_key_value_heads": int(hf.get("num_key_value_heads") or num_heads),
        "ffn_inner_dim": int(hf["intermediate_size"]),
        "ffn_inner_dim_scale": 1.0,
        "ffn_inner_dim_multiplier": 1.0,
        "ffn_inner_dim_multiple_of": 1,
        "rope_theta": float(hf.get("rope_theta", 10_000.0)),
    }
    return config | _hf_rope_scaling(hf.get("rope_scaling"), source)


def meta_llama_config(params: dict[str, Any], tied_embeddings: bool) -> dict[str, Any]:
    """``LLaMAConfig`` fields of Meta's ``params.json``.

    ``params.json`` omits two things fairseq2 needs: whether embeddings are tied
    (read from the checkpoint's keys) and the RoPE scaling factor, which is
    ``rope_scaling_factor`` when present, else Meta's values for Llama 3.x: 32 for
    the tied 3.2 models (1B, 3B), 8 for the others.
    """
    num_heads = int(params["n_heads"])
    config: dict[str, Any] = {
        "model_dim": int(params["dim"]),
        "max_seq_len": int(params.get("max_seq_len", 8192)),
        "vocab_size": int(params["vocab_size"]),
        "tied_embeddings": tied_embeddings,
        "num_layers": int(params["n_layers"]),
        "num_attn_heads": num_heads,
        "num_key_value_heads": int(params.get("n_kv_heads") or num_heads),
        "ffn_inner_dim": 4 * int(params["dim"]),
        "ffn_inner_dim_multiplier": float(params.get("ffn_dim_multiplier") or 1.0),
        "ffn_inner_dim_multiple_of": int(params.get("multiple_of", 256)),
        "rope_theta": float(params.get("rope_theta", 10_000.0)),
    }
    _require(params, "params.json", "norm_eps", FAIRSEQ2_RMS_NORM_EPS)
    if params.get("use_scaled_rope"):
        factor = params.get("rope_scaling_factor") or (32.0 if tied_embeddings else 8.0)
        config["use_scaled_rope"] = True
        config["rope_scale"] = {"factor": float(factor)}
        config["max_seq_len"] = int(params.get("max_seq_len", 131_072))
    return config


def _hf_rope_scaling(scaling: dict[str, Any] | None, source: str) -> dict[str, Any]:
    if scaling is None:
        return {"use_scaled_rope": False}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind != "llama3":
        raise PreferenceConfigError(
            f"{source}: `rope_scaling` of type {kind!r} is not supported by fairseq2's Llama; "
            "only 'llama3' scaling (Llama 3.1 and later) is."
        )
    return {
        "use_scaled_rope": True,
        "rope_scale": {
            "factor": float(scaling["factor"]),
            "frequency_factors": [
                float(scaling["low_freq_factor"]),
                float(scaling["high_freq_factor"]),
            ],
            "original_context_length": int(scaling["original_max_position_embeddings"]),
        },
    }


def _require(config: dict[str, Any], source: str, key: str, expected: object) -> None:
    value = config.get(key, expected)
    if value != expected:
        raise PreferenceConfigError(
            f"{source}: `{key}` is {value!r}, but fairseq2's Llama only supports {expected!r}."
        )
