"""``fairseq2 lm alpaca_eval``: AlpacaEval outputs from a model, data-parallel.

A fairseq2 generation recipe: fairseq2 loads the model (by card, path, or
``checkpoint_step_<N>`` / ``last_checkpoint`` of a run named by
``common.assets.prev_checkpoint_dir``), builds the generator from
``seq_generator`` (greedy by default) and shows progress. Each data-parallel rank
answers a shard of the instructions, formatted exactly as in training, and rank
0 writes ``OUT/model_outputs.json`` in the instructions' order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.generation import SequenceGenerator
from fairseq2.recipe.base import Recipe, RecipeContext
from fairseq2.recipe.config import (
    BEAM_SEARCH_GENERATOR,
    BeamSearchConfig,
    CommonSection,
    GangSection,
    GeneratorSection,
    ReferenceModelSection,
    SequenceGeneratorSection,
    SupportsStructure,
    TokenizerSection,
)
from fairseq2.runtime.dependency import DependencyResolver
from fairseq2.task import Task
from typing_extensions import override

from fairseq2_preference.data_prep.formatting import make_formatter
from fairseq2_preference.evaluation.alpaca_data import load_instructions
from fairseq2_preference.evaluation.judge import JudgeSection
from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.models.checkpoints import describe_tokenizer_path, follow_policy
from fairseq2_preference.models.dp_generation import (
    INDEX,
    RankOutputs,
    RowGenerationUnit,
    prompt_reader,
)

MODEL_OUTPUTS = "model_outputs.json"
DEFAULT_EVAL_MODEL = "llama3_1_8b_instruct"


@dataclass(kw_only=True)
class AlpacaEvalSection:
    instructions: str | None = None
    """A local JSON list or jsonl of ``{"instruction", "dataset"?}``; default: the
    805 instructions of the hub's AlpacaEval set."""

    chat_template: str | None = None
    """How prompts are formatted — as in training: ``None`` is the Llama 3 Instruct
    format, else a Hugging Face tokenizer (name or path) whose chat template to use."""

    generator_name: str | None = None
    """The ``generator`` field of the outputs (the leaderboard name); default:
    derived from the model."""

    batch_size: int = 16
    """Instructions per generation batch, per GPU."""


@dataclass(kw_only=True)
class AlpacaEvalConfig(SupportsStructure):
    model: ReferenceModelSection = field(
        default_factory=lambda: ReferenceModelSection(name=DEFAULT_EVAL_MODEL, dtype=torch.bfloat16)
    )

    tokenizer: TokenizerSection = field(
        default_factory=lambda: TokenizerSection(name=DEFAULT_EVAL_MODEL)
    )

    gang: GangSection = field(default_factory=lambda: GangSection())

    generator: GeneratorSection = field(default_factory=lambda: GeneratorSection())

    seq_generator: SequenceGeneratorSection = field(
        default_factory=lambda: SequenceGeneratorSection(
            name=BEAM_SEARCH_GENERATOR, config=BeamSearchConfig(beam_size=1, max_gen_len=2048)
        )
    )
    """Greedy decoding by default; for sampling: ``{name: sampling, config:
    {temperature: 0.7, sampler: {name: top_p, config: {p: 0.9}}, max_gen_len: 2048}}``."""

    alpaca_eval: AlpacaEvalSection = field(default_factory=lambda: AlpacaEvalSection())

    judge: JudgeSection = field(default_factory=lambda: JudgeSection())

    common: CommonSection = field(default_factory=lambda: CommonSection(no_sweep_dir=True))

    @override
    def structure(self, resolver: DependencyResolver) -> None:
        """``model.path=/dir`` alone evaluates a Llama directory (e.g. an ``export_hf``
        output), with its tokenizer unless ``tokenizer`` is set."""
        describe_tokenizer_path(self.tokenizer)
        follow_policy(self.model, None, self.tokenizer, DEFAULT_EVAL_MODEL)


class AlpacaEvalRecipe(Recipe):
    @override
    def create_task(self, context: RecipeContext) -> Task:
        config = context.get_config_as(AlpacaEvalConfig)
        section = config.alpaca_eval
        formatter = make_formatter(section.chat_template)
        instructions = load_instructions(section.instructions)
        unit = AlpacaEvalUnit(
            context.get_seq_generator(),
            context.get_tokenizer(),
            RankOutputs(context.output_dir, context.gangs),
            context.output_dir,
            section.generator_name or generator_name(config),
        )
        reader = prompt_reader(
            instructions,
            lambda row: formatter((("user", row["instruction"]),)),
            context.get_tokenizer(),
            context.gangs,
            section.batch_size,
        )
        return context.create_generator(unit, reader)

    @property
    @override
    def config_kls(self) -> type[object]:
        return AlpacaEvalConfig


def generator_name(config: AlpacaEvalConfig) -> str:
    """``<model card>``, or ``<run dir>_<checkpoint card>`` for a checkpoint of a run."""
    model = config.model
    name = model.name or (Path(model.path).stem if model.path else "model")
    previous = config.common.assets.prev_checkpoint_dir
    if previous is not None and "checkpoint" in name:
        return f"{Path(previous).parent.name}_{name}"
    return name


class AlpacaEvalUnit(RowGenerationUnit):
    def __init__(
        self,
        generator: SequenceGenerator,
        tokenizer: Tokenizer,
        outputs: RankOutputs,
        output_dir: Path,
        name: str,
    ) -> None:
        super().__init__(generator, tokenizer, outputs)
        self._output_dir = output_dir
        self._name = name

    @override
    def output_row(self, row: Mapping[str, Any], text: str, cut: bool) -> dict[str, Any]:
        return {
            INDEX: row[INDEX],
            "instruction": row["instruction"],
            "output": text.strip(),
            "generator": self._name,
            "dataset": row["dataset"],
        }

    @override
    def finish(self, rows: list[dict[str, Any]]) -> None:
        outputs = [{k: v for k, v in row.items() if k != INDEX} for row in rows]
        atomic_write_text(
            self._output_dir / MODEL_OUTPUTS,
            json.dumps(outputs, indent=2, ensure_ascii=False) + "\n",
        )
