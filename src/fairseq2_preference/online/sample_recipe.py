"""``fairseq2 lm preference_sample``: K sampled completions per prompt, data-parallel.

A fairseq2 generator recipe, as ``alpaca_eval``: fairseq2 loads the policy (by
card, ``model.path``, or ``last_checkpoint`` of ``common.assets.prev_checkpoint_dir``),
builds the sampler from ``seq_generator`` and the gangs. Each data-parallel rank
samples its shard of the prompts, every prompt ``samples_per_prompt`` times (fairseq2's
sampler draws one sequence per input row, so a prompt is repeated); rank 0 writes
``OUT/samples.jsonl``: the prompt rows in order, each with its ``completions`` as
decoded, unstripped (a completion is trained on after its prompt as sampled: a
leading space is part of its first token).
The first stage of every ``preference_iterate`` round, and usable alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fairseq2.data.tokenizers import Tokenizer
from fairseq2.generation import SequenceGenerator
from fairseq2.recipe.base import Recipe, RecipeContext
from fairseq2.recipe.config import (
    SAMPLING_GENERATOR,
    CommonSection,
    GangSection,
    GeneratorSection,
    ReferenceModelSection,
    SamplingConfig,
    SequenceGeneratorSection,
    SupportsStructure,
    TokenizerSection,
)
from fairseq2.runtime.dependency import DependencyResolver
from fairseq2.task import Task
from typing_extensions import override

from fairseq2_preference.errors import PreferenceConfigError
from fairseq2_preference.io import atomic_write_jsonl
from fairseq2_preference.models.checkpoints import describe_tokenizer_path, follow_policy
from fairseq2_preference.models.dp_generation import (
    INDEX,
    RankOutputs,
    RowGenerationUnit,
    prompt_reader,
)
from fairseq2_preference.online.prompts import load_prompts

SAMPLES_FILE = "samples.jsonl"
DEFAULT_POLICY = "llama3_1_8b_instruct"


@dataclass(kw_only=True)
class SampleSection:
    prompts: str | None = None
    """Prompt rows ``{src, id?, ...}``: a jsonl file or a dataset directory
    (``online/prompts.py``); their other fields are kept for the judge."""

    split: str = "train"
    """The split to read when ``prompts`` has split sub-directories."""

    samples_per_prompt: int = 4
    """Completions drawn per prompt (K)."""

    batch_size: int = 16
    """Sequences per generation batch, per GPU."""


@dataclass(kw_only=True)
class SampleConfig(SupportsStructure):
    model: ReferenceModelSection = field(
        default_factory=lambda: ReferenceModelSection(name=DEFAULT_POLICY)
    )

    tokenizer: TokenizerSection = field(
        default_factory=lambda: TokenizerSection(name=DEFAULT_POLICY)
    )

    gang: GangSection = field(default_factory=lambda: GangSection())

    generator: GeneratorSection = field(default_factory=lambda: GeneratorSection())

    seq_generator: SequenceGeneratorSection = field(
        default_factory=lambda: SequenceGeneratorSection(
            name=SAMPLING_GENERATOR, config=SamplingConfig(temperature=1.0, max_gen_len=512)
        )
    )
    """Ancestral sampling at temperature 1 with fairseq2's top-p 0.9 by default:
    online preference data needs completions that differ."""

    sample: SampleSection = field(default_factory=lambda: SampleSection())

    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))

    @override
    def structure(self, resolver: DependencyResolver) -> None:
        describe_tokenizer_path(self.tokenizer)
        follow_policy(self.model, None, self.tokenizer, DEFAULT_POLICY)


class SampleRecipe(Recipe):
    @override
    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(SampleConfig)
        section = config.sample
        if section.prompts is None:
            raise PreferenceConfigError(
                "Set `sample.prompts` to a jsonl file or dataset directory."
            )
        if section.samples_per_prompt < 1:
            raise PreferenceConfigError("`sample.samples_per_prompt` must be at least 1.")
        prompts = load_prompts(section.prompts, section.split)
        tokenizer = context.get_tokenizer()
        sampling = config.seq_generator.config
        max_gen_len = getattr(sampling, "max_gen_len", None)
        unit = SampleUnit(
            context.get_seq_generator(),
            tokenizer,
            RankOutputs(context.output_dir, context.gangs),
            context.output_dir,
            max_gen_len if isinstance(max_gen_len, int) else None,
            getattr(sampling, "max_seq_len", None),
        )
        reader = prompt_reader(
            prompts,
            lambda row: str(row["src"]),
            tokenizer,
            context.gangs,
            section.batch_size,
            repeat=section.samples_per_prompt,
        )
        return context.create_generator(unit, reader)

    @property
    @override
    def config_kls(self) -> type[object]:
        return SampleConfig


class SampleUnit(RowGenerationUnit):
    def __init__(
        self,
        generator: SequenceGenerator,
        tokenizer: Tokenizer,
        outputs: RankOutputs,
        output_dir: Path,
        max_gen_len: int | None,
        max_seq_len: int | None,
    ) -> None:
        super().__init__(generator, tokenizer, outputs, max_gen_len, max_seq_len)
        self._output_dir = output_dir

    @override
    def output_row(self, row: Mapping[str, Any], text: str, cut: bool) -> dict[str, Any]:
        return {**row, "completion": text, "cut": cut}

    @override
    def finish(self, rows: list[dict[str, Any]]) -> None:
        atomic_write_jsonl(self._output_dir / SAMPLES_FILE, group_samples(rows))


def group_samples(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per prompt, in prompt order, with its ``completions`` in sampling order
    and, for each, whether it was ``cut`` at the length limit."""
    grouped: dict[int, dict[str, Any]] = {}
    for row in rows:
        prompt = grouped.setdefault(
            row[INDEX],
            {**{k: v for k, v in row.items() if k not in (INDEX, "completion", "cut")},
             "completions": [], "cut": []},
        )  # fmt: skip
        prompt["completions"].append(row["completion"])
        prompt["cut"].append(row["cut"])
    return list(grouped.values())
