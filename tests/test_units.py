"""The unit's reductions against independent, one-sequence-at-a-time computations."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fairseq2.device import CPU
from fairseq2.gang import create_fake_gangs
from fairseq2.metrics import MetricBag
from fairseq2.models.llama import LLaMAConfig, create_llama_model
from fairseq2.nn import BatchLayout

from fairseq2_preference.criteria import create_criterion
from fairseq2_preference.data import (
    PREFERENCE_ROW,
    JsonlDataset,
    JsonlSource,
    PreferenceBatch,
    ReadOptions,
    StaticBatching,
)
from fairseq2_preference.units import PreferenceComputer, sequence_logps

from helpers import write_jsonl
from test_data import random_rows


def load_tiny(assets: Path) -> torch.nn.Module:
    card = next(yaml.safe_load_all((assets / "cards" / "tiny.yaml").read_text()))
    model = create_llama_model(LLaMAConfig(**card["model_config"]))
    model.load_state_dict(torch.load(assets / "model" / "model.pt"))
    return model.eval()


@pytest.fixture(scope="module")
def model(tiny_assets: Path) -> torch.nn.Module:
    return load_tiny(tiny_assets)


@pytest.fixture
def batch(tmp_path: Path, tokenizer: Any) -> PreferenceBatch:
    path = write_jsonl(tmp_path / "d.jsonl", random_rows(5, seed=7))
    dataset = JsonlDataset(JsonlSource.open(path), PREFERENCE_ROW)
    options = ReadOptions(batching=StaticBatching(5))
    reader = dataset.create_reader("train", tokenizer, create_fake_gangs(CPU), options)
    return next(iter(reader))[0]


def one_by_one(model: torch.nn.Module, batch: PreferenceBatch) -> tuple[list[float], list[int]]:
    """Sum of log p(token) over the response of each sequence, unpadded, in float64."""
    sums, counts = [], []
    mask = batch.seqs.target_mask
    assert mask is not None
    for row, length in enumerate(batch.seqs.seq_lens):
        seq = batch.seqs.seqs[row, :length]
        with torch.no_grad():
            logits = model(seq[None, :-1], BatchLayout.of(seq[None, :-1]))[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        targets = mask[row, 1:length]
        total = sum(float(logp[pos, seq[pos + 1]]) for pos in range(length - 1) if targets[pos])
        sums.append(total)
        counts.append(int(targets.sum()))
    return sums, counts


def test_sequence_logps_match_unpadded_computation(
    model: torch.nn.Module, batch: PreferenceBatch
) -> None:
    with torch.no_grad():
        sums, counts = sequence_logps(model, batch)
    assert sums.dtype == torch.float32
    expected_sums, expected_counts = one_by_one(model, batch)
    torch.testing.assert_close(
        sums.double(), torch.tensor(expected_sums, dtype=torch.float64), rtol=1e-5, atol=1e-4
    )
    assert counts.tolist() == expected_counts


def test_loss_normalisation_and_metrics(model: torch.nn.Module, batch: PreferenceBatch) -> None:
    criterion = create_criterion("dpo", {"beta": 0.1, "nll_scale": 0.5})
    computer = PreferenceComputer(model, model, criterion)
    step = computer(batch)

    n = batch.num_examples
    expected_sums, counts = one_by_one(model, batch)
    chosen_tokens = sum(counts[:n])
    nll_sum = -sum(expected_sums[:n])
    # Policy == reference, so every pair loss is ln 2.
    expected = n * math.log(2) + 0.5 * nll_sum * n / chosen_tokens
    assert float(step.loss.detach()) == pytest.approx(expected, rel=1e-5)

    bag = MetricBag(device=CPU)
    computer.prepare_metric_bag(bag)
    computer.update_metrics(bag, batch, step)
    values = {name: metric.compute() for name, metric in bag.metrics.items()}
    assert float(values["loss"]) == pytest.approx(expected / n, rel=1e-5)
    assert float(values["dpo_loss"]) == pytest.approx(math.log(2), rel=1e-6)
    assert float(values["nll_loss"]) == pytest.approx(nll_sum / chosen_tokens, rel=1e-5)
    assert float(values["rewards/accuracies"]) == 0.0  # ties are not wins
    assert float(values["logps/rejected"]) == pytest.approx(sum(expected_sums[n:]) / n, rel=1e-5)
    assert int(values["num_examples"]) == n


def test_reference_is_not_differentiated(
    model: torch.nn.Module, batch: PreferenceBatch, tiny_assets: Path
) -> None:
    reference = load_tiny(tiny_assets).requires_grad_(False)
    computer = PreferenceComputer(model, reference, create_criterion("dpo"))
    model.zero_grad()
    computer(batch).loss.backward()
    assert all(p.grad is None for p in reference.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
