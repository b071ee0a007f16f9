"""The ``openai`` judge: an OpenAI-compatible chat model rates each completion 1–10.

Pointwise LLM-as-a-judge (Zheng et al. 2023, arXiv 2306.05685, "single answer
grading"): each (prompt, response) is rated alone, at temperature 0, and the
first integer of the reply is the score; a reply without one, or a request that
still fails after the client's retries, scores ``nan`` and that completion joins
no pair (the round's summary counts them). Any server speaking the
chat-completions API works (``base_url``: vLLM, TGI, ...). The key is read from
``api_key_env`` and never logged; ``$OPENAI_API_KEY`` is sent to OpenAI only — with
a ``base_url``, name your server's key variable in ``api_key_env`` (a local server
needs none).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fairseq2_preference.online.judges import OPENAI_KEY_ENV, JudgeConfig, Scores, regroup

DEFAULT_TEMPLATE = """Rate how well the response answers the prompt: helpful, correct, \
honest and clear. Reply with a single integer from 1 (useless or wrong) to 10 (excellent), \
and nothing else.

[Prompt]
{prompt}

[Response]
{response}"""

RATING = re.compile(r"-?\d+(?:\.\d+)?")


class OpenAIJudge:
    def __init__(self, config: JudgeConfig) -> None:
        from openai import APIError, OpenAI  # present: check_judge

        # OpenAI's own key never goes to another server unless named explicitly.
        own_key = config.base_url is not None and config.api_key_env == OPENAI_KEY_ENV
        key = None if own_key else os.environ.get(config.api_key_env)
        self.client = OpenAI(base_url=config.base_url, api_key=key or "sk-local")
        self.errors = APIError
        self.model = config.model
        self.template = config.template or DEFAULT_TEMPLATE
        self.max_workers = config.max_workers

    def score(
        self, prompts: Sequence[Mapping[str, Any]], completions: Sequence[Sequence[str]]
    ) -> Scores:
        requests = [
            (str(row["src"]), text)
            for row, group in zip(prompts, completions, strict=True)
            for text in group
        ]
        with ThreadPoolExecutor(self.max_workers) as pool:
            flat = list(pool.map(lambda r: self.rate(*r), requests))
        return regroup(flat, completions)

    def rate(self, prompt: str, response: str) -> float:
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                temperature=0.0,
                max_tokens=8,
                messages=[
                    {
                        "role": "user",
                        "content": self.template.format(prompt=prompt, response=response),
                    }
                ],
            )
        except self.errors:  # after the client's retries: unscored, like an unparsable reply
            return math.nan
        match = RATING.search(reply.choices[0].message.content or "")
        return float(match.group()) if match else math.nan
