"""This project's side of ``vs_trl.py``: the real train unit on the shared checkpoint.

The policy and the frozen reference are loaded from the Hugging Face directory
through :mod:`fairseq2_preference.models.checkpoints` (as ``model.path=DIR`` does), a
batch is made by :func:`~fairseq2_preference.data.batch.collate_examples` and
scored by :class:`~fairseq2_preference.recipe.units.PreferenceTrainUnit` (DPO, its
metrics included); then backward, gradient clipping at 1.0 (the recipe's
default) and a fused AdamW step, as fairseq2's trainer does. The trainer divides
the loss by the unit's ``num_targets`` (pairs); so does this loop.

Batches: ``static`` takes the rows in file order, 8 pairs a batch, exactly as
TRL sees them; ``own`` groups them with the project's length bucketing under a
token budget (:func:`~fairseq2_preference.data.batching.bucket_sizes`, fairseq2's
``bucket_by_length``), as the recipe's ``batching: {max_num_tokens: ...}`` does.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.nn import Module
from vs_trl_data import (
    PAD_ID,
    Measurement,
    param_counts,
    read_rows,
    synchronize,
)


def load_policy(path: Path, device: torch.device) -> Module:
    from fairseq2.models.llama import get_llama_model_hub

    from fairseq2_preference.models.checkpoints import read_checkpoint_dir
    from fairseq2_preference.models.llama_config import llama_config

    config = llama_config(read_checkpoint_dir(path).model_config)
    return get_llama_model_hub().load_custom_model(path, config, device=device)


def encoded(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the project's encoder gives it (``PreferenceDataset.encoder``)."""
    seqs = [torch.tensor(row["prompt"] + row[key]) for key in ("chosen", "rejected")]
    return {
        "id": row["id"],
        "seqs": seqs,
        "prompt_len": len(row["prompt"]),
        "longest": max(seqs, key=len),
        "numbers": {},
    }


def own_groups(examples: list[dict[str, Any]], max_num_tokens: int) -> list[list[dict[str, Any]]]:
    """The recipe's length batching: buckets of ``(n, W)`` with ``2·n·W <= max_num_tokens``."""
    from fairseq2.data.data_pipeline import read_sequence

    from fairseq2_preference.data.batching import bucket_sizes

    lengths = [len(s) for ex in examples for s in ex["seqs"]]
    sizes = bucket_sizes(max_num_tokens, 2, min(lengths), max(lengths))
    pipeline = read_sequence(examples).bucket_by_length(sizes, selector="longest").and_return()
    return list(pipeline)


def logits_difference(
    policy: Module, path: Path, row: dict[str, Any], device: torch.device
) -> float:
    """Max |fairseq2 logits − transformers logits| over one row's two sequences."""
    from fairseq2.nn import BatchLayout
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM.from_pretrained(str(path), dtype=torch.float32).to(device).eval()
    worst = 0.0
    with torch.no_grad():
        for seq in encoded(row)["seqs"]:
            ids = seq[None].to(device)
            ours = policy(ids, BatchLayout.of(ids))
            worst = max(worst, float((ours - hf(ids).logits).abs().max()))
    del hf
    return worst


