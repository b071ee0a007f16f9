"""This project's training step side by side with TRL 1.16's ``DPOTrainer``.

Both sides train DPO (β 0.1, live reference, constant learning rate, AdamW with
no weight decay, fused where available, gradients clipped at 1.0) on identical
weights — a seeded random ``LlamaForCausalLM`` saved in the Hugging Face layout,
which this project loads through ``fairseq2_preference.models.checkpoints`` — and on
identical token ids, each in its own process: this project's side in this
environment, TRL's in its own (``benchmarks/trl_env.sh`` creates it). With
``--repeats R`` the sides alternate (ours, TRL, ours, TRL, ...) and the figures
are medians. Prints one JSON line per side and one with the ratios ours/TRL::

    .venv/bin/python benchmarks/vs_trl.py --shape cpu --data chat --mode static --repeats 3
    .venv/bin/python benchmarks/vs_trl.py --shape h100 --data fixed --seq_len 1024 --mode own

(``benchmarks/README.md`` records the figures and the commands that gave them.)

Figures (``vs_trl_data.py`` holds the formulas): ms/step; real tokens/s (the
chosen and rejected sequences' tokens, no padding, the same count on both
sides); padding efficiency (real / computed positions); peak memory (CUDA:
``torch.cuda.max_memory_allocated``; CPU: the process's max RSS); MFU on CUDA,
``(6 + 2)·N·computed_tokens`` per second over ``--peak_tflops``. Checks: the
fairseq2 model's logits against ``transformers`` on one row, each side's step-1
loss against ln 2 (policy == reference), and on ``static`` batches the largest
difference between the two sides' per-step losses.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from vs_trl_data import LlamaShape, make_rows, save_random_llama, write_rows

SHAPES = {
    "cpu": LlamaShape(dim=256, layers=5, heads=4, kv_heads=2, ffn=768, vocab=8192),
    "h100": LlamaShape(dim=2048, layers=16, heads=32, kv_heads=8, ffn=8192, vocab=128_256),
    "tiny": LlamaShape(dim=64, layers=1, heads=4, kv_heads=2, ffn=96, vocab=512),
}
MEDIAN_KEYS = ("ms_per_step", "real_tokens_per_s", "padding_efficiency", "peak_memory_gib", "mfu")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="cpu")
    for name in ("dim", "layers", "heads", "kv_heads", "ffn", "vocab"):
        parser.add_argument(f"--{name}", type=int, help="overrides the shape's value")
    parser.add_argument("--data", choices=["chat", "fixed"], default="chat")
    parser.add_argument("--seq_len", type=int, default=1024, help="fixed length, or chat maximum")
    parser.add_argument("--batch_pairs", type=int, default=8, help="pairs per static batch")
    parser.add_argument("--mode", default="static", help="static, own, or both: static,own")
    parser.add_argument(
        "--layout", choices=["padded", "packed"], help="static: padded; own: packed"
    )
    parser.add_argument("--max_num_tokens", type=int, default=8192, help="own: token budget")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="TRL's timed steps")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--sides", default="ours,trl", help="ours, trl, both, or none")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], help="cuda: bf16, cpu: fp32")
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument(
        "--reference",
        choices=["live", "cached"],
        default="live",
        help="ours: run the reference model each step, or read its log-probs computed once "
        "(reference_model.cache); TRL always runs it",
    )
    parser.add_argument(
        "--no_logits_check",
        dest="logits_check",
        action="store_false",
        help="skip comparing fairseq2's logits with transformers' (saves a model load)",
    )
    parser.add_argument(
        "--work", type=Path, help="keep the random checkpoint here and reuse it (same shape)"
    )
    parser.add_argument("--activation_checkpointing", action="store_true")
    parser.add_argument("--no_fused_adamw", dest="fused_adamw", action="store_false")
    parser.add_argument(
        "--peak_tflops", type=float, help="dense bf16 peak for MFU (default: by GPU name)"
    )
    parser.add_argument("--trl_python", default="/tmp/trl-env/bin/python")
    parser.add_argument("--side", choices=["ours", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--rows", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    shape = SHAPES[args.shape]
    for name in ("dim", "layers", "heads", "kv_heads", "ffn", "vocab"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(shape, name))
    if args.device is None:
        import torch

        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.dtype is None:
        args.dtype = "bfloat16" if args.device.startswith("cuda") else "float32"
    if args.peak_tflops is None:
        args.peak_tflops = peak_tflops(args.device)
    args.modes = args.mode.split(",")
    if not set(args.modes) <= {"static", "own"}:
        parser.error(f"--mode {args.mode}: use static, own, or static,own.")
    if args.layout is None:
        args.layout = "padded" if args.mode == "static" else "packed"
    return args


PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "L40S": 362.0}
"""Dense bf16 tensor-core peaks (NVIDIA data sheets; H100/H200 SXM), by name fragment."""


def peak_tflops(device: str) -> float:
    """The GPU's dense bf16 peak; H100 SXM's where the name is not listed (MFU is then
    relative to it), and a nominal 1.0 on CPU (no MFU is reported there)."""
    if not device.startswith("cuda"):
        return 1.0
    import torch

    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), PEAK_TFLOPS["H100"])


def run_side(
    side: str, mode: str, args: argparse.Namespace, argv: list[str], work: Path
) -> dict[str, Any]:
    python = sys.executable if side == "ours" else args.trl_python
    command = [python, __file__, *argv, "--side", side, "--mode", mode, "--device", args.device,
               "--checkpoint", str(work / "model"), "--rows", str(work / "rows.jsonl")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"The {side} side ({mode}) failed:\n{result.stderr[-4000:]}")
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return report


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The first run's report with the medians of every timed figure over all runs."""
    out = dict(runs[0])
    for key in MEDIAN_KEYS:
        if key in out:
            out[key] = statistics.median(run[key] for run in runs)
    out["runs_real_tokens_per_s"] = [run["real_tokens_per_s"] for run in runs]
    out["losses"] = out["losses"][:5]
    return out


