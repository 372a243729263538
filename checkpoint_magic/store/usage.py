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
    "add_many_hits",
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
    hits, last = parse_usage(data[:RECORD_MAX], st.mtime)
    if st.version is None and last == st.mtime:
        # A record of the earlier format was last used when written, which a read in one
        # request (a URL store's) does not tell: its stat does.
        written = backend.stat(name)
        last = last if written is None else written.mtime
    return hits, last


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
        backend.write(name, _record(hits + count, max(last, previous or 0.0)))
    except OSError as exc:  # a read-only or unreachable store is used without recording
        logger.debug("could not record %d hits in %s: %s", count, name, exc)


def add_many_hits(backend: StoreBackend, records: list[tuple[str, int, float]]) -> None:
    """Add hits to several usage records of one store: one batched read, one batched write.

    What :func:`add_hits` does for each ``(name, count, last)``, in two round trips of a URL
    store instead of two per record (:meth:`~.backends.StoreBackend.read_many`,
    :meth:`~.backends.StoreBackend.write_many`). If the batch fails (a record the store
    refuses, say), each record is added on its own, so one bad record costs only itself.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    records : list of (str, int, float)
        Each record's name, the hits to add and the time of the last of them.

    Examples
    --------
    >>> import tempfile
    >>> from checkpoint_magic.store.backends.local import LocalBackend
    >>> backend = LocalBackend(tempfile.mkdtemp())
    >>> add_many_hits(backend, [("state/m.f/k1.hits", 2, 10.0), ("state/m.f/k2.hits", 1, 5.0)])
    >>> add_many_hits(backend, [("state/m.f/k1.hits", 3, 20.0)])
    >>> backend.read_bytes("state/m.f/k1.hits")
    b'5 20.000000\\n'
    """
    bodies: dict[str, bytes] = {}
    try:
        if not backend.exists():
            return
        names = [name for name, _, _ in records]
        for (name, count, last), data in zip(
            records, backend.read_many(names, RECORD_MAX), strict=True
        ):
            # A record of the earlier format counts dots and has no time: the new one has.
            hits, previous = (0, 0.0) if data is None else parse_usage(data[:RECORD_MAX], 0.0)
            bodies[name] = _record(hits + count, max(last, previous))
        backend.write_many(bodies)
    except OSError as exc:
        logger.debug("%d usage records not written in a batch (%s): one by one", len(records), exc)
        for name, count, last in records:
            # A batch may fail after writing some of its records: those hold their new
            # body now and are not added to again.
            if name in bodies and _holds(backend, name, bodies[name]):
                continue
            add_hits(backend, name, count, last)


def _record(hits: int, last_used: float) -> bytes:
    """A usage record's bytes (as :func:`parse_usage` reads them)."""
    return f"{hits} {last_used:.6f}\n".encode("ascii")


def _holds(backend: StoreBackend, name: str, body: bytes) -> bool:
    """Whether the record ``name`` holds ``body`` (a batch wrote it before failing)."""
    try:
        return backend.read_bytes(name, RECORD_MAX) == body
    except OSError:  # missing, a link, unreachable: not written
        return False


_Hits = tuple[StoreBackend, int, float]  # (backend, hits, last hit)


def _merge_hits(pending: _Hits, new: _Hits) -> _Hits:
    return pending[0], pending[1] + new[1], new[2]


def _write_hits(slot: tuple[int, str], value: _Hits) -> None:
    backend, count, last = value
    add_hits(backend, slot[1], count, last)


def _write_all_hits(batch: list[tuple[tuple[int, str], _Hits]]) -> None:
    by_store: dict[int, tuple[StoreBackend, list[tuple[str, int, float]]]] = {}
    for (store_id, name), (backend, count, last) in batch:
        by_store.setdefault(store_id, (backend, []))[1].append((name, count, last))
    for backend, records in by_store.values():
        try:
            add_many_hits(backend, records)
        except Exception:  # bookkeeping: one store's fault never loses another's hits
            logger.warning(
                "%d usage records of %s not written", len(records), backend, exc_info=True
            )


_usage_writer = BatchWriter("usage", FLUSH_INTERVAL, _write_all_hits)


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
