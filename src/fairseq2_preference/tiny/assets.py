"""A tiny Llama-architecture model, tokenizer and asset cards, built offline.

For tests and the CPU demo: nothing is downloaded. The tokenizer is a byte-level
BPE with the Llama 3 special tokens, loaded by fairseq2's ``llama`` tokenizer
family (``impl: hg``), so prompts get BOS and responses EOS exactly as with a
real Llama 3 tokenizer, and any text can be encoded. The model is randomly
initialised with a fixed seed and saved as a checkpoint a card points to.

``python -m fairseq2_preference.tiny [DIR]`` writes (DIR defaults to
:func:`~fairseq2_preference.tiny.cards.default_tiny_dir`, whose cards every
training run reads)::

    DIR/tokenizer/            tokenizer.json & co.
    DIR/model/model.pt        the initial weights
    DIR/cards/tiny.yaml       cards: tiny_llama, tiny_preference, tiny_instruction (+ splits)
    DIR/data/{preference,instruction}/{train,dev}/data.chunk.0000.jsonl   (the synthetic task)
    DIR/data/prompts/{train,dev}/data.chunk.0000.jsonl   its prompts, for online training
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.tiny.cards import TINY_DIR_VARIABLE, default_tiny_dir
from fairseq2_preference.tiny.task import (
    color_task_rows,
    instruction_rows,
    prompt_rows,
    write_jsonl_splits,
)

SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|finetune_right_pad_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)

MODEL_CARD = "tiny_llama"
DATASET_NAME = "tiny"


@dataclass(frozen=True)
class TinyModelSpec:
    model_dim: int = 64
    num_layers: int = 2
    num_attn_heads: int = 4
    num_key_value_heads: int = 2
    max_seq_len: int = 1024
    seed: int = 0

    def model_config(self, vocab_size: int) -> dict[str, object]:
        """``model_config`` of the card; ``ffn_inner_dim = 4·model_dim`` keeps HF export exact."""
        return {
            "model_dim": self.model_dim,
            "max_seq_len": self.max_seq_len,
            "vocab_size": vocab_size,
            "pad_idx": SPECIAL_TOKENS.index("<|finetune_right_pad_id|>"),
            "tied_embeddings": False,
            "num_layers": self.num_layers,
            "num_attn_heads": self.num_attn_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "ffn_inner_dim": 4 * self.model_dim,
            "ffn_inner_dim_multiplier": 1.0,
            "ffn_inner_dim_multiple_of": 16,
            "use_scaled_rope": False,
            "rope_theta": 10_000.0,
        }


def build_tokenizer(texts: Iterable[str], out_dir: Path, vocab_size: int = 512) -> int:
    """Train a byte-level BPE on ``texts``, save it in Hugging Face format; return its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tok,
        bos_token=SPECIAL_TOKENS[0],
        eos_token=SPECIAL_TOKENS[1],
        pad_token=SPECIAL_TOKENS[2],
    ).save_pretrained(str(out_dir))
    return int(tok.get_vocab_size())


def build_model(config: dict[str, object], seed: int, out_file: Path) -> None:
    """Create a randomly initialised Llama model from ``config`` and save its weights."""
    from fairseq2.models.llama import LLaMAConfig, create_llama_model

    torch.manual_seed(seed)
    model = create_llama_model(LLaMAConfig(**config))  # type: ignore[arg-type]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out_file)


def model_card(name: str, config: dict[str, object]) -> dict[str, object]:
    return {
        "name": name,
        "model_family": "llama",
        "model_arch": "llama3_2_1b",
        "model_config": config,
        "checkpoint": "../model/model.pt",
        "tokenizer": "../tokenizer",
        "tokenizer_family": "llama",
        "tokenizer_config": {"impl": "hg"},
    }


def dataset_cards(name: str, splits: Iterable[str]) -> list[dict[str, object]]:
    """``<name>_preference`` and ``<name>_instruction`` (all splits), and one card per split."""
    cards: list[dict[str, object]] = []
    for kind in ("preference", "instruction"):
        family, data = f"generic_{kind}", f"../data/{kind}"
        cards.append({"name": f"{name}_{kind}", "dataset_family": family, "data": data})
        for split in splits:
            cards.append(
                {
                    "name": f"{name}_{kind}_{split}",
                    "dataset_family": family,
                    "data": f"{data}/{split}",
                }
            )
    return cards


def write_cards(cards: Iterable[dict[str, object]], out_file: Path) -> None:
    atomic_write_text(out_file, yaml.safe_dump_all(list(cards), sort_keys=False))


def build_tiny_assets(
    out_dir: Path,
    spec: TinyModelSpec | None = None,
    corpus: Path | None = None,
    rejected_per_prompt: int = 2,
) -> Path:
    """Write tokenizer, model, synthetic data and cards under ``out_dir``; return the card dir.

    The tokenizer is trained on the synthetic task and, if given, on every string
    of the ``*.jsonl`` rows under ``corpus`` (e.g. prepared data to train on), so
    that such text encodes in few tokens.
    """
    spec = spec or TinyModelSpec()
    out_dir = out_dir.resolve()

    splits = color_task_rows(seed=spec.seed, rejected_per_prompt=rejected_per_prompt)
    write_jsonl_splits(splits, out_dir / "data" / "preference")
    write_jsonl_splits(instruction_rows(splits), out_dir / "data" / "instruction")
    write_jsonl_splits(prompt_rows(splits), out_dir / "data" / "prompts")

    texts = [row[key] for rows in splits.values() for row in rows for key in row if key != "id"]
    if corpus is not None:
        texts += corpus_texts(corpus)
    vocab_size = build_tokenizer(texts, out_dir / "tokenizer")

    config = spec.model_config(vocab_size)
    build_model(config, spec.seed, out_dir / "model" / "model.pt")

    cards = [model_card(MODEL_CARD, config), *dataset_cards(DATASET_NAME, splits)]
    write_cards(cards, out_dir / "cards" / "tiny.yaml")
    return out_dir / "cards"


def corpus_texts(corpus: Path) -> list[str]:
    rows = (json.loads(line) for f in sorted(corpus.rglob("*.jsonl")) for line in f.open())
    return [
        value
        for row in rows
        for key, value in row.items()
        if key != "id" and isinstance(value, str)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "out_dir",
        type=Path,
        nargs="?",
        default=default_tiny_dir(),
        help=f"where to write the assets (default: {default_tiny_dir()}, whose cards every "
        f"training command reads; ${TINY_DIR_VARIABLE} moves it)",
    )
    parser.add_argument(
        "--corpus", type=Path, help="jsonl data whose text the tokenizer learns too"
    )
    parser.add_argument(
        "--rejected-per-prompt",
        type=int,
        default=2,
        help="rejected colours per (prompt, trait): 7 gives 2,688 pairs (default 2: 768)",
    )
    args = parser.parse_args()
    card_dir = build_tiny_assets(
        args.out_dir, corpus=args.corpus, rejected_per_prompt=args.rejected_per_prompt
    )
    if card_dir == default_tiny_dir().resolve() / "cards":
        print(
            f"Tiny assets written to {args.out_dir}; every training command now knows their cards."
        )
    else:
        print(
            f"Tiny assets written; add `--config common.assets.user_paths=[{card_dir}]` to a "
            "command (or `common.assets.extra_paths: [...]` to a config)."
        )


if __name__ == "__main__":
    main()
