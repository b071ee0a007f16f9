"""The project's own error types, and fairseq2's user errors translated into them.

Each message says what is wrong and what to do. The two error types derive
from fairseq2's ``RecipeError``, so that the recipe command line prints them as
one plain message and exits with status 2, and from ``ValueError``, so that
library users can catch them the ordinary way.

fairseq2's handlers for the asset-card errors log a stack trace and "see logged
stack trace" (and its handler registry refuses a second handler for a type);
:func:`user_error_message` gives the paragraph that our command line logs in
their place. The checks below run up front for what fairseq2 would only report
as an ``OperationalError`` ("A system error occurred"): an output directory
that cannot be written and a ``prev_checkpoint_dir`` that does not exist.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

from fairseq2.assets import AssetCardError, AssetMetadataError
from fairseq2.error import OperationalError
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


def user_error_message(error: BaseException) -> str | None:
    """One paragraph for an error fairseq2 would log with a stack trace, if it
    is a user's mistake we recognise; None otherwise."""
    if isinstance(error, AssetMetadataError):
        return _corrupt_card(error)
    if isinstance(error, AssetCardError):
        return _card_error(error)
    if isinstance(error, OperationalError):
        return _missing_prev_checkpoint_dir(error)
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    current: BaseException | None = error
    while current is not None:
        yield current
        current = current.__cause__ or current.__context__


def _corrupt_card(ex: AssetMetadataError) -> str | None:
    yaml_error = next((e for e in _causes(ex) if hasattr(e, "problem_mark")), None)
    if yaml_error is None:
        return None
    mark = yaml_error.problem_mark  # type: ignore[attr-defined]
    problem = getattr(yaml_error, "problem", None) or "invalid YAML"
    return (
        f"Asset card file {mark.name}, line {mark.line + 1}, column {mark.column + 1}: "
        f"{problem}. The cards in {ex.source.removeprefix('path:')} could not be read; fix "
        "the YAML there (each card is a mapping of `key: value` lines, cards separated by "
        "`---`), or remove the directory from `common.assets.extra_paths`."
    )


def _card_error(ex: AssetCardError) -> str | None:
    missing = next((e for e in _causes(ex) if isinstance(e, FileNotFoundError)), None)
    if missing is None:
        return None
    return (
        f"Asset card '{ex.name}' names a file that does not exist: {missing.filename}. Fix "
        "the path in the card (`checkpoint:`, `tokenizer:` or `data:`; a relative path is "
        "relative to the card file), or create the file (e.g. rerun the step that writes it)."
    )


def _missing_prev_checkpoint_dir(ex: OperationalError) -> str | None:
    """fairseq2 reads ``<prev_checkpoint_dir>/model.yaml`` when it builds the asset
    store; a missing directory is "A system error occurred"."""
    missing = next((e for e in _causes(ex) if isinstance(e, FileNotFoundError)), None)
    if missing is None or not str(missing.filename).endswith("model.yaml"):
        return None
    directory = Path(str(missing.filename)).parent
    if directory.exists():
        return None
    return (
        f"`common.assets.prev_checkpoint_dir` is {directory}, which does not exist. Point it "
        "at the `checkpoints` directory of an earlier run (e.g. runs/sft/checkpoints), or "
        "remove it to start from the model card."
    )


def output_dir_problem(output_dir: Path) -> str | None:
    """Why ``output_dir`` cannot hold a run (None if it can): checked before fairseq2
    starts, which would fail with an opaque system error."""
    existing = output_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        return (
            f"Output directory {output_dir}: {existing} is a file, not a directory. "
            "Choose another output directory."
        )
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as ex:
        return (
            f"Output directory {output_dir} cannot be written ({ex.strerror or ex}). "
            "Choose a directory you can write to, or fix its permissions."
        )
    return None
