"""The log-prob engine and the unit, against independent one-sequence computations.

Every comparison uses uneven prompt and response lengths, both batch layouts
(packed and padded) and, for the loss, every term (pair loss and NLL).
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fairseq2.device import CPU
from fairseq2.metrics import MetricBag
from fairseq2.models.llama import LLaMAConfig, create_llama_model
from fairseq2.nn import BatchLayout

from fairseq2_preference.criteria import create_criterion
from fairseq2_preference.data.batch import collate_examples
from fairseq2_preference.engine.logprobs import chunk_rows, target_logps
from fairseq2_preference.engine.scoring import prepare_for_scoring, sequence_logps
from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.recipe.units import PreferenceComputer

from helpers import run_cli


def load_tiny(assets: Path) -> torch.nn.Module:
    card = next(yaml.safe_load_all((assets / "cards" / "tiny.yaml").read_text()))
    model = create_llama_model(LLaMAConfig(**card["model_config"]))
    model.load_state_dict(torch.load(assets / "model" / "model.pt"))
    return model.eval()


@pytest.fixture(scope="module")
def model(tiny_assets: Path) -> torch.nn.Module:
    return load_tiny(tiny_assets)


def make_examples(n: int, seed: int, vocab: int = 300) -> list[dict[str, Any]]:
    """``n`` pairs of random token ids; prompts 3-12, responses 1-30 tokens."""
    g = torch.Generator().manual_seed(seed)

    def randint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi + 1, (), generator=g))

    examples = []
    for i in range(n):
        prompt = torch.randint(5, vocab, (randint(3, 12),), generator=g)
        seqs = [torch.cat([prompt, torch.randint(5, vocab, (randint(1, 30),), generator=g)])]
        seqs.append(torch.cat([prompt, torch.randint(5, vocab, (randint(1, 30),), generator=g)]))
        examples.append({"id": f"e{i}", "seqs": seqs, "prompt_len": len(prompt), "numbers": {}})
    return examples


def batch_of(examples: list[dict[str, Any]], packed: bool, mask_source: bool = True) -> Any:
    return collate_examples(examples, pad_idx=2, mask_source_tokens=mask_source, packed=packed)


def naive_logps(model: torch.nn.Module, examples: list[dict[str, Any]]) -> torch.Tensor:
    """Summed response log-probs, one unpadded sequence at a time, full logits in float64."""
    sums = []
    for j in range(2):
        for ex in examples:
            seq = ex["seqs"][j]
            inputs = seq[None, :-1]
            logits = model(inputs, BatchLayout.of(inputs))[0].double()
            logp = torch.log_softmax(logits, dim=-1).gather(1, seq[1:, None]).squeeze(1)
            sums.append(logp[ex["prompt_len"] - 1 :].sum())
    return torch.stack(sums)


def one_by_one(model: torch.nn.Module, batch: Any) -> tuple[list[float], list[int]]:
    """:func:`naive_logps` for a batch read from data: each sequence rebuilt from
    the batch's inputs (``s[:-1]``) and its last target, scored one at a time."""
    inputs, scored = batch.inputs, batch.scored
    begins = torch.tensor(inputs.seq_lens).cumsum(0) - torch.tensor(inputs.seq_lens)
    sums, counts = [], []
    for row, length in enumerate(inputs.seq_lens):
        row_inputs = (
            inputs.seqs[begins[row] : begins[row] + length]
            if inputs.packed
            else inputs.seqs[row, :length]
        )
        targets = scored.targets[scored.rows == row]
        seq = torch.cat([row_inputs, targets[-1:]])
        with torch.no_grad():
            logits = model(seq[None, :-1], BatchLayout.of(seq[None, :-1]))[0].double()
        logp = torch.log_softmax(logits, dim=-1).gather(1, seq[1:, None]).squeeze(1)
        sums.append(float(logp[len(seq) - 1 - len(targets) :].sum()))
        counts.append(len(targets))
    return sums, counts


def grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("packed", [True, False])
def test_sequence_logps_and_gradients_match_naive(model: torch.nn.Module, packed: bool) -> None:
    examples = make_examples(5, seed=7)
    weights = torch.linspace(-1.0, 2.0, 10)

    model.zero_grad()
    expected = naive_logps(model, examples)
    (expected * weights.double()).sum().backward()
    expected_grads = grads(model).clone()

    model.zero_grad()
    batch = batch_of(examples, packed)
    sums, counts = sequence_logps(model, batch)
    (sums * weights).sum().backward()

    assert sums.dtype == torch.float32
    torch.testing.assert_close(sums.double(), expected.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads(model), expected_grads.float(), rtol=1e-5, atol=1e-5)
    lengths = [len(ex["seqs"][j]) - ex["prompt_len"] for j in range(2) for ex in examples]
    assert counts.tolist() == lengths
    model.zero_grad()


def test_packed_and_padded_agree_without_source_masking(model: torch.nn.Module) -> None:
    examples = make_examples(4, seed=3)
    batches = [batch_of(examples, packed, mask_source=False) for packed in (True, False)]
    with torch.no_grad():
        packed, _ = sequence_logps(model, batches[0])
        padded, counts = sequence_logps(model, batches[1])
    torch.testing.assert_close(packed, padded, rtol=1e-5, atol=1e-5)
    assert counts.tolist() == [len(ex["seqs"][j]) - 1 for j in range(2) for ex in examples]
    for batch in batches:
        sums, naive_counts = one_by_one(model, batch)
        want = torch.tensor(sums, dtype=torch.float64)
        torch.testing.assert_close(packed.double(), want, rtol=1e-5, atol=1e-5)
        assert naive_counts == counts.tolist()


