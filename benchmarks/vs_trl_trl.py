"""TRL's side of ``vs_trl.py``: ``DPOTrainer`` on the shared checkpoint and token ids.

Runs in TRL's own environment (``benchmarks/trl_env.sh``); imports neither
fairseq2 nor this project.

TRL 1.16 always tokenizes its dataset (``DPOTrainer._prepare_dataset``: text
``prompt``/``chosen``/``rejected`` through the processing class, the completion
starting where prompt and prompt + completion diverge). To hand it the exact
token ids, each id ``i`` is written as the word ``t<i>`` and the processing class
is a word-level ``PreTrainedTokenizerFast`` mapping ``t<i>`` back to ``i`` (no
special tokens added; responses already end with EOS, so TRL appends none).

Everything else is TRL's default path: its ``DataCollatorForPreference``
(right-padded ``[2N, W]`` batches), the fused LM head that computes log-probs
in chunks, a reference model loaded from the same directory. Two documented
``Trainer`` hooks are overridden: the sampler (sequential, so the batches are
the rows in file order, as on this project's ``static`` side) and
``compute_loss`` (to keep each step's loss, detached, without a sync).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from vs_trl_data import (
    EOS_ID,
    PAD_ID,
    UNK_ID,
    Measurement,
    param_counts,
    read_rows,
    real_tokens,
    synchronize,
)

SPECIAL = {PAD_ID: "<pad>", UNK_ID: "<unk>", EOS_ID: "<eos>"}
"""Special tokens are matched inside words first, so none may be a prefix of ``t<i>``."""


def word(i: int) -> str:
    return SPECIAL.get(i, f"t{i}")


def id_tokenizer(vocab: int) -> Any:
    """A tokenizer whose text ``"t5 t17"`` encodes to ``[5, 17]``."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    words = Tokenizer(WordLevel({word(i): i for i in range(vocab)}, unk_token=word(UNK_ID)))
    words.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=words,
        pad_token=word(PAD_ID),
        eos_token=word(EOS_ID),
        unk_token=word(UNK_ID),
    )


def as_text(ids: list[int]) -> str:
    return " ".join(word(i) for i in ids)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    device = torch.device(args.device)
    warmup, total = args.warmup, args.warmup + args.steps
    rows = read_rows(Path(args.rows))[: args.batch_pairs * total]
    dataset = Dataset.from_list(
        [
            {
                "prompt": as_text(r["prompt"]) + " ",
                "chosen": as_text(r["chosen"]),
                "rejected": as_text(r["rejected"]),
            }
            for r in rows
        ]
    )
    bf16 = args.dtype == "bfloat16"
    config = DPOConfig(
        output_dir=tempfile.mkdtemp(prefix="trl-bench-"),
        per_device_train_batch_size=args.batch_pairs,
        max_steps=total,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        optim="adamw_torch_fused" if args.fused_adamw else "adamw_torch",
        bf16=bf16,
        use_cpu=device.type == "cpu",
        gradient_checkpointing=args.activation_checkpointing,
        max_length=None,
        beta=0.1,
        model_init_kwargs={"dtype": "float32", "attn_implementation": "sdpa"},
        logging_steps=total + 1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        seed=0,
    )

    losses: list[torch.Tensor] = []
    shapes: list[int] = []
    clock: dict[str, float] = {}

    class Trainer(DPOTrainer):  # type: ignore[misc]
        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            return SequentialSampler(self.train_dataset if train_dataset is None else train_dataset)

        def compute_loss(self, model: Any, inputs: dict[str, Any], *a: Any, **kw: Any) -> Any:
            shapes.append(inputs["input_ids"].numel())
            loss = super().compute_loss(model, inputs, *a, **kw)
            losses.append((loss[0] if isinstance(loss, tuple) else loss).detach())
            return loss

    class Timer(TrainerCallback):
        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == warmup:
                synchronize(device)
                clock["start"] = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == total:
                synchronize(device)
                clock["end"] = time.perf_counter()

    trainer = Trainer(
        model=args.checkpoint,
        args=config,
        train_dataset=dataset,
        processing_class=id_tokenizer(args.vocab),
        callbacks=[Timer()],
    )
    first = trainer.train_dataset[0]
    if any(first[f"{key}_ids"] != rows[0][key] for key in ("prompt", "chosen", "rejected")):
        raise RuntimeError("TRL does not see the benchmark's token ids; check `id_tokenizer`.")
    trainer.train()

    timed_rows = rows[args.batch_pairs * args.warmup :]
    model = trainer.model
    measurement = Measurement(
        side="trl",
        seconds=clock["end"] - clock["start"],
        steps=args.steps,
        real_tokens=real_tokens(timed_rows),
        model_real_tokens=real_tokens(timed_rows),
        computed_tokens=sum(shapes[args.warmup :]),
        params=param_counts(model, model.get_input_embeddings()),
        losses=[float(x) for x in losses],
    )
    import accelerate
    import trl

    report = measurement.report(device, args.peak_tflops) | {"mode": "static", "packed": False}
    report["versions"] |= {"trl": trl.__version__, "accelerate": accelerate.__version__}
    return report
