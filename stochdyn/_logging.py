"""The ``stochdyn`` logger: progress messages of long jobs (studies, compilation notices, ...).

The library only emits records (``logger.info(...)``); it never prints. Show them with
``logging.basicConfig(level=logging.INFO)`` or any handler on the ``"stochdyn"`` logger; the
command line shows them on stdout through :func:`log_to_stream`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import IO, Iterator

__all__ = ["logger", "log_to_stream"]

logger = logging.getLogger("stochdyn")
logger.addHandler(logging.NullHandler())  # the library convention: no output unless the application asks


@contextlib.contextmanager
def log_to_stream(stream: IO[str] | None = None, level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Within the block, write the ``stochdyn`` logger's messages of at least ``level``, one per line
    and without decoration, to ``stream`` (default: the current ``sys.stdout``)."""
    handler = logging.StreamHandler(sys.stdout if stream is None else stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(level)
    old_level = logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > level:
        logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        handler.flush()
