"""``fairseq2 lm export_hf RUN_DIR OUT [--step N]``: a run's checkpoint as a Hugging Face model.

fairseq2's Llama converter does the weights (key names, rotary permutation) and
most of ``config.json``; this command fixes what it gets wrong or leaves out
(notes on fairseq2 0.8.1, §10): ``intermediate_size`` is read from the weights
instead of assuming ``ffn_inner_dim = 4·model_dim``; ``bos/eos/pad_token_id``
are the ids of the tokenizer the run trained with instead of Llama 3's
128000/128001; the tokenizer files and a ``generation_config.json`` (stopping
at the end of a turn) are written next to the weights. The result loads with
``transformers.AutoModelForCausalLM.from_pretrained(OUT)`` and, for vLLM or
AlpacaEval, ``AutoTokenizer.from_pretrained(OUT)``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.lora import LoraConfig, merged_state_dict
from fairseq2_preference.models.lora_checkpoint import load_trained_lora_model
from fairseq2_preference.models.peft_export import write_peft_adapter

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
)
END_TOKENS = ("<|end_of_text|>", "<|eot_id|>", "<|eom_id|>")


def export_checkpoint(
    run_dir: Path, out_dir: Path, step: int | None = None, peft: bool = False
) -> Path:
    """Write checkpoint ``step`` (default: the last) of ``run_dir`` to ``out_dir``:
    the full model, LoRA adapters merged in; with ``peft``, a LoRA run's adapters
    alone in PEFT's format."""
    import torch
    from fairseq2 import init_fairseq2
    from fairseq2.assets import AssetStore
    from fairseq2.models.hg import HuggingFaceConfig, save_hugging_face_model
    from fairseq2.models.llama import get_llama_model_hub
    from fairseq2.models.llama.interop import _LLaMAHuggingFaceConverter

    out_dir = out_dir.resolve()
    if out_dir.exists():
        raise PreferenceConfigError(f"{out_dir} exists; choose a new output directory.")
    run_config = _run_config(run_dir)
    checkpoints = run_dir / "checkpoints"
    found = checkpoints.glob("step_*") if checkpoints.is_dir() else []
    steps = sorted((p.name for p in found), key=lambda name: int(name[5:]))
    missing = not steps if step is None else f"step_{step}" not in steps
    if missing:
        raise PreferenceConfigError(
            f"{checkpoints} has no checkpoint {'' if step is None else f'at step {step} '}"
            f"to export (found: {', '.join(steps) or 'none'}). Pass --step with one of them."
        )
    name = "last_checkpoint" if step is None else f"checkpoint_step_{step}"
    cards = checkpoints
    base = _checkpoint_base(run_config)
    if base is not None:  # a LoRA run on another run's checkpoint: its cards, not ours
        cards, name = base
    resolver = init_fairseq2(extras=lambda c: _register_assets(c, cards, run_config))
    store = resolver.resolve(AssetStore)  # type: ignore[type-abstract]
    hub = get_llama_model_hub()
    card = store.retrieve_card(name)
    if card.field("model_family").as_(str) != "llama":
        raise PreferenceConfigError("Only Llama models export to the Hugging Face format here.")
    config = hub.get_model_config(card)
    if run_config.get("lora") is None:
        if peft:
            raise PreferenceConfigError(
                f"--peft exports LoRA adapters, and {run_dir} trained without `lora`."
            )
        weights = dict(
            hub.load_model(card, device=torch.device("cpu"), dtype=torch.float32).state_dict()
        )
    else:
        step_dir = checkpoints / (steps[-1] if step is None else f"step_{step}")
        model, adapters = load_trained_lora_model(hub, store, run_config, config, step_dir)
        if peft:
            return _staged(out_dir, lambda staging: write_peft_adapter(
                staging, adapters, LoraConfig(**run_config["lora"]), config, _base_name(run_config)
            ))  # fmt: skip
        weights = merged_state_dict(model)
    converter = _LLaMAHuggingFaceConverter()
    hg_config = converter.to_hg_config(config)
    state = converter.to_hg_state_dict(weights, config)
    tokenizer_dir, vocab = _tokenizer(resolver, store, run_config["tokenizer"])
    gate = state["model.layers.0.mlp.gate_proj.weight"]
    assert isinstance(gate, torch.Tensor)
    fixed = {
        "intermediate_size": int(gate.shape[0]),
        "bos_token_id": vocab.bos_idx,
        "eos_token_id": vocab.eos_idx,
        "pad_token_id": vocab.pad_idx,
    }
    hg_config = HuggingFaceConfig({**hg_config.data, **fixed}, hg_config.kls_name, hg_config.arch)

    def write(staging: Path) -> None:
        save_hugging_face_model(staging, state, hg_config)
        copied = _copy_tokenizer_files(tokenizer_dir, staging)
        _write_generation_config(staging, vocab, copied)

    return _staged(out_dir, write)


