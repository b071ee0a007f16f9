"""Mask-free causal attention: taken for packed and padded batches, equal to fairseq2's
masked attention, and compiled a bounded number of times however batch shapes vary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from fairseq2.models.llama import LLaMAConfig, create_llama_model
from fairseq2.models.transformer import AttentionBiasCache, TorchSDPA
from fairseq2.models.transformer_lm.compiler import compile_transformer_lm
from fairseq2.nn import BatchLayout

from fairseq2_preference.engine import attention
from fairseq2_preference.engine.attention import CausalNoMaskSDPA, use_causal_no_mask_attention
from fairseq2_preference.engine.scoring import prepare_for_scoring, sequence_logps

from test_units import batch_of, load_tiny, make_examples


@pytest.fixture
def model(tiny_assets: Path) -> torch.nn.Module:
    return load_tiny(tiny_assets)


def test_every_causal_attention_is_wrapped_and_fairseq2s_masks_are_never_built(
    model: torch.nn.Module, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepare_for_scoring(model)
    wrapped = [m for m in model.modules() if isinstance(m, CausalNoMaskSDPA)]
    assert len(wrapped) == len(model.decoder.layers)  # type: ignore[union-attr, arg-type]

    def masked(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("fairseq2's masked TorchSDPA ran")

    calls = {"packed": 0, "padded": 0}
    packed_causal, causal = attention.packed_causal, attention._causal

    def count_packed(*args: Any) -> torch.Tensor:
        calls["packed"] += 1
        return packed_causal(*args)

    def count_padded(*args: Any) -> torch.Tensor:
        calls["padded"] += 1
        return causal(*args)

    monkeypatch.setattr(TorchSDPA, "forward", masked)
    monkeypatch.setattr(attention, "packed_causal", count_packed)
    monkeypatch.setattr(attention, "_causal", count_padded)
    examples = make_examples(4, seed=5)
    with torch.no_grad():
        sequence_logps(model, batch_of(examples, packed=True))
        assert calls["packed"] == len(wrapped)  # (on CPU through the padded block)
        before = calls["padded"]
        sequence_logps(model, batch_of(examples, packed=False))
    assert calls == {"packed": len(wrapped), "padded": before + len(wrapped)}


@pytest.mark.parametrize("packed", [True, False])
def test_mask_free_attention_equals_fairseq2s_masked_attention(packed: bool) -> None:
    torch.manual_seed(0)
    lens = [5, 1, 9, 3]
    heads, dim = 4, 8
    inner = TorchSDPA(attention.CausalAttentionBias())  # type: ignore[attr-defined]
    ours = CausalNoMaskSDPA(inner)
    if packed:
        shape: tuple[int, ...] = (sum(lens), heads, dim)
        layout = BatchLayout((sum(lens),), lens, packed=True)
    else:
        shape = (len(lens), max(lens), heads, dim)
        layout = BatchLayout((len(lens), max(lens)), lens)
    q, k, v = (torch.randn(shape, requires_grad=True) for _ in range(3))
    cache = AttentionBiasCache()
    got, _ = ours(q, layout, k, layout, v, cache)
    want, _ = inner(q, layout, k, layout, v, AttentionBiasCache())
    real = (
        torch.ones(sum(lens), dtype=torch.bool)
        if packed
        else torch.arange(max(lens))[None, :] < torch.tensor(lens)[:, None]
    )
    torch.testing.assert_close(got[real], want[real], rtol=1e-6, atol=1e-6)
    upstream = torch.randn_like(got) * real[..., None, None]
    grads = torch.autograd.grad((got * upstream).sum(), (q, k, v))
    wants = torch.autograd.grad((want * upstream).sum(), (q, k, v))
    for g, w in zip(grads, wants, strict=True):
        torch.testing.assert_close(g[real], w[real], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("packed", [True, False])
def test_twenty_batch_shapes_compile_in_the_first_two_batches_only(packed: bool) -> None:
    """fairseq2 compiles each decoder layer (``model.compile``). The first batch
    compiles static graphs, the second dynamic ones; after that, new sequence
    counts and lengths must reuse them, not compile again (one graph per shape
    until torch.compile's recompile limit, then silently eager)."""
    torch.manual_seed(0)
    config = LLaMAConfig(
        model_dim=32, max_seq_len=128, vocab_size=300, pad_idx=2, num_layers=2,
        num_attn_heads=4, num_key_value_heads=2, ffn_inner_dim=128,
    )  # fmt: skip
    model = create_llama_model(config)
    use_causal_no_mask_attention(model)
    compiled_at: list[int] = []
    step = 0

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: Any) -> Any:
        compiled_at.append(step)
        return gm.forward

    torch._dynamo.reset()
    compile_transformer_lm(model, backend=counting_backend)
    g = torch.Generator().manual_seed(1)
    for step in range(20):
        n = 2 + step % 4  # (a batch of one sequence is a shape of its own to dynamo)
        lens = torch.randint(3, 40, (n,), generator=g).tolist()
        lens[0] = max(lens) + 1  # uneven: a padded batch stays padded (a guard of its own)
        if packed:
            seqs = torch.randint(5, 300, (sum(lens),), generator=g)
        else:
            seqs = torch.randint(5, 300, (n, max(lens)), generator=g)
        model(seqs, BatchLayout(seqs.shape, lens, packed=packed)).sum().backward()
    torch._dynamo.reset()
    assert compiled_at and set(compiled_at) <= {0, 1}, compiled_at
