"""KTO and unpaired feedback: the formula, the step's KL reference point (the same
however the step is split), unpaired data as it comes, and training end to end."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import mpmath as mp
import pytest
import torch

from fairseq2_preference.criteria import UnpairedLogps, create_criterion
from fairseq2_preference.data.batch import StepGroup, collate_examples
from fairseq2_preference.data.unpaired import unpair, with_mismatched_completions
from fairseq2_preference.errors import PreferenceDataError
from fairseq2_preference.recipe.unpaired_units import UnpairedComputer

from helpers import read_metrics, regime, train, write_jsonl
from test_units import make_examples, naive_logps

mp.mp.dps = 50


def kto(ratio: float, desirable: bool, kl: float, beta: float, w_d: float, w_u: float) -> Any:
    sigma = lambda x: 1 / (1 + mp.e ** (-x))  # noqa: E731
    r, z = mp.mpf(ratio), mp.mpf(kl)
    if desirable:
        return w_d * (1 - sigma(beta * (r - z)))
    return w_u * (1 - sigma(beta * (z - r)))


@pytest.mark.parametrize(("beta", "w_d", "w_u", "kl"), [(0.1, 1.0, 1.0, 0.0), (0.5, 1.3, 0.7, 2.5)])
def test_kto_matches_its_formula(beta: float, w_d: float, w_u: float, kl: float) -> None:
    g = torch.Generator().manual_seed(0)
    policy = -50 * torch.rand(32, generator=g)
    reference = policy + 8 * torch.randn(32, generator=g)
    desirable = torch.rand(32, generator=g) > 0.4
    logps = UnpairedLogps(policy, reference, torch.full((32,), 10), desirable, torch.tensor(kl))
    criterion = create_criterion("kto", {"beta": beta, "desirable_weight": w_d,
                                         "undesirable_weight": w_u})  # fmt: skip
    got = criterion.example_losses(logps)  # type: ignore[attr-defined]
    want = [
        float(kto(float(p) - float(r), bool(d), kl, beta, w_d, w_u))
        for p, r, d in zip(policy, reference, desirable, strict=True)
    ]
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-6, atol=1e-6)
    at_start = UnpairedLogps(policy, policy, torch.ones(32), desirable, torch.tensor(0.0))
    expected = torch.where(desirable, w_d / 2, w_u / 2)
    torch.testing.assert_close(criterion.example_losses(at_start), expected)  # type: ignore[attr-defined]


def labelled(examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pair-shaped unpaired examples: completion, mismatched completion, a label."""
    return [{**ex, "numbers": {"label": float(i % 3 != 0)}} for i, ex in enumerate(examples)]


def batch(examples: list[dict[str, Any]]) -> Any:
    return collate_examples(examples, pad_idx=2, mask_source_tokens=True, packed=True)


class OneRank:
    size = 1


def step_gradients(
    computer: UnpairedComputer, micro: list[list[dict[str, Any]]]
) -> tuple[float, torch.Tensor]:
    """The step as the trainer runs it: Σ losses over micro-batches / examples."""
    batches = [batch(part) for part in micro]
    group = StepGroup(list(batches))
    total = sum(len(part) for part in micro)
    computer.model.zero_grad()
    for b in batches:
        b.step = group
        step = computer(b)
        (step.loss / total).backward()
    grads = torch.cat([p.grad.flatten() for p in computer.model.parameters() if p.grad is not None])
    return float(group.values["kl"]), grads


def test_the_kl_reference_point_is_the_steps_and_does_not_depend_on_the_split(
    tiny_assets: Path,
) -> None:
    from test_units import load_tiny

    policy = load_tiny(tiny_assets).train()
    reference = copy.deepcopy(policy).requires_grad_(False)
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))
    examples = labelled(make_examples(8, seed=11))
    # Independently: z0 = mean over the step of log πθ − log πref on the mismatched
    # sequences (the second of each example), clamped at 0.
    naive = naive_logps(policy, examples)[8:] - naive_logps(reference, examples)[8:]
    if float(naive.mean()) < 0:  # make the clamp inactive, so the value is tested
        policy, reference = reference.requires_grad_(True), policy.requires_grad_(False)
        naive = -naive
    computer = UnpairedComputer(policy, reference, create_criterion("kto"), OneRank())  # type: ignore[arg-type]
    whole_kl, whole = step_gradients(computer, [examples])
    split_kl, split = step_gradients(computer, [examples[:4], examples[4:]])
    uneven_kl, uneven = step_gradients(computer, [examples[:3], examples[3:7], examples[7:]])
    assert whole_kl == pytest.approx(float(naive.mean()), abs=1e-5)
    assert whole_kl > 0 and split_kl == pytest.approx(whole_kl, abs=1e-6) == uneven_kl
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(uneven, whole, rtol=1e-5, atol=1e-7)


def test_pairs_become_a_desirable_and_an_undesirable_example() -> None:
    rows = unpair({"id": "p", "src": "q", "tgt_chosen": "good", "tgt_rejected": "bad"})
    assert [(r["id"], r["tgt"], r["label"]) for r in rows] == [
        ("p/chosen", "good", 1.0), ("p/rejected", "bad", 0.0)
    ]  # fmt: skip
    with pytest.raises(PreferenceDataError, match="no 'label'"):
        unpair({"id": "i", "src": "q", "tgt": "an answer"})


def test_mismatched_completions_come_from_the_next_row_with_another_prompt() -> None:
    rows = [{"id": str(i), "src": src, "tgt": f"c{i}", "label": 1.0}
            for i, src in enumerate(["a", "a", "b", "c", "c"])]  # fmt: skip
    shaped = with_mismatched_completions(rows)
    assert [r["tgt_rejected"] for r in shaped] == ["c2", "c2", "c3", "c0", "c0"]
    assert [r["tgt_chosen"] for r in shaped] == [f"c{i}" for i in range(5)]


