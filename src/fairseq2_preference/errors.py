"""User-facing errors: each message says what is wrong and what to do.

Both derive from fairseq2's ``RecipeError`` so that the recipe command line
prints them as one plain message and exits with status 2, and from
``ValueError`` so that library users can catch them the ordinary way.
"""

from __future__ import annotations

from fairseq2.recipe.error import RecipeError


class PreferenceConfigError(RecipeError, ValueError):
    """The recipe configuration asks for something that cannot work."""


class PreferenceDataError(RecipeError, ValueError):
    """A dataset file is malformed; the message names the file and line."""


def describe(error: BaseException) -> str:
    """An exception and the chain of its causes, as one sentence."""
    parts: list[str] = []
    current: BaseException | None = error
    while current is not None:
        text = str(current).strip().rstrip(".")
        if text:
            parts.append(text)
        current = current.__cause__
    return ": ".join(parts) + "."
