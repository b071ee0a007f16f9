"""The batch a train unit receives: all sequences of ``N`` examples in one padded tensor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from fairseq2.datasets import SequenceBatch
from fairseq2.device import Device, SupportsDeviceTransfer
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from typing_extensions import override

from fairseq2_preference.errors import PreferenceDataError


@dataclass
class PreferenceBatch(SupportsDeviceTransfer):
    """``N`` examples as one ``[k·N, W]`` batch for a single forward pass.

    Rows ``[0, N)`` are the chosen responses (or the instruction targets) and,
    for preference data (``k = 2``), rows ``[N, 2N)`` the rejected ones, each
    preceded by its prompt. ``seqs.target_mask`` marks the tokens whose
    log-probability counts: the response tokens (and the prompt tokens too
    when ``mask_source_tokens`` is off), never padding.
    """

    seqs: SequenceBatch
    ids: list[str]
    num_responses: int
    """``k``: 2 for preference pairs, 1 for instruction rows."""

    extras: dict[str, Tensor] = field(default_factory=dict)
    """Per-example numbers declared by the dataset's row schema, float32 ``[N]``."""

    reference_logps: Tensor | None = None
    """Summed reference log-probs, float32 ``[k·N]`` in the batch's row order (chosen
    ``[0, N)``, rejected ``[N, 2N)``), when known without a live reference model
    (cached, or carried by the data rows); ``None`` otherwise."""

    @property
    def num_examples(self) -> int:
        return len(self.ids)

    @property
    def has_rejected(self) -> bool:
        return self.num_responses == 2

    @override
    def to(self, device: Device, *, non_blocking: bool = False) -> None:
        self.seqs.to(device, non_blocking=non_blocking)
        for name, value in self.extras.items():
            self.extras[name] = value.to(device, non_blocking=non_blocking)
        if self.reference_logps is not None:
            self.reference_logps = self.reference_logps.to(device, non_blocking=non_blocking)


def collate_examples(
    examples: Sequence[dict[str, Any]], pad_idx: int, mask_source_tokens: bool
) -> PreferenceBatch:
    """Pad encoded examples (``{"id", "seqs": [k tensors], "prompt_len"}``) into a batch."""
    num_responses = len(examples[0]["seqs"])
    seqs = [ex["seqs"][j] for j in range(num_responses) for ex in examples]
    prompt_lens = torch.tensor([ex["prompt_len"] for ex in examples] * num_responses)
    seq_lens = torch.tensor([len(s) for s in seqs])

    for ex in examples:
        if any(len(s) <= ex["prompt_len"] for s in ex["seqs"]):
            raise PreferenceDataError(
                f"Example id {ex['id']!r}: a response encodes to no token; check "
                "`dataset.target_encode_mode` and the row's text."
            )

    positions = torch.arange(int(seq_lens.max()))
    target_mask = positions < seq_lens[:, None]
    if mask_source_tokens:
        target_mask &= positions >= prompt_lens[:, None]

    padded = pad_sequence(seqs, batch_first=True, padding_value=pad_idx)
    batch = SequenceBatch(padded, seq_lens.tolist(), target_mask=target_mask)
    extras = {
        name: torch.tensor([ex["numbers"][name] for ex in examples], dtype=torch.float32)
        for name in examples[0]["numbers"]
    }
    return PreferenceBatch(batch, [ex["id"] for ex in examples], num_responses, extras)
