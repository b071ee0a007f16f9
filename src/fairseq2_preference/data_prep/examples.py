"""What every converter produces before formatting: conversations, not strings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

Turn = tuple[str, str]
"""``(role, text)`` with role ``user`` or ``assistant``."""


@dataclass(frozen=True)
class Example:
    """A prompt (a conversation ending with a user turn) and one or two responses."""

    id: str
    group: str
    """The unit of the train/dev split (e.g. a conversation tree): examples of
    one group always land in the same split."""
    turns: tuple[Turn, ...]
    chosen: str
    rejected: str | None = None
    """``None`` for an instruction (SFT) or an unpaired example."""
    split: str | None = None
    """A split given by the source (e.g. a dataset's own test split); ``None``
    lets the writer assign one by group."""
    label: bool | None = None
    """Unpaired feedback on ``chosen``: desirable or not (``None`` otherwise)."""

    @property
    def kind(self) -> str:
        """``preference``, ``unpaired`` or ``instruction``: where the writer puts it."""
        if self.rejected is not None:
            return "preference"
        return "instruction" if self.label is None else "unpaired"

    @property
    def first_prompt(self) -> str:
        return self.turns[0][1]


def check_turns(turns: Sequence[Turn], where: str) -> tuple[Turn, ...]:
    """Validate a conversation prefix: alternating roles, ending with the user."""
    if not turns or turns[-1][0] != "user":
        raise ValueError(f"{where}: the prompt must end with a user turn.")
    for role, _ in turns:
        if role not in ("user", "assistant", "system"):
            raise ValueError(f"{where}: unknown role {role!r} (expected user/assistant/system).")
    return tuple(turns)
