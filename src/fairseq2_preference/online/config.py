"""The config of ``fairseq2 lm preference_iterate``: a YAML file, plus ``--config k=v``.

The stages of a round are our own fairseq2 commands, each run with its own
config: ``sample`` and ``train`` name a config file and overrides for
``preference_sample`` and ``preference_finetune``, ``overrides`` go to both
(asset paths, the tokenizer), and the driver adds what changes per round (the
policy, the reference, the data, the seed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.online.judges import JudgeConfig


@dataclass(kw_only=True)
class PolicySection:
    """A model as training configs name it; one of ``name`` and ``path``."""

    name: str | None = None
    """An asset card, or ``last_checkpoint`` / ``checkpoint_step_<N>`` of ``checkpoint_dir``."""

    path: str | None = None
    """A Llama directory (Hugging Face or Meta format, e.g. an ``export_hf`` output)."""

    checkpoint_dir: str | None = None
    """A run's ``checkpoints/`` directory, for checkpoint names."""


@dataclass(kw_only=True)
class PromptSection:
    path: str
    """A jsonl file or dataset directory: prompt rows ``{src, id?, ...}`` (for
    ``eval_pairs``, ``generic_preference`` rows)."""

    split: str = "train"
    """The split to read when ``path`` has split sub-directories."""


@dataclass(kw_only=True)
class StageSection:
    config_file: str | None = None
    """The stage command's config file (its defaults otherwise); relative to the
    iterate config file when given there, else to the working directory."""

    overrides: list[str] = field(default_factory=list)
    """``key=value`` overrides of the stage command's config."""


@dataclass(kw_only=True)
class IterateConfig:
    policy: PolicySection
    """The starting policy (typically the SFT model): round 1 samples from it and
    uses it as the reference; round r starts from round r-1's policy, its reference."""

    prompts: PromptSection
    """The training prompts."""

    prompts_per_round: int | None = None
    """``None``: every training prompt, every round. N: round r samples the r-th
    block of N prompts of a shuffle seeded by ``seed`` — fresh prompts each round,
    as iterative DPO recipes do (Xiong et al. 2024 split theirs in three) — going
    on from the shuffle's start when it runs out."""

    held_out: PromptSection | None = None
    """Prompts never trained on: each policy's completions on them are judged
    (the held-out score) and paired for DPO's validation."""

    eval_pairs: PromptSection | None = None
    """Labelled preference pairs (``generic_preference`` rows) never trained on: after
    each round, the share the policy's implicit reward against the start policy
    ranks right (``online/pair_eval.py``)."""

    rounds: int = 3
    """R: raising it on a finished output directory runs the extra rounds."""

    samples_per_prompt: int = 4
    """K completions sampled per prompt and round."""

    pairs_per_prompt: int = 1
    """Pairs per prompt: best vs worst, then second best vs second worst, ... while
    their scores differ (``online/pairs.py``)."""

    judge: JudgeConfig = field(default_factory=JudgeConfig)

    overrides: list[str] = field(default_factory=list)
    """Overrides for both stages: ``common.assets.extra_paths=[...]``, ``tokenizer.name=...``."""

    sample: StageSection = field(default_factory=StageSection)
    """``preference_sample``: the sampler (``seq_generator.config.temperature``,
    ``max_gen_len``), the batch size."""

    train: StageSection = field(default_factory=StageSection)
    """``preference_finetune``: the criterion (DPO by default), optimizer and regime."""

    launcher: list[str] = field(default_factory=list)
    """The command that runs ``fairseq2`` on every rank, e.g. ``[torchrun,
    --standalone, --nproc_per_node=8, -m, fairseq2_preference]`` or ``[srun, python,
    -m, fairseq2_preference]``; default: this Python, one process."""

    seed: int = 2
    """Round r's stages run with ``common.seed = seed + r``."""


def load_config(file: Path | None, overrides: list[str]) -> IterateConfig:
    """The config of ``file`` with dotted ``key=value`` overrides (values in YAML)."""
    from fairseq2.utils.structured import StandardValueConverter, StructureError

    tree: dict[str, Any] = {}
    if file is not None:
        if not file.is_file():
            raise PreferenceConfigError(f"Config file {file} does not exist.")
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise PreferenceConfigError(f"{file}: expected a mapping of config keys.")
        tree = loaded
        for stage in ("sample", "train"):
            section = tree.get(stage)
            if isinstance(section, dict) and isinstance(section.get("config_file"), str):
                section["config_file"] = str((file.parent / section["config_file"]).resolve())
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep or not key:
            raise PreferenceConfigError(f"--config {override!r}: expected key=value.")
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    try:
        config: IterateConfig = StandardValueConverter().structure(tree, IterateConfig)
    except StructureError as error:
        causes: list[BaseException] = []
        cause: BaseException | None = error
        while cause is not None:
            causes.append(cause)
            cause = cause.__cause__
        raise PreferenceConfigError(
            f"The preference_iterate config is not valid: {' '.join(map(str, causes))} (see "
            "OVERVIEW.md, 'Online, iterative DPO')."
        ) from None
    if config.prompts_per_round is not None and config.prompts_per_round < 1:
        raise PreferenceConfigError("`prompts_per_round` must be at least 1 (or null: all).")
    if config.rounds < 1 or config.samples_per_prompt < 2 or config.pairs_per_prompt < 1:
        raise PreferenceConfigError(
            "`rounds` and `pairs_per_prompt` must be at least 1 and `samples_per_prompt` at "
            "least 2 (a pair needs two)."
        )
    policy = config.policy
    if (policy.name is None) == (policy.path is None):
        raise PreferenceConfigError("Set exactly one of `policy.name` and `policy.path`.")
    checkpoint = policy.name == "last_checkpoint" or str(policy.name).startswith("checkpoint_")
    if checkpoint and policy.checkpoint_dir is None:
        raise PreferenceConfigError(
            f"`policy.name: {policy.name}` names a checkpoint: set `policy.checkpoint_dir` "
            "to the run's checkpoints/ directory (e.g. an SFT run's)."
        )
    return config


def uses_lora(train: StageSection) -> bool:
    """Whether the train stage's config file or overrides set a ``lora`` section."""
    overrides = [o for o in train.overrides if o.split("=", 1)[0].split(".")[0] == "lora"]
    if overrides:  # the last one decides
        return not overrides[-1].replace(" ", "").endswith("=null")
    if train.config_file is None or not Path(train.config_file).is_file():
        return False
    stage = yaml.safe_load(Path(train.config_file).read_text(encoding="utf-8")) or {}
    return isinstance(stage, dict) and stage.get("lora") is not None


def unstructure(config: IterateConfig) -> dict[str, Any]:
    from fairseq2.utils.structured import StandardValueConverter

    tree: dict[str, Any] = StandardValueConverter().unstructure(config)  # type: ignore[assignment]
    return tree
