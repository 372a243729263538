"""Usage records of store entries: hits counted in memory and appended to ``.hits`` files in batches.

An entry's usage file grows by one byte per hit (its size is the hit count) and its mtime is
the last use. A hit only increments an in-memory counter; counts are written at most once
a second, at interpreter exit and by :func:`flush_usage`, so recording use costs well under
a microsecond and a crash loses at most the last second of counts (never an entry or a value).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time

__all__ = ["flush_usage", "record_hit"]

logger = logging.getLogger(__name__)


def _append_hits(path: str, count: int) -> None:
    """Append ``count`` bytes to a usage file (one ``O_APPEND`` write is atomic across processes)."""
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:
            # <store>/state/<namespace>/<key>.hits: create the folders below the store, but
            # never resurrect a store that was deleted since the hit.
            folder = os.path.dirname(path)
            if not os.path.isdir(os.path.dirname(os.path.dirname(folder))):
                return
            os.makedirs(folder, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, b"." * count)
        finally:
            os.close(fd)
    except OSError as exc:  # a read-only store is used without recording
        logger.debug("could not record a hit in %s: %s", path, exc)


class _UsageWriter:
    """Counts hits in memory and writes them in batches: at most once a second, and at exit.

    A hit only increments a counter, so recording use costs well under a microsecond; a
    crash loses at most the last second of counts (never an entry or a value).
    """

    #: Seconds between two automatic flushes.
    INTERVAL = 1.0

    def __init__(self) -> None:
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()

    def submit(self, path: str) -> None:
        with self._lock:
            self._pending[path] = self._pending.get(path, 0) + 1
        if time.monotonic() - self._last_flush >= self.INTERVAL:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            self._last_flush = time.monotonic()
        for path, count in batch.items():
            _append_hits(path, count)


_usage_writer = _UsageWriter()
atexit.register(_usage_writer.flush)


def record_hit(path: str) -> None:
    """Count one hit of the entry whose usage file is ``path``."""
    _usage_writer.submit(path)


def flush_usage() -> None:
    """Wait until every recorded hit is written to the store (called at exit automatically)."""
    _usage_writer.flush()