def test_engine_matches_naive_log_softmax_and_is_chunk_invariant() -> None:
    torch.manual_seed(0)
    hidden = torch.randn(300, 32, requires_grad=True)
    weight = torch.randn(1000, 32, requires_grad=True)
    bias = torch.randn(1000, requires_grad=True)
    targets = torch.randint(0, 1000, (300,))
    upstream = torch.randn(300)

    def run(fn: Any) -> list[torch.Tensor]:
        for t in (hidden, weight, bias):
            t.grad = None
        out = fn()
        (out * upstream).sum().backward()
        return [out.detach(), hidden.grad.clone(), weight.grad.clone(), bias.grad.clone()]

    naive = run(
        lambda: torch.log_softmax(hidden @ weight.T + bias, -1).gather(1, targets[:, None])[:, 0]
    )
    for budget in (4 * 1000 * 7, 2**30):  # 7-row chunks (the last one short), and one chunk

        def engine(budget: int = budget) -> torch.Tensor:
            return target_logps(hidden, weight, bias, targets, max_chunk_bytes=budget)

        for got, want in zip(run(engine), naive, strict=True):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_engine_under_bf16_autocast_accumulates_in_float32() -> None:
    """Values and gradients under autocast: bf16 products, float32 softmax and sums."""
    torch.manual_seed(1)
    hidden = torch.randn(64, 16, requires_grad=True)
    weight = torch.randn(500, 16, requires_grad=True)
    targets = torch.randint(0, 500, (64,))
    upstream = torch.randn(64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = target_logps(hidden, weight, None, targets, max_chunk_bytes=4 * 500 * 10)
    (got * upstream).sum().backward()
    got_grads = hidden.grad.clone(), weight.grad.clone()

    hidden.grad = weight.grad = None
    h16, w16 = hidden.bfloat16(), weight.bfloat16()
    logits = (h16 @ w16.T).float()
    want = torch.log_softmax(logits, -1).gather(1, targets[:, None])[:, 0]
    (want * upstream).sum().backward()

    assert got.dtype == torch.float32
    assert weight.grad is not None and got_grads[1].dtype == torch.float32
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # bf16 operands of the gradient GEMMs: bf16 tolerance, float32 sums
    for g, w in zip(got_grads, (hidden.grad, weight.grad), strict=True):
        torch.testing.assert_close(g, w, rtol=2e-2, atol=2e-2)


MEMORY_PROBE = """
import re, sys, torch
from fairseq2_preference.engine.logprobs import target_logps

def status(key):
    text = open("/proc/self/status").read()
    return int(re.search(key + r":\\s+(\\d+) kB", text).group(1)) * 1024

rows, dim, vocab = (int(a) for a in sys.argv[1:4])
torch.manual_seed(0)
hidden = torch.randn(rows, dim, requires_grad=True)
weight = (0.02 * torch.randn(vocab, dim)).requires_grad_()
targets = torch.randint(0, vocab, (rows,))
upstream = torch.randn(rows)
target_logps(hidden[:4], weight, None, targets[:4]).sum().backward()  # kernels, thread pools
weight.grad = hidden.grad = None
before = status("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
(target_logps(hidden, weight, None, targets) * upstream).sum().backward()
print(status("VmHWM") - before)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_log_prob_path_peak_memory_is_a_fraction_of_float32_logits() -> None:
    """Measured, not computed: the peak resident memory of forward + backward at
    vocab 128,256 (the gradients included) against one float32 ``[T, V]`` tensor,
    which the naive path holds at least twice."""
    rows, dim, vocab = 4096, 64, 128_256
    result = run_cli([sys.executable, "-c", MEMORY_PROBE, str(rows), str(dim), str(vocab)])
    assert result.returncode == 0, result.stderr[-2000:]
    peak = int(result.stdout.split()[-1])
    logits = 4 * rows * vocab
    assert 0 < peak <= 0.35 * logits, (
        f"peak {peak / 2**20:.0f} MiB vs [T, V] {logits / 2**20:.0f} MiB"
    )


def test_chunks_are_sized_by_bytes_alone() -> None:
    vocab = 128_256
    assert chunk_rows(vocab) == 256 * 2**20 // (4 * vocab) == 523
    assert chunk_rows(vocab, 1) == 1


def criterion_grads(
    model: torch.nn.Module, splits: list[list[dict[str, Any]]], name: str, config: dict[str, Any]
) -> torch.Tensor:
    """Gradient of the step as the trainer forms it: Σ losses / Σ num_targets."""
    criterion = create_criterion(name, config)
    computer = PreferenceComputer(model, model, criterion)
    model.zero_grad()
    steps = [computer(batch_of(part, packed=True)) for part in splits]
    total = sum(step.num_targets for step in steps)
    loss = sum((step.loss for step in steps), torch.zeros(()))
    (loss / total).backward()
    result = grads(model).clone()
    model.zero_grad()
    return result


@pytest.mark.parametrize(
    ("name", "config"),
    [("sft", {}), ("dpo", {"nll_scale": 0.7}), ("orpo", {}), ("cpo", {})],
)
def test_gradients_do_not_depend_on_how_the_batch_is_split(
    model: torch.nn.Module, name: str, config: dict[str, Any]
) -> None:
    examples = make_examples(8, seed=11)
    whole = criterion_grads(model, [examples], name, config)
    halves = criterion_grads(model, [examples[:4], examples[4:]], name, config)
    uneven = criterion_grads(model, [examples[:1], examples[1:6], examples[6:]], name, config)
    torch.testing.assert_close(halves, whole, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(uneven, whole, rtol=1e-4, atol=1e-6)


def test_loss_normalisation_and_metrics(model: torch.nn.Module) -> None:
    examples = make_examples(5, seed=5)
    batch = batch_of(examples, packed=True)
    computer = PreferenceComputer(model, model, create_criterion("dpo", {"nll_scale": 0.5}))
    step = computer(batch)

    n = batch.num_examples
    sums = naive_logps(model, examples).detach()
    counts = torch.tensor(batch.token_counts, dtype=torch.float64)
    # Policy == reference, so every pair loss is ln 2; the NLL is RPO's per pair.
    per_pair_nll = -(sums[:n] / counts[:n])
    expected = n * math.log(2) + 0.5 * float(per_pair_nll.sum())
    assert step.num_targets == n
    assert float(step.loss.detach()) == pytest.approx(expected, rel=1e-5)

    bag = MetricBag(device=CPU)
    computer.prepare_metric_bag(bag)
    computer.update_metrics(bag, batch, step)
    values = {name: float(metric.compute()) for name, metric in bag.metrics.items()}
    assert values["loss"] == pytest.approx(expected / n, rel=1e-5)
    assert values["dpo_loss"] == pytest.approx(math.log(2), rel=1e-6)
    chosen_tokens = float(counts[:n].sum())
    assert values["nll_loss"] == pytest.approx(-float(sums[:n].sum()) / chosen_tokens, rel=1e-5)
    assert values["rewards/accuracies"] == 0.0  # ties are not wins
    assert values["logps/rejected"] == pytest.approx(float(sums[n:].mean()), rel=1e-5)
    assert values["padding_efficiency"] == 1.0  # packed
    assert int(values["num_examples"]) == n


def test_sft_is_a_token_mean_over_the_chosen_responses(model: torch.nn.Module) -> None:
    examples = make_examples(3, seed=9)
    step = PreferenceComputer(model, None, create_criterion("sft"))(batch_of(examples, True))
    sums = naive_logps(model, examples).detach()
    chosen_tokens = sum(len(ex["seqs"][0]) - ex["prompt_len"] for ex in examples)
    assert step.num_targets == chosen_tokens
    assert float(step.loss.detach()) == pytest.approx(-float(sums[:3].sum()), rel=1e-5)


def test_reference_runs_first_in_inference_mode_and_gets_no_gradient(
    model: torch.nn.Module, tiny_assets: Path
) -> None:
    reference = load_tiny(tiny_assets)  # deliberately not frozen: the unit must not train it
    calls: list[tuple[str, bool]] = []
    for name, module in (("reference", reference), ("policy", model)):
        module.register_forward_pre_hook(
            lambda _m, _a, name=name: calls.append((name, torch.is_inference_mode_enabled()))
        )
    computer = PreferenceComputer(model, reference, create_criterion("dpo"))
    model.zero_grad()
    computer(batch_of(make_examples(3, seed=2), packed=True)).loss.backward()
    assert calls == [("reference", True), ("policy", False)]
    assert all(p.grad is None for p in reference.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.zero_grad()
    model._forward_pre_hooks.clear()


def test_reference_logps_carried_by_the_batch_replace_the_reference_model(
    model: torch.nn.Module,
) -> None:
    examples = make_examples(4, seed=4)
    live = PreferenceComputer(model, model, create_criterion("dpo"))(batch_of(examples, True))
    batch = batch_of(examples, True)
    with torch.no_grad():
        batch.reference_logps, _ = sequence_logps(model, batch)
    cached = PreferenceComputer(model, None, create_criterion("dpo"))(batch)
    torch.testing.assert_close(cached.loss, live.loss)

    with pytest.raises(PreferenceConfigError, match="reference"):
        PreferenceComputer(model, None, create_criterion("dpo"))(batch_of(examples, True))


def test_scoring_head_leaves_the_models_own_loss_alone(model: torch.nn.Module) -> None:
    prepare_for_scoring(model)
    seqs = torch.randint(5, 300, (2, 9))
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    with torch.no_grad():
        loss = model(inputs, BatchLayout.of(inputs), targets)
        logits = model(inputs, BatchLayout.of(inputs)).double()
    expected = -torch.log_softmax(logits, -1).gather(2, targets[..., None]).sum()
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_a_batch_just_trained_on_scores_low_and_a_fresh_one_stays_at_ln2(
    model: torch.nn.Module,
) -> None:
    """Why ``vs_trl.py --mode own`` once logged a DPO loss of 0.0125 at step 2: its
    timed pass began with the warm-up batch, which one AdamW step had just fitted.
    The batch is real (policy == reference gives exactly ln 2 on it, packed as
    padded); only its repetition is. The benchmark now restarts from the initial
    weights after the warm-up (``test_gpu_script_on_a_tiny_model``)."""
    policy = copy.deepcopy(model).train().requires_grad_(True)
    computer = PreferenceComputer(policy, model, create_criterion("dpo"))
    seen, fresh = make_examples(8, seed=1), make_examples(8, seed=2)
    for packed in (True, False):
        with torch.no_grad():
            step = computer(batch_of(seen, packed))
        assert float(step.loss / step.num_targets) == pytest.approx(math.log(2), abs=1e-6)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3, weight_decay=0.0)
    step = computer(batch_of(seen, packed=True))
    (step.loss / step.num_targets).backward()
    optimizer.step()
    with torch.no_grad():
        again = computer(batch_of(seen, packed=True))
        other = computer(batch_of(fresh, packed=True))
    assert float(again.loss / again.num_targets) < 0.4
    assert float(other.loss / other.num_targets) == pytest.approx(math.log(2), abs=0.01)
