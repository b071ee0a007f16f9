"""Keep secrets out of logs and console output.

fairseq2 logs every environment variable when a recipe starts (to the console
and to ``logs/rank_<r>.log``), and our own docs tell users to export
``OPENAI_API_KEY`` for the judge. Rather than asking users to keep secrets out
of the training environment, every log record is masked as it is created (a
log-record factory, so it covers every logger and handler, whenever they were
configured): the value of each secret-looking environment variable is replaced
by ``****``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

MASK = "****"

SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|KEY|APIKEY|SECRET|PASSWORD|PASSWD|PASS|CREDENTIALS?)S?($|_)"
    r"|SECRET|PASSWORD",
    re.IGNORECASE,
)
"""``OPENAI_API_KEY``, ``HF_TOKEN``, ``*_TOKEN``, ``*_KEY``, ``*SECRET*``,
``*PASSWORD*``, ... but not ``TOKENIZERS_PARALLELISM`` or ``KEYBOARD``."""

MIN_FREE_LENGTH = 8
"""Shorter values are masked only where they follow ``NAME=``: replacing e.g.
``1`` everywhere would garble every message."""


def secrets(environ: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(name, value)`` of the secret-looking, non-empty environment variables."""
    env = os.environ if environ is None else environ
    return [(name, value) for name, value in env.items() if value and SECRET_NAME.search(name)]


def mask(text: str, environ: Mapping[str, str] | None = None) -> str:
    """``text`` with every secret value of the environment replaced by ``****``."""
    for name, value in sorted(secrets(environ), key=lambda item: -len(item[1])):
        text = text.replace(f"{name}={value}", f"{name}={MASK}")
        if len(value) >= MIN_FREE_LENGTH:
            text = text.replace(value, MASK)
    return text


def install_log_masking() -> None:
    """Mask every log record created from now on in this process (idempotent)."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_secrets", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return record
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
