"""The batch a train unit receives: all sequences of ``N`` examples, packed or padded.

Each sequence is shifted *before* it is batched (inputs ``s[:-1]``, targets
``s[1:]``), so that in a packed stream no sequence predicts the next one's first
token. Which positions are scored is decided here, on the host, once: the batch
carries the flat indices of the scored positions, their target tokens and the
row each belongs to, so the log-prob engine needs no host sync to find them.
"""

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
class ScoredTokens(SupportsDeviceTransfer):
    """The positions of a batch whose log-probability counts, flattened.

    ``positions`` index the model's output positions, flattened (``row·W + t``
    when padded, the stream offset when packed); ``targets`` is the token each
    position predicts and ``rows`` the sequence it belongs to.
    """

    positions: Tensor
    targets: Tensor
    rows: Tensor
    counts: Tensor
    """Scored tokens per sequence, ``[k·N]`` int64."""

    @override
    def to(self, device: Device, *, non_blocking: bool = False) -> None:
        for name in ("positions", "targets", "rows", "counts"):
            setattr(self, name, getattr(self, name).to(device, non_blocking=non_blocking))


@dataclass
class PreferenceBatch(SupportsDeviceTransfer):
    """``N`` examples as ``k·N`` sequences for a single forward pass.

    Sequences ``[0, N)`` are the chosen responses (or the instruction targets)
    and, for preference data (``k = 2``), ``[N, 2N)`` the rejected ones, each
    preceded by its prompt. ``scored`` marks the tokens whose log-probability
    counts: the response tokens (and the prompt tokens too when
    ``mask_source_tokens`` is off), never padding.
    """

    inputs: SequenceBatch
    """The model inputs: ``[k·N, W]`` padded, or one packed ``[S]`` stream."""
    scored: ScoredTokens
    ids: list[str]
    num_responses: int
    """``k``: 2 for preference pairs, 1 for instruction rows."""

    token_counts: list[int]
    """Scored tokens per sequence, on the host (for metrics without a device sync)."""

    extras: dict[str, Tensor] = field(default_factory=dict)
    """Per-example numbers declared by the dataset's row schema, float32 ``[N]``."""

    reference_logps: Tensor | None = None
    """Summed reference log-probabilities per sequence, float32 ``[k·N]``, when the
    data provides them (a reference cache or scores in the rows); the unit then runs
    no reference model."""

    step: StepGroup | None = field(default=None, compare=False, repr=False)
    """The batches of this batch's optimizer step on this rank, for statistics taken
    over the whole step before any loss (e.g. KTO's reference point)."""

    @property
    def num_examples(self) -> int:
        return len(self.ids)

    @property
    def num_sequences(self) -> int:
        return self.num_examples * self.num_responses

    @property
    def has_rejected(self) -> bool:
        return self.num_responses == 2

    @property
    def num_chosen_tokens(self) -> int:
        return sum(self.token_counts[: self.num_examples])

    @property
    def num_computed_tokens(self) -> int:
        """Positions the model runs over, padding included."""
        return self.inputs.seqs.numel()

    @property
    def num_real_tokens(self) -> int:
        return self.inputs.num_elements

    @override
    def to(self, device: Device, *, non_blocking: bool = False) -> None:
        self.inputs.to(device, non_blocking=non_blocking)
        self.scored.to(device, non_blocking=non_blocking)
        for name, value in self.extras.items():
            self.extras[name] = value.to(device, non_blocking=non_blocking)
        if self.reference_logps is not None:
            self.reference_logps = self.reference_logps.to(device, non_blocking=non_blocking)


@dataclass
class StepGroup:
    """The micro-batches of one optimizer step on one rank, and what is computed
    once for all of them."""

    batches: list[PreferenceBatch]
    values: dict[str, Tensor] = field(default_factory=dict)


