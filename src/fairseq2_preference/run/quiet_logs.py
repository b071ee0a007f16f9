"""A console log a researcher reads: the run, not fairseq2's internals.

fairseq2 prints, before step 1, hundreds of lines (the full config, each
section's config again, every environment variable, the module tree of policy
and reference) and, at every start, a ``hg_exporter`` DeprecationWarning from
its own model registrations and torcheval's "No calls to update()" warnings
for metrics that were empty during a step. On the console those become a
one-line pointer (config) or a one-line size summary (model), a failed hub
download of a checkpoint becomes one paragraph naming the local alternative
instead of a stack trace; the warnings are
dropped where they are emitted. ``logs/rank_<r>.log`` in the run directory still
receives everything, and with ``common.debug: true`` the console does too.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from typing import Any, Final

HG_EXPORTER: Final = "`hg_exporter` is deprecated"

EMPTY_METRIC_WARNING: Final = "No calls to update() have been made"

TORCHEVAL_LOGGERS: Final = ("root", "torcheval.metrics.aggregation.throughput")

CONFIG_DUMPS: Final = ("Model Config: ", "Dataset Config: ", "Tokenizer Config: ")


class _EmptyMetricWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return EMPTY_METRIC_WARNING not in str(record.msg)


class _ConsoleSummary(logging.Filter):
    """On console handlers: configs and module trees shortened, unless debugging."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "fairseq2" or logging.getLogger("fairseq2").isEnabledFor(logging.DEBUG):
            return True
        message = record.getMessage()
        if message.startswith("Config: "):
            record.msg, record.args = (
                "Config: see config.yaml in the run directory (logs/rank_0.log has "
                "everything logged here in full).",
                (),
            )
        elif message.startswith(CONFIG_DUMPS) or message.startswith("Environment Variables - "):
            return False
        elif message.startswith("Model (rank "):
            record.msg, record.args = message.split("\n", 1)[0], ()
        elif message.startswith("Failed to download hg://"):
            # Imported here: `fairseq2 --help` must not pay for fairseq2's import.
            from fairseq2_preference.offline import checkpoint_download_paragraph

            error = record.exc_info[1] if record.exc_info else None
            record.msg, record.args = checkpoint_download_paragraph(message, error), ()
            record.exc_info, record.exc_text = None, None
        return True


class _AttachToConsole(logging.Filter):
    """Puts :class:`_ConsoleSummary` on the root logger's console handlers, which
    fairseq2 creates when a command starts (after this module is set up)."""

    def __init__(self) -> None:
        super().__init__()
        self.summary = _ConsoleSummary()

    def filter(self, record: logging.LogRecord) -> bool:
        for handler in logging.getLogger().handlers:
            if not isinstance(handler, logging.FileHandler) and self.summary not in handler.filters:
                handler.addFilter(self.summary)
        return True


def _without_hg_exporter_warning(show: Callable[..., None]) -> Callable[..., None]:
    def showwarning(message: Warning | str, category: type[Warning], *args: Any) -> None:
        if not (issubclass(category, DeprecationWarning) and HG_EXPORTER in str(message)):
            show(message, category, *args)

    showwarning.quiet = True  # type: ignore[attr-defined]
    return showwarning


_ATTACH: Final = _AttachToConsole()

_EMPTY: Final = _EmptyMetricWarnings()


def install_quiet_logs() -> None:
    """Quiet the console for this process (idempotent)."""
    # fairseq2's command line re-enables deprecation warnings after this runs
    # (`enable_deprecation_warnings`), so the one warning is dropped where it is shown.
    if not getattr(warnings.showwarning, "quiet", False):
        warnings.showwarning = _without_hg_exporter_warning(warnings.showwarning)
    for name in TORCHEVAL_LOGGERS:
        logger = logging.getLogger(None if name == "root" else name)
        if _EMPTY not in logger.filters:
            logger.addFilter(_EMPTY)
    fairseq2_logger = logging.getLogger("fairseq2")
    if _ATTACH not in fairseq2_logger.filters:
        fairseq2_logger.addFilter(_ATTACH)
