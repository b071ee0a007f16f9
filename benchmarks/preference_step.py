"""Time one preference training step, the way the train unit runs it.

One policy forward + backward and one reference forward over a batch of 2N
sequences (chosen and rejected), DPO loss, AdamW step; with ``--lora R``, rank-R
adapters on every linear layer of a frozen base, the reference being that base
with its adapters off. Reports milliseconds per step, tokens per second and peak
memory (CUDA: allocated; CPU: the process's resident set). Run it on the machine
whose figures you want (``benchmarks/README.md`` records the ones measured):

    .venv/bin/python benchmarks/preference_step.py --model_dim 256 --num_layers 4 \
        --pairs 16 --seq_len 256 --steps 20

Synthetic token ids, random weights: it measures the computation, not learning.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable

import torch
from fairseq2.models.llama import LLaMAConfig, create_llama_model

from fairseq2_preference.criteria import create_criterion
from fairseq2_preference.data import PreferenceBatch
from fairseq2_preference.data.batch import collate_examples
from fairseq2_preference.models.lora import LoraConfig, apply_lora
from fairseq2_preference.recipe.units import PreferenceComputer
from fairseq2_preference.tiny.assets import TinyModelSpec


def make_batch(
    pairs: int,
    seq_len: int,
    prompt_len: int,
    vocab: int,
    device: torch.device,
    packed: bool = True,
) -> PreferenceBatch:
    """``pairs`` pairs with a shared ``prompt_len``-token prompt and responses of
    random lengths in ``[seq_len / 2, seq_len]`` tokens overall."""
    g = torch.Generator().manual_seed(0)
    prompt_len = min(prompt_len, seq_len // 4)
    examples = []
    for i in range(pairs):
        prompt = torch.randint(3, vocab, (prompt_len,), generator=g)
        seqs = [
            torch.cat([prompt, torch.randint(3, vocab, (int(n) - prompt_len,), generator=g)])
            for n in torch.randint(
                max(seq_len // 2, prompt_len + 1), seq_len + 1, (2,), generator=g
            )
        ]
        examples.append({"id": str(i), "seqs": seqs, "prompt_len": prompt_len, "numbers": {}})
    batch = collate_examples(examples, pad_idx=0, mask_source_tokens=True, packed=packed)
    batch.to(device)
    return batch


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({torch.get_num_threads()} threads)"


def time_steps(step: Callable[[], None], warmup: int, steps: int, device: torch.device) -> float:
    """Seconds per step over ``steps`` after ``warmup``; CUDA peak memory counts
    from the first timed step."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dim", type=int, default=256)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--vocab_size", type=int, default=32_000)
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--seq_len", type=int, default=256)
    parser.add_argument("--prompt_len", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--padded", action="store_true", help="padded [2N, W] instead of packed")
    parser.add_argument("--lora", type=int, help="LoRA rank (all linear layers); default: full")
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = getattr(torch, args.dtype)
    spec = TinyModelSpec(model_dim=args.model_dim, num_layers=args.num_layers,
                         num_attn_heads=max(4, args.model_dim // 64), num_key_value_heads=2,
                         max_seq_len=max(1024, args.seq_len))  # fmt: skip
    config = LLaMAConfig(**spec.model_config(args.vocab_size))  # type: ignore[arg-type]
    torch.manual_seed(0)
    policy = create_llama_model(config).to(device)
    if args.lora is None:
        reference = create_llama_model(config).to(device).requires_grad_(False).eval()
        reference.load_state_dict(policy.state_dict())
        computer = PreferenceComputer(policy, reference, create_criterion("dpo"))
    else:  # no second model: the base, adapters off, is the reference
        apply_lora(policy, LoraConfig(rank=args.lora, alpha=2 * args.lora, dropout=0.0))
        computer = PreferenceComputer(policy, None, create_criterion("dpo"), reference_is_base=True)
    trained = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-5)
    batch = make_batch(
        args.pairs, args.seq_len, args.prompt_len, args.vocab_size, device, not args.padded
    )

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            loss = computer(batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = time_steps(step, args.warmup, args.steps, device)

    report = {
        "device": device_name(device),
        "params": sum(p.numel() for p in policy.parameters()),
        "trained_params": sum(p.numel() for p in trained),
        "dtype": args.dtype,
        "pairs": args.pairs,
        "seq_len": args.seq_len,
        "ms_per_step": round(1000 * seconds, 1),
        "packed": not args.padded,
        "tokens_per_second": round(batch.num_real_tokens / seconds),
        "padding_efficiency": round(batch.num_real_tokens / batch.num_computed_tokens, 3),
    }
    if device.type == "cuda":
        report["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:  # Linux reports ru_maxrss in KiB
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report["peak_rss_gib"] = round(rss / 2**20, 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
