"""Judges: a score for every sampled completion, from which rounds build pairs.

A judge sees each prompt row (``src`` and the fields it came with) and that
prompt's completions, and returns one float per completion; higher is better,
``nan`` means "could not be scored" (the completion joins no pair). Only the
order of a prompt's scores matters: ``best_vs_worst`` pairs its highest with
its lowest. Built in:

* ``contains`` — 1 if the completion contains the row's ``expected`` text (or one
  of a list of them), case-insensitively, else 0;
* ``gsm8k`` — 1 if the completion's final ``#### <number>`` equals the row's
  ``answer`` (a number, or a GSM8K solution ending in ``#### <number>``), else 0:
  the answer match of ``datasets/gsm8k_negatives_data_prep.py``;
* ``reward_model`` — a sequence-classification Llama from a Hugging Face
  directory (``online/reward_model.py``);
* ``openai`` — an OpenAI-compatible chat model rating each completion 1–10
  (``online/openai_judge.py``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from fairseq2_preference.data_prep.gsm8k import final_number
from fairseq2_preference.errors import PreferenceDataError

Scores = list[list[float]]
OPENAI_KEY_ENV = "OPENAI_API_KEY"


class Judge(Protocol):
    def score(
        self, prompts: Sequence[Mapping[str, Any]], completions: Sequence[Sequence[str]]
    ) -> Scores:
        """One score per completion of each prompt."""


@dataclass(kw_only=True)
class JudgeConfig:
    """Which judge scores the samples, and its options (each judge reads its own)."""

    name: str = "reward_model"
    """``contains``, ``gsm8k``, ``reward_model`` or ``openai``."""

    path: str | None = None
    """``reward_model``: a Hugging Face directory of a ``*ForSequenceClassification``
    model and its tokenizer (the first logit is the reward)."""

    suffix: str = ""
    """``reward_model``: text appended to every completion before scoring, as the
    reward model saw responses end in training (Llama 3 chat: ``<|eot_id|>``)."""

    batch_size: int = 8
    """``reward_model``: sequences per forward pass."""

    base_url: str | None = None
    """``openai``: an OpenAI-compatible server (default: OpenAI's API)."""

    model: str = "gpt-4o-mini"
    """``openai``: the chat model that rates."""

    api_key_env: str = OPENAI_KEY_ENV
    """``openai``: the environment variable holding the API key (never logged); with
    ``base_url`` set, ``OPENAI_API_KEY`` is not sent: name the server's own variable."""

    max_workers: int = 8
    """``openai``: concurrent requests."""

    template: str | None = None
    """``openai``: the rating request, with ``{prompt}`` and ``{response}``; default:
    ``online/openai_judge.py``'s 1–10 rubric."""

    field: str | None = None
    """``contains`` / ``gsm8k``: the row field holding the expected text or answer
    (default ``expected`` / ``answer``)."""


def regroup(flat: Sequence[float], completions: Sequence[Sequence[str]]) -> Scores:
    """Scores of all completions, in order, back into one list per prompt."""
    scores: Scores = []
    start = 0
    for group in completions:
        scores.append(list(flat[start : start + len(group)]))
        start += len(group)
    return scores


def _field(row: Mapping[str, Any], name: str, judge: str) -> Any:
    if row.get(name) is None:
        raise PreferenceDataError(
            f"Prompt {row.get('id')!r}: the {judge} judge needs a '{name}' field on every "
            f"prompt row (or set judge.field to the field that holds it)."
        )
    return row[name]


@dataclass(frozen=True)
class RuleJudge(ABC):
    """A rule scoring each completion against one field of its prompt row."""

    field: str
    name: ClassVar[str]

    def score(
        self, prompts: Sequence[Mapping[str, Any]], completions: Sequence[Sequence[str]]
    ) -> Scores:
        return [
            self.rule(row, _field(row, self.field, self.name), texts)
            for row, texts in zip(prompts, completions, strict=True)
        ]

    @abstractmethod
    def rule(self, row: Mapping[str, Any], value: Any, texts: Sequence[str]) -> list[float]:
        """The scores of ``texts``, completions of ``row`` whose ``field`` holds ``value``."""


@dataclass(frozen=True)
class ContainsJudge(RuleJudge):
    name: ClassVar[str] = "contains"

    def rule(self, row: Mapping[str, Any], value: Any, texts: Sequence[str]) -> list[float]:
        wanted = [value] if isinstance(value, str) else list(value)
        return [float(any(w.lower() in text.lower() for w in wanted)) for text in texts]


@dataclass(frozen=True)
class Gsm8kJudge(RuleJudge):
    name: ClassVar[str] = "gsm8k"

    def rule(self, row: Mapping[str, Any], value: Any, texts: Sequence[str]) -> list[float]:
        gold = float(value) if isinstance(value, int | float) else final_number(str(value))
        if gold is None:
            raise PreferenceDataError(
                f"Prompt {row.get('id')!r}: '{self.field}' is neither a number nor a "
                "solution ending in '#### <number>'."
            )
        values = [final_number(text) for text in texts]
        return [float(v is not None and abs(v - gold) < 1e-6) for v in values]
