"""The ``reward_model`` judge: a sequence-classification head on a Llama (or any
``AutoModelForSequenceClassification``) loaded from a Hugging Face directory.

The reward of a completion is the model's first logit on ``src + completion +
suffix`` — the prompt formatted exactly as for training (so a reward model
trained on the same chat format reads what it was trained on), the tokenizer's
own special tokens added (BOS for Llama 3). Sequences are scored in batches of
similar length, padded on the right with ``config.pad_token_id``; transformers
pools at each sequence's last token that is not that id — as in the reward
model's own training — so a reward does not depend on its batch. (A model whose
pad id is its end-of-turn token therefore reads the reward before a ``suffix`` of
that token, as it was trained to.)
A model without a pad token is scored one sequence at a time. It runs in bf16
on the first CUDA device when there is one, float32 on the CPU.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from fairseq2_preference.online.judges import JudgeConfig, Scores, regroup


class RewardModelJudge:
    def __init__(self, config: JudgeConfig) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        assert config.path is not None  # check_judge
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(config.path)  # type: ignore[no-untyped-call]
        self.model = AutoModelForSequenceClassification.from_pretrained(
            config.path, torch_dtype=dtype
        ).to(self.device)
        self.model.eval()
        self.suffix = config.suffix
        pad = self.model.config.pad_token_id
        self.batch_size = config.batch_size if pad is not None else 1
        self.pad_id = pad if pad is not None else 0

    def score(
        self, prompts: Sequence[Mapping[str, Any]], completions: Sequence[Sequence[str]]
    ) -> Scores:
        texts = [
            str(row["src"]) + text + self.suffix
            for row, group in zip(prompts, completions, strict=True)
            for text in group
        ]
        flat = self.rewards(texts)
        return regroup(flat, completions)

    @torch.inference_mode()
    def rewards(self, texts: Sequence[str]) -> list[float]:
        encoded = [self.tokenizer(text)["input_ids"] for text in texts]
        order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
        rewards = [0.0] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            longest = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), longest), self.pad_id, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(batch):
                ids[row, : len(encoded[i])] = torch.tensor(encoded[i])
                mask[row, : len(encoded[i])] = 1
            logits = self.model(
                input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
            ).logits
            for row, i in enumerate(batch):
                rewards[i] = float(logits[row, 0].float())
        return rewards