SPLITS = ("train", "dev")


def unpaired_rows(tiny_assets: Path, split: str) -> list[dict[str, Any]]:
    """The demo task's pairs as thumbs up / down on single completions."""
    file = tiny_assets / "data" / "preference" / split / "data.chunk.0000.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    out = [{"id": f"{r['id']}+", "src": r["src"], "tgt": r["tgt_chosen"], "label": True}
           for r in rows[::2]]  # fmt: skip
    out += [{"id": f"{r['id']}-", "src": r["src"], "tgt": r["tgt_rejected"], "label": False}
            for r in rows[1::2]]  # fmt: skip
    return out


@pytest.mark.slow
def test_kto_learns_from_unpaired_feedback_and_accumulation_changes_nothing(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """``generic_unpaired`` rows (no pair shares a prompt with its partner): KTO
    separates desirable from undesirable rewards on held-out prompts; 2 micro-batches
    of 4 give the step of 8 (the KL reference point over the whole step)."""
    for split in SPLITS:
        write_jsonl(tmp_path / "data" / split / "rows.jsonl", unpaired_rows(tiny_assets, split))
    data = ["dataset.name=null", "dataset.family=generic_unpaired", "criterion={name: kto}",
            f"dataset.config_overrides.path={tmp_path / 'data'}"]  # fmt: skip
    out = tmp_path / "run"
    metrics = train(out, tiny_assets, *data, "optimizer.config.lr=0.003")
    assert float(metrics[0]["KTO Loss"]) == pytest.approx(0.5, abs=1e-6)  # type: ignore[arg-type]
    valid = read_metrics(out, "valid")[-1]
    assert float(valid["Rewards/Chosen"]) > float(valid["Rewards/Rejected"]) + 0.5  # type: ignore[arg-type]

    fixed = (*data, *regime(3, 3), "dataset.example_shuffle_window=1")
    whole = train(tmp_path / "whole", tiny_assets, *fixed, "dataset.batch_size=8")
    accumulated = train(
        tmp_path / "acc", tiny_assets, *fixed, "dataset.batch_size=4",
        "trainer.grad_accumulation.num_batches=2",
    )  # fmt: skip
    for a, b in zip(accumulated, whole, strict=True):
        for key in ("Loss", "KL", "Gradient Norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key  # type: ignore[arg-type]


def test_a_bad_label_is_named_with_its_file_and_line(tmp_path: Path, tiny_assets: Path) -> None:
    rows = [{"src": "q", "tgt": "a", "label": True}, {"src": "q2", "tgt": "b", "label": "yes"}]
    path = write_jsonl(tmp_path / "d" / "rows.jsonl", rows)  # type: ignore[arg-type]
    with pytest.raises(PreferenceDataError, match=r"rows.jsonl, line 2.*'label' must be true or"):
        train(tmp_path / "run", tiny_assets, "dataset.name=null",
              "dataset.family=generic_unpaired", f"dataset.config_overrides.path={path}",
              "criterion={name: kto}", *regime(1, 1))  # fmt: skip


def test_hf_unpaired_reads_message_lists_through_datasets(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """TRL's conversational unpaired rows, from a .jsonl file loaded by ``datasets``."""
    rows = [
        {"prompt": [{"role": "user", "content": r["src"]}],
         "completion": [{"role": "assistant", "content": r["tgt"]}], "label": r["label"]}
        for r in unpaired_rows(tiny_assets, "train")[:64]
    ]  # fmt: skip
    path = write_jsonl(tmp_path / "kto.jsonl", rows)  # type: ignore[arg-type]
    out = tmp_path / "run"
    metrics = train(out, tiny_assets, "dataset.name=null", "dataset.family=hf_unpaired",
                    f"dataset.config_overrides.path={path}", "dataset.valid_split=null",
                    "criterion={name: kto}", *regime(2, 2))  # fmt: skip
    assert float(metrics[0]["KTO Loss"]) == pytest.approx(0.5, abs=1e-6)  # type: ignore[arg-type]
    assert math.isfinite(float(metrics[-1]["Loss"]))  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.distributed
def test_two_ranks_estimate_the_same_reference_point_as_one(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """The sums behind z₀ are all-reduced over the ranks: 2 ranks × 4 examples train
    like 1 × 8 (DDP, gloo)."""
    from test_distributed import single, torchrun

    kto = ("criterion={name: kto}", "criterion.config.nll_scale=0.0")
    one = single(tmp_path / "one", tiny_assets, *kto, "dataset.batch_size=8")
    two = torchrun(tmp_path / "two", tiny_assets, *kto, "dataset.batch_size=4")
    assert any(float(m["KL"]) > 0 for m in one)  # type: ignore[arg-type]
    for a, b in zip(two, one, strict=True):
        for key in ("Loss", "KL", "Rewards/Chosen", "Gradient Norm"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key  # type: ignore[arg-type]


def test_kto_on_preference_pairs_trains_on_both_responses(
    tmp_path: Path, tiny_assets: Path
) -> None:
    """A pair is two examples (batches count examples: 8 are 4 pairs' responses)."""
    metrics = train(tmp_path / "run", tiny_assets, "criterion={name: kto}", "dataset.batch_size=8",
                    "dataset.example_shuffle_window=1", *regime(2, 2))  # fmt: skip
    assert float(metrics[0]["KTO Loss"]) == pytest.approx(0.5, abs=1e-6)  # type: ignore[arg-type]
    assert int(metrics[0]["Number of Examples"]) == 8  # type: ignore[arg-type]
