"""Failing fast, and usefully, when the Hugging Face hub or the judge is out of reach.

Without a network, ``datasets`` and ``huggingface_hub`` retry for half a minute
and end in tracebacks such as ``Couldn't reach 'OpenAssistant/oasst2'`` or
``LocalEntryNotFoundError``, although every command that downloads has a local
alternative. :func:`from_hub` probes the endpoint first (a TCP connect of a few
seconds) and turns both an unreachable hub and an offline cache miss
(``HF_HUB_OFFLINE=1``) into one paragraph naming that alternative.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from fairseq2_preference.errors import PreferenceConfigError, describe

PROBE_TIMEOUT = 3.0


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``HF_DATASETS_OFFLINE``) asks for the cache only."""
    return any(
        os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def reachable(url: str, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether a TCP connection to ``url``'s host opens within ``timeout`` seconds
    (name resolution included, which ``socket`` alone does not bound)."""
    parts = urlsplit(url)
    host = parts.hostname or url
    port = parts.port or (80 if parts.scheme == "http" else 443)
    opened: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout).close()
            opened.append(True)
        except OSError:
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(opened)


def require_reachable(url: str, what: str, alternative: str) -> None:
    """Raise one paragraph naming ``alternative`` if ``url`` cannot be reached."""
    if not reachable(url):
        raise PreferenceConfigError(f"{what} needs {url}, which cannot be reached. {alternative}")


@contextmanager
def from_hub(what: str, alternative: str) -> Iterator[None]:
    """Run a hub download; fail within seconds, naming ``alternative``, without the hub."""
    offline = hub_offline()
    if not offline and not reachable(hub_endpoint()):
        raise PreferenceConfigError(
            f"{what} comes from the Hugging Face hub, and {hub_endpoint()} cannot be reached. "
            f"{alternative} A copy already in the Hugging Face cache is used with HF_HUB_OFFLINE=1."
        )
    try:
        yield
    except PreferenceConfigError:
        raise
    except Exception as ex:  # the hub libraries raise many types for "not cached"
        if not offline:
            raise
        raise PreferenceConfigError(
            f"{what} comes from the Hugging Face hub; HF_HUB_OFFLINE=1 is set and the Hugging "
            f"Face cache has no copy ({describe(ex)}) {alternative}"
        ) from None


def checkpoint_download_paragraph(message: str, error: BaseException | None) -> str:
    """fairseq2's "Failed to download hg://..." (logged with a stack trace) as one
    paragraph naming the cause and the local alternative."""
    cause = error
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    reason = f" ({str(cause).strip().rstrip('.')})" if cause is not None and str(cause) else ""
    return (
        f"{message.split('. See logged stack trace', 1)[0]}{reason}. Without the hub "
        "(offline, HF_HUB_OFFLINE=1 without a cached copy, or no access to a gated model), "
        "give a local copy of the weights: `--config model.path=<dir>` (a Hugging Face or "
        "Meta-layout directory; the reference model and tokenizer follow it), or an asset "
        "card whose `checkpoint:` is a local path."
    )
