"""Usage records of store entries: hits counted in memory, written in batches by a thread.

An entry's usage record (``state/<namespace>/<key>.hits``) is one short line, ``<hits>
<last used>``, replaced atomically: bounded in size however often the entry is hit, and
never torn by a crash. A hit only increments an in-memory counter (well under a
microsecond); a daemon thread writes pending counts every :data:`FLUSH_INTERVAL` seconds,
so a living kernel keeps least-recently-used eviction right, and exit flushes the rest. A
crash loses at most the last interval of counts, never an entry or a value. Two processes
flushing the same record at once may lose one's increment (the later write wins); the
last-use time, which eviction orders by, stays right.
"""

from __future__ import annotations

import logging
import time

from .backends import StoreBackend, UnsafeStoreError
from .deferred import BatchWriter

__all__ = [
    "FLUSH_INTERVAL",
    "RECORD_MAX",
    "add_hits",
    "flush_usage",
    "parse_usage",
    "read_usage",
    "record_hit",
]

logger = logging.getLogger(__name__)

#: Seconds between two automatic flushes of pending hit counts.
FLUSH_INTERVAL = 1.0
#: A usage record is never read beyond this size.
RECORD_MAX = 256


def parse_usage(data: bytes, mtime: float) -> tuple[int, float]:
    """``(hits, last used)`` from a usage record's bytes.

    Parameters
    ----------
    data : bytes
        The record's content.
    mtime : float
        The record's modification time: the last use of a legacy record.

    Returns
    -------
    hits : int
        Hits recorded (one per dot in a record of the earlier format).
    last_used : float
        When last used; ``mtime`` for a record of the earlier format.

    Examples
    --------
    >>> parse_usage(b"3 1700000000.5\\n", 0.0)
    (3, 1700000000.5)
    >>> parse_usage(b"...", 42.0)  # a record of the earlier format: one byte per hit
    (3, 42.0)
    """
    fields = data.split()
    if len(fields) == 2:
        try:
            return max(int(fields[0]), 0), float(fields[1])
        except ValueError:
            pass
    return data.count(b"."), mtime


def read_usage(backend: StoreBackend, name: str) -> tuple[int, float | None]:
    """``(hits, last used)`` of the usage record ``name``.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    name : str
        The record's name (:func:`~checkpoint_magic.store.layout.entry_state` with ``HITS``).

    Returns
    -------
    hits : int
        Hits recorded.
    last_used : float or None
        ``(0, None)`` if there is no record.
    """
    try:
        data, st = backend.read_small(name, RECORD_MAX)  # the bytes and the stat at once
    except (FileNotFoundError, UnsafeStoreError):  # missing, or a link: never followed
        return 0, None
    return parse_usage(data[:RECORD_MAX], st.mtime)


def add_hits(backend: StoreBackend, name: str, count: int, last: float) -> None:
    """Add ``count`` hits to a usage record, never creating a store that was deleted.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    name : str
        The record's name (:func:`~checkpoint_magic.store.layout.entry_state` with ``HITS``).
    count : int
        Hits to add.
    last : float
        The time of the last of them (kept if later than the record's).
    """
    try:
        if not backend.exists():
            return
        hits, previous = read_usage(backend, name)
        body = f"{hits + count} {max(last, previous or 0.0):.6f}\n".encode("ascii")
        backend.write(name, body)
    except OSError as exc:  # a read-only or unreachable store is used without recording
        logger.debug("could not record %d hits in %s: %s", count, name, exc)


_Hits = tuple[StoreBackend, int, float]  # (backend, hits, last hit)


def _merge_hits(pending: _Hits, new: _Hits) -> _Hits:
    return pending[0], pending[1] + new[1], new[2]


def _write_hits(slot: tuple[int, str], value: _Hits) -> None:
    backend, count, last = value
    add_hits(backend, slot[1], count, last)


_usage_writer = BatchWriter("usage", FLUSH_INTERVAL)


def record_hit(backend: StoreBackend, name: str) -> None:
    """Count one hit of the entry whose usage record is ``name`` (written later, in a batch).

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    name : str
        The entry's usage record name.
    """
    _usage_writer.submit((id(backend), name), (backend, 1, time.time()), _write_hits, _merge_hits)


def flush_usage() -> None:
    """Write every recorded hit to its store now (a timer and interpreter exit do it too)."""
    _usage_writer.flush()
