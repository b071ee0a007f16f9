"""Loading a Llama checkpoint from a local directory, with no asset card to write.

fairseq2 0.8.1 loads the weights of a directory in the Hugging Face layout
(``config.json`` + ``*.safetensors`` shards) and in Meta's original layout
(``consolidated.NN.pth`` + ``params.json``), and converts their key names; but
it builds the model from a fairseq2 ``LLaMAConfig``, not from ``config.json``
or ``params.json``. This module derives that config from the directory, so that
``model.path=/models/llama`` alone describes the model, and the tokenizer and
reference model can follow the same directory.

The config is given as ``config_overrides`` over fairseq2's default
``LLaMAConfig``: fairseq2 then loads the path exactly as if a card had named it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairseq2.logging import log
from fairseq2.recipe.config import ModelSection, ReferenceModelSection, TokenizerSection

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.models.llama_config import hf_llama_config, meta_llama_config

EOT_TOKEN = "<|eot_id|>"


@dataclass(frozen=True)
class LocalCheckpoint:
    """What fairseq2 needs to load the model and tokenizer of a directory."""

    path: Path
    model_config: dict[str, Any]
    tokenizer_config: dict[str, Any] | None = None
    """``tokenizer.config_overrides`` of the ``llama`` tokenizer family, or ``None``
    when the directory has no tokenizer."""
    chat_template: str | None = field(default=None, compare=False)
    """The tokenizer's own chat template (``tokenizer_config.json``), if any."""

    family: str = "llama"

    @property
    def tokenizer_path(self) -> Path:
        """What fairseq2's loader takes: the directory, or Meta's ``tokenizer.model`` file."""
        return (
            self.path
            if self.tokenizer_config is None or self.tokenizer_config["impl"] == "hg"
            else self.path / "tokenizer.model"
        )


def read_checkpoint_dir(path: Path) -> LocalCheckpoint:
    """Describe the Llama checkpoint in ``path`` (Hugging Face or Meta layout)."""
    path = Path(path).expanduser()
    if (path / "config.json").is_file():
        return LocalCheckpoint(
            path, hf_llama_config(_read_json(path / "config.json")), *_hf_tokenizer(path)
        )
    if (path / "params.json").is_file():
        params = _read_json(path / "params.json")
        return LocalCheckpoint(
            path,
            meta_llama_config(params, _meta_is_tied(path)),
            _meta_tokenizer(path, int(params.get("vocab_size", 0))),
        )
    raise PreferenceConfigError(
        f"{path} holds no model checkpoint fairseq2-preference can describe: expected a "
        "Hugging Face directory (config.json + *.safetensors) or Meta's original layout "
        "(params.json + consolidated.00.pth). For another layout, name an asset card in "
        "`model.name`, or set `model.family` and `model.config_overrides` yourself."
    )


def follow_policy(
    model: ModelSection | ReferenceModelSection,
    reference: ReferenceModelSection | None,
    tokenizer: TokenizerSection,
    default_name: str,
) -> None:
    """Describe a ``model.path`` directory, and point the reference model and the
    tokenizer at the policy's checkpoint unless they were set.

    "Set" means changed from the built-in default (``name: <default_name>``): a
    user who names another reference or tokenizer keeps it. A policy given by
    ``model.name`` brings the reference along (the tokenizer keeps its default,
    the Llama 3 Instruct tokenizer all Llama 3.x models share).
    """
    if reference is not None:
        _describe(reference)  # a reference by path loads like the policy by path
    if model.path is None:
        if model.name not in (None, default_name) and _is_default(reference, default_name):
            assert reference is not None
            reference.name = model.name
        return
    checkpoint = _describe(model)
    if checkpoint is None:
        return  # the user describes the model; fairseq2 validates it
    if _is_default(reference, default_name):
        assert reference is not None
        reference.name, reference.path, reference.family = None, model.path, model.family
        reference.config_overrides = model.config_overrides
    if _is_default(tokenizer, default_name):
        if checkpoint.tokenizer_config is None:
            log.warning(
                "{} has no tokenizer files; the tokenizer stays `{}`.", model.path, default_name
            )
            return
        tokenizer.name, tokenizer.path, tokenizer.family = None, checkpoint.tokenizer_path, "llama"
        tokenizer.config_overrides = checkpoint.tokenizer_config


def _describe(section: ModelSection | ReferenceModelSection) -> LocalCheckpoint | None:
    """Fill ``family`` and the model config of a ``path`` to a Llama directory in
    place (its ``name`` cleared: no "both name and path" warning); the checkpoint
    read, or ``None`` when there is no path or the user describes the model."""
    if section.path is None or section.family not in (None, "llama") or section.arch is not None:
        return None
    checkpoint = read_checkpoint_dir(Path(section.path))
    section.name, section.family = None, checkpoint.family
    section.config_overrides = _merged(checkpoint.model_config, section.config_overrides)
    return checkpoint


