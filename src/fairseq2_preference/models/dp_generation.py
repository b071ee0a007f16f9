"""Data-parallel generation plumbing shared by the generation recipes.

``fairseq2 lm alpaca_eval`` and ``fairseq2 lm preference_sample`` are fairseq2
generator recipes: fairseq2 builds the model, the sequence generator and the
gangs; these helpers feed each data-parallel rank its shard of the prompts and
gather what the ranks wrote (:class:`RowGenerationUnit`, their unit's shared
shape). Each rank writes ``outputs/rank_<dp>.jsonl``
(tensor-parallel ranks hold the same outputs: only ``tp`` rank 0 writes); after
a barrier, rank 0 reads them all back in the prompts' order.
"""

from __future__ import annotations

import json
import sys
from abc import abstractmethod
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

from fairseq2.data.data_pipeline import read_sequence
from fairseq2.data.tokenizers import Tokenizer
from fairseq2.datasets import DataPipelineReader, SequenceBatch, SyncMode
from fairseq2.gang import Gangs
from fairseq2.generation import SequenceGenerator
from fairseq2.generator import GeneratorUnit
from fairseq2.metrics import MetricBag
from fairseq2.metrics.common import add_seq_generator_metrics, update_seq_generator_metrics
from torch.nn.utils.rnn import pad_sequence
from typing_extensions import override

INDEX = "_row_index"
"""The position of a prompt in the input: how the ranks' outputs are put back in order."""


def prompt_reader(
    rows: Iterable[Mapping[str, Any]],
    prompt_of: Callable[[Mapping[str, Any]], str],
    tokenizer: Tokenizer,
    gangs: Gangs,
    batch_size: int,
    repeat: int = 1,
) -> DataPipelineReader[SequenceBatch]:
    """Batches of ``batch_size`` encoded prompts, each row ``repeat`` times in a row
    (independent samples of the same prompt); each rank gets every ``dp.size``-th row.
    A batch's ``example`` is the list of its rows, each with its :data:`INDEX`."""
    encode = tokenizer.create_encoder(mode="prompt")
    pad_idx = tokenizer.vocab_info.pad_idx or 0

    def encode_row(row: dict[str, Any]) -> dict[str, Any]:
        return {"row": row, "indices": encode(prompt_of(row))}

    def collate(examples: list[dict[str, Any]]) -> SequenceBatch:
        seqs = [e["indices"] for e in examples]
        padded = pad_sequence(seqs, batch_first=True, padding_value=pad_idx)
        return SequenceBatch(padded, [len(s) for s in seqs], example=[e["row"] for e in examples])

    indexed = [{**row, INDEX: i} for i, row in enumerate(rows)]
    shard = [row for row in indexed[gangs.dp.rank :: gangs.dp.size] for _ in range(repeat)]
    builder = read_sequence(shard).map(encode_row).bucket(batch_size).map(collate)
    pipeline = builder.and_return()
    return DataPipelineReader[SequenceBatch](
        pipeline, gangs, sync=True, sync_mode=SyncMode.UNTIL_LAST
    )


class RankOutputs:
    """This rank's ``outputs/rank_<dp>.jsonl`` (``tp`` rank 0 only), then all of them."""

    def __init__(self, output_dir: Path, gangs: Gangs) -> None:
        self._dir = output_dir / "outputs"
        self._gangs = gangs
        self._stream: TextIO | None = None
        if gangs.tp.rank == 0:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._stream = (self._dir / f"rank_{gangs.dp.rank}.jsonl").open("w", encoding="utf-8")

    def write(self, rows: Iterable[Mapping[str, Any]]) -> None:
        if self._stream is None:
            return
        for row in rows:
            self._stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._stream.flush()

    def gather(self) -> list[dict[str, Any]] | None:
        """Every rank's rows in :data:`INDEX` order (stable: a prompt's samples keep
        theirs) on rank 0 once all ranks are done; ``None`` on the others."""
        if self._stream is not None:
            self._stream.close()
        self._gangs.root.barrier()
        if self._gangs.root.rank != 0:
            return None
        files = [self._dir / f"rank_{rank}.jsonl" for rank in range(self._gangs.dp.size)]
        rows = [  # only this run's ranks: an earlier attempt may have had more
            json.loads(line)
            for file in files
            for line in file.read_text(encoding="utf-8").splitlines()
        ]
        rows.sort(key=lambda row: row[INDEX])
        return rows


class RowGenerationUnit(GeneratorUnit[SequenceBatch]):
    """One generated sequence per input row of :func:`prompt_reader`: each rank writes
    :meth:`output_row` of every row and its decoded text to its :class:`RankOutputs`;
    when all are done, rank 0 hands every output row, in input order, to :meth:`finish`.

    A sequence is *cut* when it ran into the length limit: fairseq2's generator then
    ends it with a forced EOS at step ``min(max_seq_len, longest prompt of the batch
    + max_gen_len)``, which is not the model's own end. Given ``max_gen_len``, the
    unit says which sequences reached that step (one that chose EOS exactly there
    counts as cut too)."""

    def __init__(
        self,
        generator: SequenceGenerator,
        tokenizer: Tokenizer,
        outputs: RankOutputs,
        max_gen_len: int | None = None,
        max_seq_len: int | None = None,
    ) -> None:
        self._generator = generator
        self._decode = tokenizer.create_decoder(skip_special_tokens=True)
        self._outputs = outputs
        self._max_gen_len = max_gen_len
        self._max_seq_len = min(generator.model.max_seq_len, max_seq_len or sys.maxsize)

    @abstractmethod
    def output_row(self, row: Mapping[str, Any], text: str, cut: bool) -> dict[str, Any]:
        """What is kept of an input row (with its :data:`INDEX`), its generated text
        and whether the text was cut at the length limit."""

    @abstractmethod
    def finish(self, rows: list[dict[str, Any]]) -> None:
        """Write the gathered output rows (rank 0 only)."""

    @override
    def prepare_metric_bag(self, metric_bag: MetricBag) -> None:
        add_seq_generator_metrics(metric_bag)

    @override
    def process_batch(self, batch: SequenceBatch, metric_bag: MetricBag) -> None:
        seqs, layout = batch.as_input()
        output = self._generator(seqs, layout)
        update_seq_generator_metrics(metric_bag, output)
        rows = batch.example
        assert isinstance(rows, list)
        prompt_lens = batch.seq_lens
        limit = (
            sys.maxsize
            if self._max_gen_len is None
            else min(self._max_seq_len, max(prompt_lens) + self._max_gen_len)
        )
        best = [hypotheses[0].seq for hypotheses in output.hypotheses]
        self._outputs.write(
            self.output_row(row, self._decode(seq), prompt_len + len(seq) >= limit)
            for row, prompt_len, seq in zip(rows, prompt_lens, best, strict=True)
        )

    @override
    def finalize(self, metric_bag: MetricBag) -> None:
        rows = self._outputs.gather()
        if rows is not None:
            self.finish(rows)