def _staged(out_dir: Path, write: Callable[[Path], None]) -> Path:
    """``write`` into a directory beside ``out_dir``, renamed to it when complete."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as tmp:
        staging = Path(tmp) / "hf"
        staging.mkdir()
        write(staging)
        staging.rename(out_dir)
    return out_dir


def _base_name(run_config: dict[str, Any]) -> str:
    """What PEFT records as the base model: its directory, or the card's name."""
    section = run_config.get("model") or {}
    return str(section.get("path") or section.get("name"))


def _run_config(run_dir: Path) -> dict[str, Any]:
    file = run_dir / "config.yaml"
    if not file.is_file():
        raise PreferenceConfigError(
            f"{run_dir} is not a training run directory (no config.yaml): pass the OUTPUT_DIR "
            "of `fairseq2 lm preference_finetune` or `instruction_finetune`."
        )
    config = yaml.safe_load(file.read_text(encoding="utf-8"))
    return config if isinstance(config, dict) else {}


def _checkpoint_base(run_config: dict[str, Any]) -> tuple[Path, str] | None:
    """For a LoRA run whose base is a checkpoint of another run (``model.name:
    last_checkpoint`` or ``checkpoint_step_<N>`` of ``prev_checkpoint_dir``): that
    run's checkpoint directory and the base's card name. The LoRA run's own
    checkpoints hold adapters only and would shadow those card names."""
    if run_config.get("lora") is None:
        return None
    name = str((run_config.get("model") or {}).get("name"))
    previous = ((run_config.get("common") or {}).get("assets") or {}).get("prev_checkpoint_dir")
    if previous is None or not (name == "last_checkpoint" or name.startswith("checkpoint_step_")):
        return None
    return Path(previous), name


def _register_assets(container: Any, checkpoints: Path, run_config: dict[str, Any]) -> None:
    from fairseq2.composition import register_checkpoint_models, register_file_assets

    register_checkpoint_models(container, checkpoints)
    assets = (run_config.get("common") or {}).get("assets") or {}
    for path in [*(assets.get("extra_paths") or []), *(assets.get("user_paths") or [])]:
        register_file_assets(container, Path(path).expanduser())


def _tokenizer(resolver: Any, store: Any, section: dict[str, Any]) -> tuple[Path, Any]:
    """The directory of the run's tokenizer and its vocabulary as the run encoded it."""
    from fairseq2.assets import AssetDownloadManager
    from fairseq2.models.llama import LLaMATokenizerConfig, get_llama_tokenizer_hub

    hub = get_llama_tokenizer_hub()
    overrides = section.get("config_overrides") or {}
    if section.get("path"):
        path = Path(section["path"])
        config = LLaMATokenizerConfig(**overrides)
        tokenizer = hub.load_custom_tokenizer(path, config)
    else:
        card = store.retrieve_card(section["name"])
        config = dataclasses.replace(hub.get_tokenizer_config(card), **overrides)
        tokenizer = hub.load_tokenizer(card, config=config)
        uri = card.field("tokenizer").as_uri()
        path = resolver.resolve(AssetDownloadManager).download_tokenizer(uri, card.name)
    return (path if path.is_dir() else path.parent), tokenizer.vocab_info


def _copy_tokenizer_files(source: Path, target: Path) -> dict[str, int]:
    """Copy the Hugging Face tokenizer files; return the ids of Llama 3's end tokens."""
    import json

    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)
    if not (target / "tokenizer.json").is_file():
        raise PreferenceConfigError(
            f"{source} has no tokenizer.json: only Hugging Face tokenizers are exported. "
            "Copy a tokenizer.json of the same vocabulary into the export yourself."
        )
    added = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    return {t["content"]: int(t["id"]) for t in added if t["content"] in END_TOKENS}


def _write_generation_config(target: Path, vocab: Any, end_tokens: dict[str, int]) -> None:
    """Stop at the trained EOS and at any other Llama 3 end token, as Meta's configs do."""
    from transformers import GenerationConfig

    eos = [vocab.eos_idx, *sorted(i for i in end_tokens.values() if i != vocab.eos_idx)]
    GenerationConfig(  # type: ignore[no-untyped-call]
        bos_token_id=vocab.bos_idx,
        eos_token_id=eos if len(eos) > 1 else eos[0],
        pad_token_id=vocab.pad_idx,
    ).save_pretrained(str(target))


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="fairseq2 lm export_hf", description=__doc__.split("\n\n")[0].split(": ", 1)[1]
    )
    parser.add_argument("run_dir", type=Path, help="a training run's OUTPUT_DIR")
    parser.add_argument("out_dir", type=Path, help="where to write the Hugging Face model")
    parser.add_argument("--step", type=int, help="the checkpoint step (default: the last)")
    parser.add_argument(
        "--peft",
        action="store_true",
        help="a LoRA run: write its adapters in PEFT's format (adapter_config.json, "
        "adapter_model.safetensors) instead of the merged model",
    )
    args = parser.parse_args(list(argv))
    out = export_checkpoint(args.run_dir, args.out_dir, args.step, args.peft)
    how = (
        "peft.PeftModel.from_pretrained(<the base in the Hugging Face layout>, OUT)"
        if args.peft
        else "transformers.AutoModelForCausalLM.from_pretrained"
    )
    print(f"Exported to {out}: load it with {how}.")
