"""``fairseq2 lm preference_iterate``: online, iterative DPO in rounds.

Round r (Xu et al. 2023, arXiv 2312.16682; Xiong et al. 2024, arXiv 2312.11456):

1. ``sample`` — ``preference_sample`` draws K completions per prompt from policy
   r-1 (round 0's policy is ``policy``), data-parallel under ``launcher``;
2. ``scores`` — the judge scores every completion (in this process);
3. ``pairs`` — best vs worst per prompt (``online/pairs.py``): the training
   prompts' pairs train, the held-out prompts' pairs validate;
4. ``train`` — ``preference_finetune`` from policy r-1 with policy r-1 as the
   reference (DPO unless ``train`` says otherwise), under ``launcher``.

Everything a round makes stays in ``OUT/round_<r>/``: ``prompts.jsonl``,
``sample/`` (``samples.jsonl`` and the stage's logs), ``scores.jsonl``,
``pairs/{train,dev}/``, ``train/`` (a training run: checkpoints, metrics) and,
once the round is over, ``summary.json``. A stage whose output exists is not
run again, so rerunning the command resumes: finished rounds are skipped, an
interrupted training run resumes from its last checkpoint (fairseq2), an
interrupted sampling stage starts over. ``OUT/eval_policy_<R>/`` holds the
last policy's held-out samples and scores, ``OUT/rounds.jsonl`` one row per
policy. The config is kept in ``OUT/iterate.yaml``; a rerun may change only
``rounds`` (more runs further; fewer stops earlier) and the ``launcher`` (e.g. a
smaller allocation after a failure).
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from fairseq2_preference.errors import PreferenceConfigError, PreferenceDataError
from fairseq2_preference.io import atomic_write_jsonl, atomic_write_text
from fairseq2_preference.online.config import (
    IterateConfig,
    PolicySection,
    unstructure,
    uses_lora,
)
from fairseq2_preference.online.judging import check_judge, create_judge
from fairseq2_preference.online.pair_eval import SUMMARY as LOGPS_SUMMARY
from fairseq2_preference.online.pair_eval import reward_accuracy, sequence_logps
from fairseq2_preference.online.pairs import best_vs_worst
from fairseq2_preference.online.prompts import load_prompts
from fairseq2_preference.online.sample_recipe import SAMPLES_FILE

CONFIG_FILE = "iterate.yaml"
SUMMARY = "summary.json"
TRAIN, HELD_OUT = "train", "held_out"
RESUMABLE = ("rounds", "launcher")
"""What a rerun may change: how many rounds, and how the stages are launched."""

Runner = Callable[[list[str], Path], None]
"""Runs ``fairseq2 ARGS`` (on every rank), its output in the given log file."""


class StageFailed(RuntimeError):
    pass


def subprocess_runner(launcher: Sequence[str]) -> Runner:
    prefix = list(launcher) or [sys.executable, "-m", "fairseq2_preference"]

    def run(args: list[str], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w", encoding="utf-8") as stream:
            status = subprocess.run(
                [*prefix, *args], stdout=stream, stderr=subprocess.STDOUT, check=False
            ).returncode
        if status != 0:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-25:])
            raise StageFailed(
                f"`fairseq2 {' '.join(args[:3])}` failed (exit {status}); its log is {log}. "
                f"Fix the cause and rerun the same command to resume. Last lines:\n{tail}"
            )

    return run


class Iteration:
    def __init__(self, config: IterateConfig, out_dir: Path, run: Runner | None = None) -> None:
        self.config = config
        self.out_dir = out_dir
        self.run = run or subprocess_runner(config.launcher)
        self.run_one = run or subprocess_runner([])  # a single process, whatever the launcher
        self.lora = uses_lora(config.train)  # rounds hand on merged exports, not checkpoints

    def __call__(self) -> list[dict[str, Any]]:
        """Run the rounds not yet done; the rows of ``rounds.jsonl``."""
        check_judge(self.config.judge)
        self.check_config()
        rows = []
        policy = self.config.policy
        for r in range(1, self.config.rounds + 1):
            rows.append(self.round(r, policy))
            policy = self.next_policy(r)
        if self.config.held_out is not None:
            rows.append(self.evaluate(self.config.rounds, policy))
        atomic_write_jsonl(self.out_dir / "rounds.jsonl", rows)
        return rows

    def round_dir(self, r: int) -> Path:
        return self.out_dir / f"round_{r}"

    def next_policy(self, r: int) -> PolicySection:
        """The policy round ``r`` trained: its run's last checkpoint, or with LoRA the
        merged model exported from it (adapter-only checkpoints cannot be sampled)."""
        if self.lora:
            return PolicySection(path=str(self.round_dir(r) / "policy"))
        checkpoints = self.round_dir(r) / "train" / "checkpoints"
        return PolicySection(name="last_checkpoint", checkpoint_dir=str(checkpoints))

    def check_config(self) -> None:
        file = self.out_dir / CONFIG_FILE
        current = unstructure(self.config)
        if file.is_file():
            recorded = yaml.safe_load(file.read_text(encoding="utf-8"))
            changed = sorted(
                key for key in {*recorded, *current}
                if key not in RESUMABLE and recorded.get(key) != current.get(key)
            )  # fmt: skip
            if changed:
                raise PreferenceConfigError(
                    f"{self.out_dir} holds rounds run with another config ({', '.join(changed)} "
                    f"differ from {file}). Use another output directory; only "
                    f"{' and '.join(RESUMABLE)} may change."
                )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(file, yaml.safe_dump(current, sort_keys=False))

    def round(self, r: int, policy: PolicySection) -> dict[str, Any]:
        directory = self.round_dir(r)
        if (directory / SUMMARY).is_file():
            done: dict[str, Any] = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
            return done
        scored = self.sample_and_score(directory, r, policy, self.prompts(r))
        drops: Counter[str] = Counter()
        pairs = {
            split: best_vs_worst(
                [row for row in scored if row["split"] == split],
                [row["scores"] for row in scored if row["split"] == split],
                drops if split == TRAIN else Counter(),
                self.config.pairs_per_prompt,
            )
            for split in (TRAIN, HELD_OUT)
        }
        if not pairs[TRAIN]:
            raise PreferenceDataError(
                f"Round {r}: no training pair ({dict(drops)}): the judge scored every prompt's "
                f"completions the same. Sample more (samples_per_prompt), more diversely "
                f"(sample: seq_generator.config.temperature), or use a finer judge."
            )
        for split, name in ((TRAIN, "train"), (HELD_OUT, "dev")):
            if pairs[split]:
                atomic_write_jsonl(
                    directory / "pairs" / name / "data.chunk.0000.jsonl", pairs[split]
                )
        if not (directory / "train.done").is_file():
            self.train(directory, r, policy)
            atomic_write_text(directory / "train.done", "")
        merged = directory / "policy"
        if self.lora and not merged.is_dir():  # written whole or not at all
            export = ["lm", "export_hf", str(directory / "train"), str(merged)]
            self.run_one(export, directory / "policy.log")
        trained = self.next_policy(r)
        summary = {
            "round": r,
            "policy": describe(policy),
            "pairs": len(pairs[TRAIN]),
            "held_out_pairs": len(pairs[HELD_OUT]),
            "dropped": dict(sorted(drops.items())),
            **mean_scores(scored),
            **training_metrics(directory / "train"),
            "eval_reward_accuracy": self.eval_accuracy(directory, trained),
        }
        atomic_write_text(directory / SUMMARY, json.dumps(summary, indent=2) + "\n")
        return summary

    def evaluate(self, r: int, policy: PolicySection) -> dict[str, Any]:
        """The held-out score of round ``r``'s policy (sampled as in training rounds)."""
        directory = self.out_dir / f"eval_policy_{r}"
        if (directory / SUMMARY).is_file():
            done: dict[str, Any] = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
            return done
        held_out = [row for row in self.prompts(r) if row["split"] == HELD_OUT]
        scored = self.sample_and_score(directory, r + 1, policy, held_out)
        summary = {"round": None, "policy": describe(policy), **mean_scores(scored)}
        atomic_write_text(directory / SUMMARY, json.dumps(summary, indent=2) + "\n")
        return summary

    def prompts(self, r: int) -> list[dict[str, Any]]:
        """Round ``r``'s training prompts (``prompts_per_round``), then every held-out one."""
        train = load_prompts(self.config.prompts.path, self.config.prompts.split)
        held_out = self.config.held_out
        held_out_rows = [] if held_out is None else load_prompts(held_out.path, held_out.split)
        trained = {row["src"] for row in train}
        if shared := [row["id"] for row in held_out_rows if row["src"] in trained]:
            raise PreferenceDataError(
                f"{len(shared)} held-out prompt(s) are also training prompts (e.g. {shared[0]!r} "
                "of held_out): a held-out score must come from prompts never trained on. "
                "Remove them from one of the two."
            )
        per_round = self.config.prompts_per_round
        if per_round is not None and per_round < len(train):
            order = random.Random(self.config.seed).sample(range(len(train)), len(train))
            start = (r - 1) * per_round % len(train)
            train = [train[i] for i in sorted((order * 2)[start : start + per_round])]
        return [{**row, "split": TRAIN} for row in train] + [
            {**row, "split": HELD_OUT} for row in held_out_rows
        ]

    def sample_and_score(
        self, directory: Path, seed: int, policy: PolicySection, prompts: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        scores_file = directory / "scores.jsonl"
        if scores_file.is_file():
            return read_jsonl(scores_file)
        samples_file = directory / "sample" / SAMPLES_FILE
        if not samples_file.is_file():
            atomic_write_jsonl(directory / "prompts.jsonl", prompts)
            self.stage(
                "preference_sample", directory / "sample", self.config.sample.config_file,
                [*self.config.sample.overrides, *model_overrides(policy, "model"),
                 f"sample.prompts={directory / 'prompts.jsonl'}",
                 f"sample.samples_per_prompt={self.config.samples_per_prompt}",
                 f"common.seed={self.config.seed + seed}"],
            )  # fmt: skip
        samples = read_jsonl(samples_file)
        # Built per round and freed: a reward model's GPU memory belongs to the stages.
        judge = create_judge(self.config.judge)
        scores = judge.score(samples, [row["completions"] for row in samples])
        del judge
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        scored = [{**row, "scores": s} for row, s in zip(samples, scores, strict=True)]
        atomic_write_jsonl(scores_file, scored)
        return scored

    def train(self, directory: Path, r: int, policy: PolicySection) -> None:
        self.stage(
            "preference_finetune", directory / "train", self.config.train.config_file,
            [*self.config.train.overrides, *model_overrides(policy, "model"),
             *model_overrides(policy, "reference_model"), "dataset.name=null",
             "dataset.family=generic_preference",
             f"dataset.config_overrides.path={directory / 'pairs'}",
             f"common.seed={self.config.seed + r}"],
        )  # fmt: skip

    def eval_accuracy(self, directory: Path, policy: PolicySection) -> float | None:
        if self.config.eval_pairs is None:
            return None
        start = self.pair_logps(self.out_dir / "eval_pairs_start", self.config.policy)
        return reward_accuracy(self.pair_logps(directory / "eval_pairs", policy), start)

    def pair_logps(self, out: Path, policy: PolicySection) -> dict[str, tuple[float, float]]:
        """Summed log-probs of ``eval_pairs`` under ``policy`` (``online/pair_eval.py``)."""
        pairs = self.config.eval_pairs
        assert pairs is not None
        if not (out / LOGPS_SUMMARY).is_file():
            self.stage(
                "preference_reference_logps", out, self.config.train.config_file,
                [*self.config.train.overrides, *model_overrides(policy, "model"),
                 *model_overrides(policy, "reference_model"), "dataset.name=null",
                 "dataset.family=generic_preference", f"dataset.config_overrides.path={pairs.path}",
                 f"dataset.train_split={pairs.split}", "dataset.valid_split=null",
                 f"reference_model.cache_dir={self.out_dir / 'logps_cache'}"],
            )  # fmt: skip
        return sequence_logps(out)

    def stage(self, command: str, out: Path, config_file: str | None, overrides: list[str]) -> None:
        args = ["lm", command, str(out), "--no-rich"]
        if config_file is not None:
            args += ["--config-file", config_file]
        args += ["--config", *self.config.overrides, *overrides]
        self.run(args, out.parent / f"{out.name}.log")


def model_overrides(policy: PolicySection, section: str) -> list[str]:
    """The ``model`` / ``reference_model`` section, and the checkpoints it names."""
    overrides = [
        f"{section}.name={policy.name or 'null'}",
        f"{section}.path={policy.path or 'null'}",
    ]
    if policy.checkpoint_dir is not None:
        overrides.append(f"common.assets.prev_checkpoint_dir={policy.checkpoint_dir}")
    return overrides


def describe(policy: PolicySection) -> str:
    if policy.path is not None:
        return policy.path
    if policy.checkpoint_dir is not None:
        return f"{policy.name} of {policy.checkpoint_dir}"
    return str(policy.name)


def mean_scores(scored: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The judge's mean score of the policy's samples on training and held-out prompts."""
    means: dict[str, float | None] = {}
    for split in (TRAIN, HELD_OUT):
        values = [
            s for row in scored if row["split"] == split for s in row["scores"] if not math.isnan(s)
        ]
        means[f"{split}_score"] = sum(values) / len(values) if values else None
    return means


def training_metrics(run: Path) -> dict[str, float | None]:
    """The last logged training and validation loss and reward accuracy of a round."""
    out: dict[str, float | None] = {}
    for split, prefix in (("train", ""), ("valid", "held_out_")):
        file = run / "metrics" / f"{split}.jsonl"
        rows = read_jsonl(file) if file.is_file() else []
        last = rows[-1] if rows else {}
        out[f"{prefix}loss"] = last.get("Loss")
        out[f"{prefix}reward_accuracy"] = last.get("Rewards/Accuracies")
    return out


def read_jsonl(file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line]
