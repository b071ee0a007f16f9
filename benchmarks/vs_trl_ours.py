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

    torch.manual_seed(0)
    policy = load_policy(Path(args.checkpoint), device)
    max_abs_diff = logits_difference(policy.eval(), Path(args.checkpoint), rows[0], device)
    if device.type == "cuda":  # the check's transformers copy is not part of the step
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    reference = copy.deepcopy(policy).requires_grad_(False)
    policy.train()
    if args.activation_checkpointing:
        apply_ac_to_transformer_lm(policy, 1)  # type: ignore[arg-type]
    unit = PreferenceTrainUnit(PreferenceComputer(policy, reference, create_criterion("dpo")))
    bag = MetricBag(device=device)
    unit.prepare_metric_bag(bag)
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=args.lr, weight_decay=0.0, fused=args.fused_adamw
    )
    dtype = getattr(torch, args.dtype)

    examples = [encoded(row) for row in rows]
    if args.mode == "static":
        size = args.batch_pairs
        groups = [examples[i : i + size] for i in range(0, len(examples), size)]
        warmup, timed = groups[: args.warmup], groups[args.warmup :]
    else:  # a full pass over the same rows in the project's batches, after a warm-up
        groups = own_groups(examples, args.max_num_tokens)
        warmup, timed = groups[: args.warmup], groups
    packed = args.layout == "packed"

    losses: list[Tensor] = []
    counts = [0, 0]

    def step(group: list[dict[str, Any]]) -> None:
        batch = collate_examples(group, PAD_ID, mask_source_tokens=True, packed=packed)
        batch.to(device, non_blocking=True)
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

    for group in warmup:
        step(group)
    synchronize(device)
    counts = [0, 0]
    start = time.perf_counter()
    for group in timed:
        step(group)
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

    report |= {"mode": args.mode, "packed": packed, "logits_max_abs_diff": max_abs_diff}
    report["versions"] |= {"fairseq2": fairseq2.__version__}
    return report
