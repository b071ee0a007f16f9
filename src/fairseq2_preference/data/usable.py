"""Training data that turns out unusable fails the run, and says why.

fairseq2's trainer treats a reader that is empty at step 0 as "too small to
train" and exits with status 0, having trained nothing: a typo'd path to an
empty file, or a ``max_seq_len`` below every pair, looks like a finished run.
:class:`CheckedReader` turns that into a :class:`PreferenceDataError` naming
what the rows became: how many were read and how many the length filter
dropped. :class:`RowStats` also counts, during the first pass, the pairs whose
chosen and rejected responses are identical (they carry no preference; most
losses give them a constant loss and no signal) and repeated ids, and logs
them when the first pass ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from fairseq2.datasets import DataReader
from fairseq2.logging import log
from typing_extensions import override

from fairseq2_preference.data.batching import LengthFilter
from fairseq2_preference.data.reader import WrappedReader
from fairseq2_preference.errors import PreferenceDataError

BatchT = TypeVar("BatchT")

MAX_IDS_SHOWN = 5


class RowStats:
    """Counts the rows of one pass over a split (one rank's share)."""

    def __init__(self, responses: tuple[str, ...]) -> None:
        self.responses = responses
        self.num_rows = 0
        self.identical: list[str] = []
        self.duplicates: list[str] = []
        self._seen: set[str] = set()
        self.done = False

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.done:
            self.num_rows += 1
            row_id = str(row.get("id"))
            if row_id in self._seen:
                self.duplicates.append(row_id)
            self._seen.add(row_id)
            if len(self.responses) == 2 and row[self.responses[0]] == row[self.responses[1]]:
                self.identical.append(row_id)
        return row

    def finish(self) -> None:
        """End of the first pass: stop counting and free the ids."""
        self.done = True
        self._seen.clear()


def not_utf8_message(files: Sequence[Path], what: str, error: UnicodeDecodeError) -> str:
    """Find the first non-UTF-8 line of ``files`` (only after reading failed)."""
    for file in files:
        with file.open("rb") as f:
            for number, line in enumerate(f, start=1):
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as bad:
                    byte = line[bad.start]
                    return (
                        f"{file}, line {number}: byte 0x{byte:02x} at byte {bad.start + 1} of "
                        "the line is not UTF-8. Data files must be UTF-8 text: re-encode the "
                        "file (e.g. `iconv -f latin1 -t utf-8`) or fix or remove the line."
                    )
    return f"{what}: the data is not UTF-8 text ({error}). Re-encode it as UTF-8."


def _ids(ids: list[str]) -> str:
    shown = ", ".join(ids[:MAX_IDS_SHOWN])
    return shown + (", ..." if len(ids) > MAX_IDS_SHOWN else "")


class CheckedReader(WrappedReader[BatchT]):
    """A reader that names the file and line of a non-UTF-8 byte and, for training,
    refuses to be empty on its first pass."""

    def __init__(
        self,
        inner: DataReader[BatchT],
        what: str,
        stats: RowStats,
        length_filter: LengthFilter,
        rank: str,
        files: Sequence[Path],
        training: bool,
    ) -> None:
        super().__init__(inner)
        self._what = what
        self._stats = stats
        self._filter = length_filter
        self._rank = rank
        self._files = files
        self._first_pass = training
        self._has_read = False

    @override
    def __next__(self) -> list[BatchT]:
        try:
            batches = next(self._inner)
        except UnicodeDecodeError as ex:
            raise PreferenceDataError(not_utf8_message(self._files, self._what, ex)) from None
        except StopIteration:
            if self._first_pass:
                self._end_first_pass()
            raise
        self._has_read = True
        return batches

    def _end_first_pass(self) -> None:
        self._first_pass = False
        stats = self._stats
        stats.finish()
        if stats.identical:
            log.warning(
                "{}: {} pair(s) have identical chosen and rejected responses and carry no "
                "preference (ids {}); remove them from the data.",
                self._what, len(stats.identical), _ids(stats.identical),
            )  # fmt: skip
        if stats.duplicates:
            log.warning(
                "{}: {} row(s) repeat an earlier id (ids {}); ids should be unique so that "
                "messages and caches can name a row.",
                self._what, len(stats.duplicates), _ids(stats.duplicates),
            )  # fmt: skip
        if not self._has_read:
            raise PreferenceDataError(self._no_data_message())

    def _no_data_message(self) -> str:
        stats, dropped = self._stats, self._filter.num_dropped
        if stats.num_rows == 0:
            why = "it holds no rows (empty file(s), or no files for this split)"
            what_to_do = "point `dataset` at the prepared data, or rerun the data preparation"
        elif dropped >= stats.num_rows:
            why = (
                f"all {stats.num_rows} row(s) read were dropped for falling outside "
                f"[min_seq_len={self._filter.min_seq_len}, max_seq_len="
                f"{self._filter.max_seq_len}] tokens"
            )
            what_to_do = (
                "raise `dataset.max_seq_len` (and `dataset.max_num_tokens` to at least "
                "2 × it) or lower `dataset.min_seq_len`"
            )
        else:
            why = (
                f"{stats.num_rows} row(s) were read and {dropped} dropped by the length "
                "filter, too few to fill one batch for every data-parallel rank"
            )
            what_to_do = "add data, or train on fewer GPUs"
        return (
            f"No usable training data in {self._what}{self._rank}: {why}. "
            f"Nothing was trained; {what_to_do}."
        )

    @override
    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        # A resumed run is past its first pass: the counts would be partial.
        self._first_pass = False
        self._stats.finish()
        super().load_state_dict(state_dict)
