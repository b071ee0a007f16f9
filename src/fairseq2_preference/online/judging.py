"""Which judge a config names: checked before any sampling, built when scoring.

The model-backed judges (``reward_model``, ``openai``) are imported only when
chosen: their libraries (transformers, openai) load nothing otherwise.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.online.judges import ContainsJudge, Gsm8kJudge, Judge, JudgeConfig


def check_judge(config: JudgeConfig) -> None:
    """Fail before any sampling on a judge that cannot be built (no model is loaded)."""
    if config.name not in ("contains", "gsm8k", "reward_model", "openai"):
        raise PreferenceConfigError(
            f"Unknown judge '{config.name}': use contains, gsm8k, reward_model or openai."
        )
    if config.batch_size < 1 or config.max_workers < 1:
        raise PreferenceConfigError("`judge.batch_size` and `judge.max_workers` must be >= 1.")
    if config.name == "reward_model":
        _check_reward_model(config.path)
    if config.name == "openai" and importlib.util.find_spec("openai") is None:
        raise PreferenceConfigError(
            "The openai judge needs the `openai` package: ./setup.sh --extras eval "
            "(or pip install openai)."
        )
    if config.name == "openai" and not os.environ.get(config.api_key_env) and not config.base_url:
        raise PreferenceConfigError(
            f"The openai judge needs an API key in ${config.api_key_env}, or judge.base_url "
            "pointing at an OpenAI-compatible server."
        )


def _check_reward_model(path: str | None) -> None:
    config_file = None if path is None else Path(path) / "config.json"
    if config_file is None or not config_file.is_file():
        raise PreferenceConfigError(
            f"judge.path={path!r} is not a Hugging Face model directory (no "
            "config.json): point it at a sequence-classification reward model."
        )
    architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures")
    if not architectures or not all(a.endswith("ForSequenceClassification") for a in architectures):
        raise PreferenceConfigError(
            f"judge.path={path!r} holds {architectures or 'no architectures'}, not a "
            "*ForSequenceClassification reward model: transformers would add an untrained "
            "reward head and the rounds would train on random preferences."
        )


def create_judge(config: JudgeConfig) -> Judge:
    check_judge(config)
    if config.name == "contains":
        return ContainsJudge(config.field or "expected")
    if config.name == "gsm8k":
        return Gsm8kJudge(config.field or "answer")
    if config.name == "reward_model":
        from fairseq2_preference.online.reward_model import RewardModelJudge

        return RewardModelJudge(config)
    from fairseq2_preference.online.openai_judge import OpenAIJudge

    return OpenAIJudge(config)