def reference_logps(
    reference: Module, batches: list[Any], device: torch.device, dtype: torch.dtype
) -> list[Tensor]:
    """Each batch's summed reference log-probs, computed once before the timed
    window, as ``reference_model.cache`` gives them to training."""
    from fairseq2_preference.engine.scoring import sequence_logps

    sums = []
    autocast = torch.autocast(device.type, dtype, enabled=dtype != torch.float32)
    with torch.inference_mode(), autocast:
        for batch in batches:
            batch.to(device)
            sums.append(sequence_logps(reference, batch)[0].clone())
    return sums


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fairseq2.metrics import MetricBag
    from fairseq2.models.transformer_lm.ac import apply_ac_to_transformer_lm

    from fairseq2_preference.criteria import create_criterion
    from fairseq2_preference.data.batch import collate_examples
    from fairseq2_preference.recipe.units import PreferenceComputer, PreferenceTrainUnit

    device = torch.device(args.device)
    rows = read_rows(Path(args.rows))
    num_batches = args.warmup + args.steps
    rows = rows[: args.batch_pairs * num_batches]
    dtype = getattr(torch, args.dtype)

    torch.manual_seed(0)
    policy = load_policy(Path(args.checkpoint), device)
    max_abs_diff = None
    if args.logits_check:
        max_abs_diff = logits_difference(policy.eval(), Path(args.checkpoint), rows[0], device)
    initial = {k: v.to("cpu", copy=True) for k, v in policy.state_dict().items()}

    examples = [encoded(row) for row in rows]
    if args.mode == "static":
        size = args.batch_pairs
        groups = [examples[i : i + size] for i in range(0, len(examples), size)]
        warmup, timed = groups[: args.warmup], groups[args.warmup :]
    else:  # a full pass over the same rows in the project's batches, after a warm-up
        groups = own_groups(examples, args.max_num_tokens)
        warmup, timed = groups[: args.warmup], groups
    packed = args.layout == "packed"

    def collate(group: list[dict[str, Any]]) -> Any:
        return collate_examples(group, PAD_ID, mask_source_tokens=True, packed=packed)

    reference: Module | None = copy.deepcopy(policy).requires_grad_(False).eval()
    cached: list[Tensor] = []
    if args.reference == "cached":
        assert reference is not None
        cached = reference_logps(reference, [collate(g) for g in groups], device, dtype)
        reference = None  # training holds no reference model
    if device.type == "cuda":  # the logits check's and the cache's memory is not the step's
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    policy.train()
    if args.activation_checkpointing:
        apply_ac_to_transformer_lm(policy, 1)  # type: ignore[arg-type]
    unit = PreferenceTrainUnit(PreferenceComputer(policy, reference, create_criterion("dpo")))
    bag = MetricBag(device=device)
    unit.prepare_metric_bag(bag)

    def adamw() -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            policy.parameters(), lr=args.lr, weight_decay=0.0, fused=args.fused_adamw
        )

    optimizer = adamw()
    losses: list[Tensor] = []
    counts = [0, 0]

    def step(index: int) -> None:
        batch = collate(groups[index])
        batch.to(device, non_blocking=True)
        if cached:
            batch.reference_logps = cached[index]
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss, num_targets = unit.process_batch(batch, bag)
        loss = loss / num_targets
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), max_norm=1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        counts[0] += batch.num_real_tokens
        counts[1] += batch.num_computed_tokens

    for index in range(len(warmup)):
        step(index)
    if args.mode == "own":
        # The timed pass covers every batch, the warm-up ones too: start it from the
        # initial weights and a fresh optimizer, or its first batch is one the model
        # was just trained on (a DPO loss of ~0.01 at "step 2", measured on the cpu shape).
        policy.load_state_dict(initial)
        del optimizer
        optimizer = adamw()
        losses.clear()
    synchronize(device)
    counts = [0, 0]
    first = len(groups) - len(timed)
    start = time.perf_counter()
    for index in range(first, len(groups)):
        step(index)
    synchronize(device)
    seconds = time.perf_counter() - start

    measurement = Measurement(
        side="ours",
        seconds=seconds,
        steps=len(timed),
        real_tokens=sum(len(s) for group in timed for ex in group for s in ex["seqs"]),
        model_real_tokens=counts[0],
        computed_tokens=counts[1],
        params=param_counts(policy, policy.decoder_frontend.embed),  # type: ignore[union-attr,arg-type]
        losses=[float(x) for x in losses],
    )
    report = measurement.report(device, args.peak_tflops)
    import fairseq2

    report |= {
        "mode": args.mode,
        "packed": packed,
        "reference": args.reference,
        "logits_max_abs_diff": max_abs_diff,
    }
    report["versions"] |= {"fairseq2": fairseq2.__version__}
    return report