def describe_tokenizer_path(tokenizer: TokenizerSection) -> None:
    """Load an explicit ``tokenizer.path`` the way ``model.path`` loads a directory's.

    fairseq2's Llama tokenizer loader reads a SentencePiece or tiktoken file unless
    told ``impl: hg``; a Hugging Face directory (``tokenizer.json``, or that file
    itself) would fail as "not a valid SentencePiece model". Here it gets family
    ``llama`` and the ``impl``/``use_eot`` of :func:`read_checkpoint_dir`, and Meta's
    ``tokenizer.model`` (or its directory) the same. ``config_overrides`` given by the
    user win; another ``family`` is left to fairseq2.
    """
    if tokenizer.path is None or tokenizer.family not in (None, "llama"):
        return
    path = Path(tokenizer.path).expanduser()
    directory = path if path.is_dir() else path.parent
    if path.name in ("tokenizer.json", directory.name) and _has(directory, "tokenizer.json"):
        derived, _ = _hf_tokenizer(directory)
        tokenizer.path = directory
    elif path.name in ("tokenizer.model", directory.name) and _has(directory, "tokenizer.model"):
        params = directory / "params.json"
        vocab_size = int(_read_json(params).get("vocab_size", 0)) if params.is_file() else 0
        derived = _meta_tokenizer(directory, vocab_size)
        tokenizer.path = directory / "tokenizer.model"
    else:
        return
    tokenizer.name, tokenizer.family = None, "llama"  # the path, not a card, is loaded
    tokenizer.config_overrides = _merged(derived or {}, tokenizer.config_overrides)


def use_checkpoint_chat_template(tokenizer: object, section: TokenizerSection) -> None:
    """Give a tokenizer loaded from a directory that directory's own chat template.

    fairseq2's Llama tokenizer replaces any template with its built-in Llama 3
    one; a checkpoint that defines its own (a fine-tuned model, Meta's 3.1+
    templates with their system header) should render conversations its way.
    """
    template = chat_template(Path(section.path)) if section.path is not None else None
    model = getattr(tokenizer, "_model", None)  # fairseq2's HuggingFaceTokenModel
    hf_tokenizer = getattr(model, "_tok", None)
    if template is None or hf_tokenizer is None:
        return
    hf_tokenizer.chat_template = template
    log.info("Conversations use the chat template of {}.", section.path)


def _is_default(section: ReferenceModelSection | TokenizerSection | None, name: str) -> bool:
    return section is not None and section.name == name and section.path is None


def _merged(derived: dict[str, Any], overrides: object) -> dict[str, Any]:
    if overrides is None:
        return derived
    if not isinstance(overrides, dict):
        raise PreferenceConfigError("`config_overrides` must be a mapping of fields.")
    return derived | overrides


def _hf_tokenizer(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """fairseq2's ``llama`` tokenizer family over ``tokenizer.json``.

    EOS is ``<|eot_id|>`` whenever the vocabulary has it, base models included:
    training rows are in the Llama 3 chat format, whose responses end a turn
    (as the Instruct tokenizer the default configs use).
    """
    if not _has(path, "tokenizer.json"):
        return None, None
    vocab = _read_json(path / "tokenizer.json")
    added = {token.get("content") for token in vocab.get("added_tokens", [])}
    return {"impl": "hg", "use_eot": EOT_TOKEN in added}, chat_template(path)


def chat_template(path: Path) -> str | None:
    """The chat template of the tokenizer in ``path``: ``chat_template.jinja`` (how
    ``transformers`` >= 4.43 saves it) or ``tokenizer_config.json``'s field."""
    if _has(path, "chat_template.jinja"):
        return (path / "chat_template.jinja").read_text(encoding="utf-8")
    if _has(path, "tokenizer_config.json"):
        template = _read_json(path / "tokenizer_config.json").get("chat_template")
        return template if isinstance(template, str) else None
    return None


def _meta_tokenizer(path: Path, vocab_size: int) -> dict[str, Any] | None:
    """Llama 3's ``tokenizer.model`` is tiktoken (with ``<|eot_id|>``); Llama 2's SentencePiece."""
    if not _has(path, "tokenizer.model"):
        return None
    if vocab_size == 32_000:
        return {"impl": "sp"}
    return {"impl": "tiktoken", "use_eot": True}


def _meta_is_tied(path: Path) -> bool:
    import torch

    files = sorted(path.glob("consolidated.*.pth"))
    if not files:
        raise PreferenceConfigError(f"{path} has params.json but no consolidated.00.pth.")
    state = torch.load(files[0], map_location="meta", mmap=True, weights_only=True)
    return "output.weight" not in state


def _has(path: Path, name: str) -> bool:
    return (path / name).is_file()


def _read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as ex:
        raise PreferenceConfigError(f"{file} cannot be read as JSON: {ex}") from ex
    if not isinstance(data, dict):
        raise PreferenceConfigError(f"{file} must hold a JSON object.")
    return data