def ratio(ours: dict[str, Any], trl: dict[str, Any]) -> dict[str, Any]:
    """Ours / TRL for every median figure; on the same static batches, the largest
    difference between the two sides' per-step losses (first run of each)."""
    out: dict[str, Any] = {"ratio": f"ours ({ours['mode']}) / trl"}
    out |= {k: round(ours[k] / trl[k], 3) for k in MEDIAN_KEYS if k in ours and k in trl}
    if ours["mode"] == "static":
        pairs = zip(ours["all_losses"], trl["all_losses"], strict=True)
        out["loss_max_abs_diff"] = max(abs(a - b) for a, b in pairs)
    return out


def has_llama(shape: LlamaShape, path: Path) -> bool:
    """Whether ``path`` holds a checkpoint of ``shape`` (one ``--work`` dir, many runs)."""
    file = path / "config.json"
    if not file.is_file():
        return False
    config = json.loads(file.read_text(encoding="utf-8"))
    wanted = {
        "hidden_size": shape.dim, "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads, "num_key_value_heads": shape.kv_heads,
        "intermediate_size": shape.ffn, "vocab_size": shape.vocab,
        "max_position_embeddings": shape.max_seq_len,
    }  # fmt: skip
    return all(config.get(key) == value for key, value in wanted.items())


def compare(args: argparse.Namespace, argv: list[str]) -> None:
    """Every repeat runs each of this project's modes, then TRL (A B A B ...)."""
    sides = args.sides.split(",")
    runners = [("ours", mode) for mode in args.modes if "ours" in sides]
    runners += [("trl", "static")] if "trl" in sides else []
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {runner: [] for runner in runners}
    with tempfile.TemporaryDirectory(prefix="vs-trl-") as tmp:
        work = args.work or Path(tmp)
        shape = LlamaShape(args.dim, args.layers, args.heads, args.kv_heads, args.ffn,
                           args.vocab, max_seq_len=max(4096, args.seq_len))  # fmt: skip
        if not has_llama(shape, work / "model"):
            save_random_llama(shape, work / "model")
        pairs = args.batch_pairs * (args.warmup + args.steps)
        write_rows(make_rows(args.data, pairs, args.vocab, args.seq_len), work / "rows.jsonl")
        for _ in range(args.repeats):
            for side, mode in runners:
                try:
                    runs[side, mode].append(run_side(side, mode, args, argv, work))
                except RuntimeError as ex:  # one side's failure loses no other figure
                    print(ex, file=sys.stderr, flush=True)
                    continue
                print(json.dumps(runs[side, mode][-1]), file=sys.stderr, flush=True)  # progress

    reports = {runner: summary(side_runs) | {"all_losses": side_runs[0]["losses"]}
               for runner, side_runs in runs.items() if side_runs}  # fmt: skip
    for report in reports.values():
        print(json.dumps({k: v for k, v in report.items() if k != "all_losses"}))
    trl = reports.get(("trl", "static"))
    for (side, _), report in reports.items():
        if side == "ours" and trl is not None:
            print(json.dumps(ratio(report, trl)))


def main() -> None:
    argv = sys.argv[1:]
    args = parse_args(argv)
    if args.side is None:
        compare(args, argv)
        return
    if args.side == "ours":
        from vs_trl_ours import run
    else:
        from vs_trl_trl import run
    print(json.dumps(run(args)))


if __name__ == "__main__":
    main()
