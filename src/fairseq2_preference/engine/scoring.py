"""Per-sequence log-probability sums of a batch: the one engine of every forward.

Policy, reference, the NLL term, evaluation and the reference cache all score a
:class:`PreferenceBatch` with :func:`sequence_logps`. It runs the model through
its (DDP/FSDP-wrapped) ``forward``, so data-parallel hooks, activation
checkpointing and compilation apply as usual, but stops the model short of its
output projection: :class:`ScoringHead` takes the place of fairseq2's
``TransformerLM.compute_fused_loss`` (the hook fairseq2 itself swaps for a
compiled version) and projects only the scored positions, through the chunked
:func:`~fairseq2_preference.engine.logprobs.target_logps`. Prompt positions never reach
the output projection, and no ``[tokens, V]`` tensor exists at any time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fairseq2.models.transformer_lm import TransformerLM
from fairseq2.nn import ColumnShardedLinear, Linear, TiedProjection
from torch import Tensor
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel

from fairseq2_preference.data import PreferenceBatch
from fairseq2_preference.engine.attention import use_causal_no_mask_attention
from fairseq2_preference.engine.logprobs import DEFAULT_CHUNK_BYTES, target_logps


class ScoringHead:
    """Stands in for ``TransformerLM.compute_fused_loss`` while a batch is scored.

    Outside :meth:`scoring` it forwards to the model's own loss, so any other
    caller of ``model(seqs, layout, targets)`` sees fairseq2's behaviour.
    """

    def __init__(self, lm: TransformerLM, max_chunk_bytes: int) -> None:
        proj = lm.final_proj
        unsharded = isinstance(proj, ColumnShardedLinear) and not proj.sharded
        if not (unsharded or isinstance(proj, (Linear, TiedProjection))):
            raise TypeError(
                f"The model's output projection is a {type(proj).__name__}; scoring needs its "
                "full weight (a `Linear`, `TiedProjection`, or a tensor-parallel size of 1)."
            )
        self.proj = proj
        self.max_chunk_bytes = max_chunk_bytes
        self.fallback: Callable[..., Tensor] = lm.compute_fused_loss
        self.positions: Tensor | None = None

    def __call__(self, decoder_output: Tensor, targets: Tensor, **kwargs: Any) -> Tensor:
        if self.positions is None:
            return self.fallback(decoder_output, targets, **kwargs)
        hidden = decoder_output.reshape(-1, decoder_output.size(-1)).index_select(0, self.positions)
        weight, bias = self.proj.weight, self.proj.bias
        if not isinstance(weight, Tensor) or not (bias is None or isinstance(bias, Tensor)):
            raise TypeError("The output projection's weight and bias must be tensors.")
        return target_logps(
            hidden,
            weight,
            bias,
            targets,
            max_chunk_bytes=self.max_chunk_bytes,
        )

    @contextmanager
    def scoring(self, positions: Tensor) -> Iterator[None]:
        self.positions = positions
        try:
            yield
        finally:
            self.positions = None


def unwrap(model: Module) -> TransformerLM:
    """The :class:`TransformerLM` inside a DDP wrapper (FSDP2 wraps in place)."""
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    if not isinstance(inner, TransformerLM):
        raise TypeError(
            "Preference training needs a decoder-only `TransformerLM`, not a "
            f"{type(inner).__name__}."
        )
    return inner


def prepare_for_scoring(model: Module, max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> ScoringHead:
    """Install the scoring head and packed-batch attention on ``model`` (idempotent)."""
    lm = unwrap(model)
    head = lm.__dict__.get("compute_fused_loss")
    if isinstance(head, ScoringHead):
        head.max_chunk_bytes = max_chunk_bytes
        return head
    head = ScoringHead(lm, max_chunk_bytes)
    lm.compute_fused_loss = head  # type: ignore[method-assign]
    use_causal_no_mask_attention(lm)
    return head


def sequence_logps(model: Module, batch: PreferenceBatch) -> tuple[Tensor, Tensor]:
    """Per-sequence sums of the scored tokens' log-probabilities (float32 ``[k·N]``)
    and the number of scored tokens of each sequence."""
    head = unwrap(model).__dict__.get("compute_fused_loss")
    if not isinstance(head, ScoringHead):
        head = prepare_for_scoring(model)
    scored = batch.scored
    seqs, layout = batch.inputs.as_input()
    with head.scoring(scored.positions):
        token_logps = model(seqs, layout, scored.targets)
    sums = token_logps.new_zeros(batch.num_sequences).index_add_(0, scored.rows, token_logps)
    return sums, scored.counts
