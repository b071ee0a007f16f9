"""Which judge a config names: checked before any sampling, built when scoring.

The model-backed judges (``reward_model``, ``openai``) are imported only when
chosen: their libraries (transformers, openai) load nothing otherwise.
"""

from __future__ import annotations

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
    if config.name == "reward_model" and (
        config.path is None or not (Path(config.path) / "config.json").is_file()
    ):
        raise PreferenceConfigError(
            f"judge.path={config.path!r} is not a Hugging Face model directory (no "
            "config.json): point it at a sequence-classification reward model."
        )
    if config.name == "openai" and not os.environ.get(config.api_key_env) and not config.base_url:
        raise PreferenceConfigError(
            f"The openai judge needs an API key in ${config.api_key_env}, or judge.base_url "
            "pointing at an OpenAI-compatible server."
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