def response_half(batch: PreferenceBatch, index: int) -> PreferenceBatch:
    """The ``N`` sequences of response ``index`` (0 or 1) of a pair-shaped batch,
    as a batch of their own: slices of the stream (or rows), with no host sync."""
    if batch.num_responses != 2:
        raise ValueError("`batch` must hold two responses per example.")
    n = batch.num_examples
    inputs, scored = batch.inputs, batch.scored
    lens = list(inputs.seq_lens)
    counts = batch.token_counts
    first_tokens = sum(counts[:n])
    token_slice = slice(0, first_tokens) if index == 0 else slice(first_tokens, None)
    if inputs.packed:
        boundary = sum(lens[:n])
        offset = 0 if index == 0 else boundary
        seqs = inputs.seqs[:boundary] if index == 0 else inputs.seqs[boundary:]
        half = SequenceBatch(seqs, lens[:n] if index == 0 else lens[n:], packed=True)
    else:
        offset = 0 if index == 0 else n * inputs.seqs.size(1)
        rows = slice(0, n) if index == 0 else slice(n, None)
        half = SequenceBatch(inputs.seqs[rows], lens[rows])
    part = ScoredTokens(
        scored.positions[token_slice] - offset,
        scored.targets[token_slice],
        scored.rows[token_slice] - index * n,
        scored.counts[index * n : (index + 1) * n],
    )
    reference = batch.reference_logps
    return PreferenceBatch(
        half,
        part,
        batch.ids,
        1,
        counts[index * n : (index + 1) * n],
        batch.extras,
        None if reference is None else reference[index * n : (index + 1) * n],
    )


def collate_examples(
    examples: Sequence[dict[str, Any]], pad_idx: int, mask_source_tokens: bool, packed: bool
) -> PreferenceBatch:
    """Batch encoded examples (``{"id", "seqs": [k tensors], "prompt_len"}``).

    ``packed``: one stream without padding (needs a variable-length attention
    path, see :mod:`fairseq2_preference.engine.attention`); else a padded ``[k·N, W]``.
    """
    num_responses = len(examples[0]["seqs"])
    seqs = [ex["seqs"][j] for j in range(num_responses) for ex in examples]
    prompt_lens = [ex["prompt_len"] for ex in examples] * num_responses

    for ex in examples:
        if any(len(s) <= ex["prompt_len"] for s in ex["seqs"]):
            raise PreferenceDataError(
                f"Example id {ex['id']!r}: a response encodes to no token; check "
                "`dataset.target_encode_mode` and the row's text."
            )

    lengths = [len(s) - 1 for s in seqs]  # after the shift
    # Input position t predicts token t + 1; the first scored target is the first
    # response token (or the prompt's second token without source masking).
    first = [p - 1 if mask_source_tokens else 0 for p in prompt_lens]
    width = max(lengths)
    starts = torch.tensor(lengths).cumsum(0) - torch.tensor(lengths) if packed else None

    positions, targets, rows = [], [], []
    for row, (seq, begin) in enumerate(zip(seqs, first, strict=True)):
        offset = int(starts[row]) if starts is not None else row * width
        span = torch.arange(begin, len(seq) - 1)
        positions.append(span + offset)
        targets.append(seq[begin + 1 :])
        rows.append(torch.full((len(span),), row))
    counts = [len(p) for p in positions]

    if packed:
        inputs = SequenceBatch(torch.cat([s[:-1] for s in seqs]), lengths, packed=True)
    else:
        padded = pad_sequence([s[:-1] for s in seqs], batch_first=True, padding_value=pad_idx)
        inputs = SequenceBatch(padded, lengths)

    scored = ScoredTokens(
        torch.cat(positions), torch.cat(targets), torch.cat(rows), torch.tensor(counts)
    )
    extras = {
        name: torch.tensor([ex["numbers"][name] for ex in examples], dtype=torch.float32)
        for name in examples[0]["numbers"]
    }
    ids = [ex["id"] for ex in examples]
    return PreferenceBatch(inputs, scored, ids, num_responses, counts, extras)
