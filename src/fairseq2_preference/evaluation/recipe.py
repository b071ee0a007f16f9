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
from typing import Any, TextIO

import torch
from fairseq2.data.data_pipeline import read_sequence
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.datasets import DataPipelineReader, SequenceBatch, SyncMode
from fairseq2.gang import Gangs
from fairseq2.generation import SequenceGenerator
from fairseq2.generator import GeneratorUnit
from fairseq2.metrics import MetricBag
from fairseq2.metrics.common import add_seq_generator_metrics, update_seq_generator_metrics
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
from torch.nn.utils.rnn import pad_sequence
from typing_extensions import override

from fairseq2_preference.data_prep.formatting import PromptFormatter, make_formatter
from fairseq2_preference.evaluation.alpaca_data import load_instructions
from fairseq2_preference.evaluation.judge import JudgeSection
from fairseq2_preference.io import atomic_write_text
from fairseq2_preference.models.checkpoints import describe_tokenizer_path, follow_policy

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
        gangs = context.gangs
        tokenizer = context.get_tokenizer()
        formatter = make_formatter(section.chat_template)

        instructions = load_instructions(section.instructions)
        rank_file = context.output_dir / "outputs" / f"rank_{gangs.dp.rank}.jsonl"
        stream = None
        if gangs.tp.rank == 0:
            rank_file.parent.mkdir(parents=True, exist_ok=True)
            stream = rank_file.open("w", encoding="utf-8")

        unit = AlpacaEvalUnit(
            context.get_seq_generator(),
            tokenizer,
            stream,
            gangs,
            context.output_dir,
            section.generator_name or generator_name(config),
        )
        reader = instruction_reader(instructions, formatter, tokenizer, gangs, section.batch_size)
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


def instruction_reader(
    instructions: list[dict[str, str]],
    formatter: PromptFormatter,
    tokenizer: Tokenizer,
    gangs: Gangs,
    batch_size: int,
) -> DataPipelineReader[SequenceBatch]:
    """Batches of encoded prompts; each rank gets every ``dp.size``-th instruction."""
    encode = tokenizer.create_encoder(mode="prompt")
    pad_idx = tokenizer.vocab_info.pad_idx or 0

    def encode_example(example: dict[str, Any]) -> dict[str, Any]:
        prompt = formatter((("user", example["instruction"]),))
        return {**example, "indices": encode(prompt)}

    def collate(examples: list[dict[str, Any]]) -> SequenceBatch:
        seqs = [e["indices"] for e in examples]
        padded = pad_sequence(seqs, batch_first=True, padding_value=pad_idx)
        meta = {key: [e[key] for e in examples] for key in ("index", "instruction", "dataset")}
        return SequenceBatch(padded, [len(s) for s in seqs], example=meta)

    indexed = [{"index": i, **ex} for i, ex in enumerate(instructions)]
    builder = read_sequence(indexed).shard(gangs.dp.rank, gangs.dp.size, allow_uneven=True)
    pipeline = builder.map(encode_example).bucket(batch_size).map(collate).and_return()
    return DataPipelineReader[SequenceBatch](
        pipeline, gangs, sync=True, sync_mode=SyncMode.UNTIL_LAST
    )


class AlpacaEvalUnit(GeneratorUnit[SequenceBatch]):
    def __init__(
        self,
        generator: SequenceGenerator,
        tokenizer: Tokenizer,
        stream: TextIO | None,
        gangs: Gangs,
        output_dir: Path,
        name: str,
    ) -> None:
        self._generator = generator
        self._decode = tokenizer.create_decoder(skip_special_tokens=True)
        self._stream = stream
        self._gangs = gangs
        self._output_dir = output_dir
        self._name = name

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        add_seq_generator_metrics(metric_bag)

    @override
    def process_batch(self, batch: SequenceBatch, metric_bag: MetricBag) -> None:
        seqs, layout = batch.as_input()
        output = self._generator(seqs, layout)
        update_seq_generator_metrics(metric_bag, output)
        if self._stream is None:
            return
        meta = batch.example
        assert isinstance(meta, Mapping)
        for i, hypotheses in enumerate(output.hypotheses):
            row = {
                "index": meta["index"][i],
                "instruction": meta["instruction"][i],
                "output": self._decode(hypotheses[0].seq).strip(),
                "generator": self._name,
                "dataset": meta["dataset"][i],
            }
            self._stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._stream.flush()

    @override
    def finalize(self, metric_bag: MetricBag) -> None:
        if self._stream is not None:
            self._stream.close()
        self._gangs.root.barrier()
        if self._gangs.root.rank == 0:
            merge_outputs(self._output_dir)


def merge_outputs(output_dir: Path) -> Path:
    """Write ``model_outputs.json`` from the ranks' files, in the instructions' order."""
    rows = [
        json.loads(line)
        for file in sorted((output_dir / "outputs").glob("rank_*.jsonl"))
        for line in file.read_text(encoding="utf-8").splitlines()
    ]
    rows.sort(key=lambda row: row["index"])
    outputs = [{k: v for k, v in row.items() if k != "index"} for row in rows]
    target = output_dir / MODEL_OUTPUTS
    atomic_write_text(target, json.dumps(outputs, indent=2, ensure_ascii=False) + "\n")
    return target
