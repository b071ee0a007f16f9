"""A fairseq2 ``DataReader`` around another: everything passes through.

Subclasses change what they must (``__next__``, usually) and keep the inner
reader's iteration state, checkpoint state and gradient accumulation.
"""

from __future__ import annotations

from typing import TypeVar

from fairseq2.datasets import DataReader
from typing_extensions import Self, override

BatchT = TypeVar("BatchT")


class WrappedReader(DataReader[BatchT]):
    def __init__(self, inner: DataReader[BatchT]) -> None:
        self._inner = inner

    @override
    def __iter__(self) -> Self:
        return self

    @override
    def __next__(self) -> list[BatchT]:
        return next(self._inner)

    @override
    def reset(self) -> None:
        self._inner.reset()

    @override
    def state_dict(self) -> dict[str, object]:
        return self._inner.state_dict()

    @override
    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        self._inner.load_state_dict(state_dict)

    @property
    @override
    def num_accumulate(self) -> int:
        return self._inner.num_accumulate
