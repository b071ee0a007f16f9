"""Turning a conversation into the ``src`` text a model is trained on.

``src`` carries the whole chat formatting up to and including the assistant
header; the response (``tgt_*``) is the bare reply text. The fairseq2
tokenizer adds BOS in front of ``src`` and EOS after each response, so neither
is written here — for Llama 3 Instruct that EOS must be ``<|eot_id|>``, which is
what the ``llama3_*_instruct`` cards configure (``use_eot: true``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol

from fairseq2_preference.data_prep.examples import Turn


class PromptFormatter(Protocol):
    slug: str
    """Short name used in dataset names, e.g. ``llama3``."""

    def __call__(self, turns: Sequence[Turn]) -> str: ...


class Llama3Formatter:
    """The Llama 3 Instruct chat format (as its tokenizer's chat template renders
    it, minus ``<|begin_of_text|>``)::

        <|start_header_id|>user<|end_header_id|>\\n\\n{text}<|eot_id|>...<|start_header_id|>assistant<|end_header_id|>\\n\\n
    """

    slug = "llama3"

    def __call__(self, turns: Sequence[Turn]) -> str:
        parts = [
            f"<|start_header_id|>{role}<|end_header_id|>\n\n{text.strip()}<|eot_id|>"
            for role, text in turns
        ]
        parts.append("<|start_header_id|>assistant<|end_header_id|>\n\n")
        return "".join(parts)


class ChatTemplateFormatter:
    """Any Hugging Face tokenizer's chat template, by hub name or local path.

    Renders with ``add_generation_prompt=True``. A leading BOS token in the
    rendering is removed, since the fairseq2 tokenizer adds its own. Make the
    training tokenizer's EOS the template's end-of-turn token.
    """

    def __init__(self, name_or_path: str) -> None:
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(name_or_path)  # type: ignore[no-untyped-call]
        if not getattr(self._tokenizer, "chat_template", None):
            raise ValueError(f"The tokenizer at {name_or_path!r} has no chat template.")
        stem = name_or_path.rstrip("/").rsplit("/", 1)[-1]
        self.slug = re.sub(r"[^a-z0-9]+", "_", stem.lower()).strip("_")

    def __call__(self, turns: Sequence[Turn]) -> str:
        messages = [{"role": role, "content": text.strip()} for role, text in turns]
        text: str = self._tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        bos = self._tokenizer.bos_token
        if bos and text.startswith(bos):
            text = text[len(bos) :]
        return text


def make_formatter(chat_template: str | None) -> PromptFormatter:
    """Llama 3 Instruct by default, else the chat template of ``chat_template``."""
    return Llama3Formatter() if chat_template is None else ChatTemplateFormatter(chat_template)
