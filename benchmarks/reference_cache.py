"""Training from cached reference log-probs vs a live reference model.

Two measurements (``benchmarks/README.md`` records the figures):

``step``: one preference training step as the train unit runs it — policy
forward + backward, DPO loss, AdamW step — with the reference log-probs either
computed by a live reference model (``--mode live``) or read from the batch
(``--mode cache``, where no reference model is ever built). Each mode runs in a
fresh process so that its peak resident memory (and, on CUDA, peak GPU memory)
is its own::

    .venv/bin/python benchmarks/reference_cache.py step --model_dim 256 --num_layers 4

``sweep``: a 3-point β sweep of DPO through the real command line on a tiny
Llama: three runs with a live reference vs filling the cache once
(``fairseq2 lm preference_reference_logps``) and three runs reading it::

    .venv/bin/python benchmarks/reference_cache.py sweep --steps 30

Synthetic token ids and random weights for ``step``; the generated preference
task of the CPU demo for ``sweep``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from fairseq2.models.llama import LLaMAConfig, create_llama_model

from fairseq2_preference.criteria import create_criterion
from fairseq2_preference.recipe.units import PreferenceComputer
from fairseq2_preference.tiny.assets import TinyModelSpec, build_tiny_assets

sys.path.insert(0, str(Path(__file__).parent))
from preference_step import device_name, make_batch, time_steps

REPO = Path(__file__).resolve().parents[1]
FAIRSEQ2 = Path(sys.executable).with_name("fairseq2")
BETAS = (0.05, 0.1, 0.2)


def step_benchmark(args: argparse.Namespace) -> dict[str, object]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = TinyModelSpec(model_dim=args.model_dim, num_layers=args.num_layers,
                         num_attn_heads=max(4, args.model_dim // 64), num_key_value_heads=2,
                         max_seq_len=max(1024, args.seq_len))  # fmt: skip
    config = LLaMAConfig(**spec.model_config(args.vocab_size))  # type: ignore[arg-type]
    torch.manual_seed(0)
    policy = create_llama_model(config).to(device)
    batch = make_batch(args.pairs, args.seq_len, args.prompt_len, args.vocab_size, device)
    reference = None
    if args.mode == "live":
        reference = create_llama_model(config).to(device).requires_grad_(False).eval()
        reference.load_state_dict(policy.state_dict())
    else:
        batch.reference_logps = torch.randn(2 * args.pairs, device=device) - 50.0
    computer = PreferenceComputer(policy, reference, create_criterion("dpo"))
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-5)

    def step() -> None:
        computer(batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds = time_steps(step, args.warmup, args.steps, device)
    params = sum(p.numel() for p in policy.parameters())
    report: dict[str, object] = {
        "mode": args.mode,
        "device": device_name(device),
        "params": params,
        "reference_weights_mib": round(4 * params / 2**20, 1) if reference is not None else 0,
        "ms_per_step": round(1000 * seconds, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    if device.type == "cuda":
        report["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20)
    return report


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - start


def sweep_benchmark(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="reference-cache-bench-") as tmp:
        work = Path(tmp)
        spec = TinyModelSpec(model_dim=args.model_dim, num_layers=args.num_layers)
        cards = build_tiny_assets(work / "assets", spec)

        def command(name: str, out: str, *overrides: str) -> list[str]:
            return [
                str(FAIRSEQ2), "lm", name, str(work / out),
                "--config-file", str(REPO / "example_configurations" / "tiny_dpo_cpu.yaml"),
                "--no-rich", "--config", f"common.assets.extra_paths=[{cards}]",
                f"regime.num_steps={args.steps}", f"regime.validate_every_n_steps={args.steps}",
                f"regime.checkpoint_every_n_steps={args.steps}",
                f"reference_model.cache_dir={work / 'cache'}", *overrides,
            ]  # fmt: skip

        live = [timed(command("preference_finetune", f"live_{b}", f"criterion.config.beta={b}"))
                for b in BETAS]  # fmt: skip
        fill = timed(command("preference_reference_logps", "fill"))
        cached = [
            timed(command("preference_finetune", f"cached_{b}", f"criterion.config.beta={b}",
                          "reference_model.cache=read"))
            for b in BETAS
        ]  # fmt: skip
    return {
        "model_dim": args.model_dim,
        "num_layers": args.num_layers,
        "steps_per_run": args.steps,
        "live_runs_s": [round(t, 1) for t in live],
        "fill_s": round(fill, 1),
        "cached_runs_s": [round(t, 1) for t in cached],
        "live_total_s": round(sum(live), 1),
        "fill_plus_cached_total_s": round(fill + sum(cached), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    step = sub.add_parser("step", help="step time and peak memory, live vs cached reference")
    step.add_argument("--mode", choices=["live", "cache", "both"], default="both")
    step.add_argument("--model_dim", type=int, default=256)
    step.add_argument("--num_layers", type=int, default=4)
    step.add_argument("--vocab_size", type=int, default=8_000)
    step.add_argument("--pairs", type=int, default=8)
    step.add_argument("--seq_len", type=int, default=128)
    step.add_argument("--prompt_len", type=int, default=32)
    step.add_argument("--steps", type=int, default=10)
    step.add_argument("--warmup", type=int, default=2)
    sweep = sub.add_parser("sweep", help="3-point β sweep: 3 live runs vs fill + 3 cached runs")
    sweep.add_argument("--model_dim", type=int, default=256)
    sweep.add_argument("--num_layers", type=int, default=4)
    sweep.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    if args.what == "sweep":
        print(json.dumps(sweep_benchmark(args)))
    elif args.mode != "both":
        print(json.dumps(step_benchmark(args)))
    else:
        reports = []
        for mode in ("live", "cache"):
            argv = [*sys.argv[1:], "--mode", mode]  # the last --mode wins
            out = subprocess.run([sys.executable, __file__, *argv], capture_output=True,
                                 text=True, check=True).stdout  # fmt: skip
            reports.append(json.loads(out.strip().splitlines()[-1]))
        live, cache = reports
        ratio = float(str(cache["ms_per_step"])) / float(str(live["ms_per_step"]))
        print(json.dumps({"live": live, "cache": cache, "cache_over_live": round(ratio, 2)}))


if __name__ == "__main__":
    main()
