"""Where the API's one-time notes go by default: the ``vocoder_cli`` logger."""

from __future__ import annotations

import logging
from collections.abc import Callable

Notify = Callable[[str], None]
_log = logging.getLogger("vocoder_cli")


def log_notice(message: str) -> None:
    """The default ``notify``: one-line notes (weights fetched on first use, an ONNX export, the backend
    timing, metrics skipped) as WARNING records of the ``vocoder_cli`` logger, so they reach stderr unless
    logging is set up otherwise; pass ``notify=print`` to see them your way, ``notify=None`` for silence."""
    _log.warning(message)
