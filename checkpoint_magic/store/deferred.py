"""Deferred writes of small store records: kept in memory, written in batches by one thread.

The hit and miss paths must not wait for the file system to record bookkeeping (hit counts,
the last miss of a namespace). They :meth:`BatchWriter.submit` a value under a *slot* (the
record it goes to) instead: a later value for the same slot replaces the pending one, or is
merged into it (hit counts add up). One daemon thread per process writes what is pending
every ``interval`` seconds and stops when nothing is left; :meth:`BatchWriter.flush` writes
it now (readers of the records call it first), and interpreter exit flushes the rest. A
crash loses at most the last interval of records, never an entry or a value. A forked child
starts empty: what was pending before the fork is the parent's to write.

Examples
--------
>>> written = []
>>> writer = BatchWriter("doctest", interval=60.0)
>>> def add(old, new): return old + new
>>> def write(slot, value): written.append((slot, value))
>>> for _ in range(3):
...     writer.submit("hits", 1, write, add)
>>> writer.flush(); written
[('hits', 3)]
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["BatchWriter", "flush_all"]

logger = logging.getLogger(__name__)

#: Every writer of this process, flushed at exit and by :func:`flush_all`.
_writers: weakref.WeakSet[BatchWriter] = weakref.WeakSet()


class BatchWriter:
    """Pending records by slot, written by a daemon thread every ``interval`` seconds.

    Parameters
    ----------
    name : str
        Names the writer's thread (``checkpoint-magic-<name>``).
    interval : float
        Seconds between two automatic flushes.
    write_all : callable, optional
        ``write_all([(slot, value), ...])`` writes a whole flush at once (in fewer round
        trips than one write per slot); its errors are logged, never raised. Without it
        each value is written by the ``write`` it was submitted with.
    """

    def __init__(
        self,
        name: str,
        interval: float,
        write_all: Callable[[list[tuple[Any, Any]]], None] | None = None,
    ):
        self.name = name
        self.interval = interval
        self.write_all = write_all
        # slot -> (value, write); written and emptied by flush
        self._pending: dict[Hashable, tuple[Any, Callable[[Any, Any], None]]] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._thread: threading.Thread | None = None  # set while a flush thread runs
        _writers.add(self)

    def submit(
        self,
        slot: Hashable,
        value: Any,
        write: Callable[[Any, Any], None],
        merge: Callable[[Any, Any], Any] | None = None,
    ) -> None:
        """Keep ``value`` for ``slot`` until the next flush calls ``write(slot, value)``.

        Parameters
        ----------
        slot : hashable
            What the value is written to; one pending value per slot.
        value : object
            The record to write.
        write : callable
            ``write(slot, value)`` writes it; its errors are logged, never raised.
        merge : callable, optional
            ``merge(pending, value)`` combines a value with the one already pending for the
            slot; without it the later value replaces the pending one.
        """
        with self._lock:
            if merge is not None:
                pending = self._pending.get(slot)
                if pending is not None:
                    value = merge(pending[0], value)
            self._pending[slot] = (value, write)
            # The thread clears it, under the lock, when it ends, however it ends (no
            # is_alive() per call: this runs on every hit).
            if self._thread is None:
                thread = threading.Thread(
                    target=self._run, name=f"checkpoint-magic-{self.name}", daemon=True
                )
                try:
                    thread.start()
                except RuntimeError as exc:  # interpreter shutdown: the exit flush writes it
                    logger.debug("%s: no writer thread (%s)", self.name, exc)
                else:
                    self._thread = thread

    def _run(self) -> None:
        try:
            while True:
                time.sleep(self.interval)
                with self._lock:
                    if not self._pending:
                        self._thread = None
                        return
                self.flush()
        except BaseException:  # flush catches the rest: the next submit starts another thread
            with self._lock:
                self._thread = None
            raise

    def flush(self) -> None:
        """Write every pending record now (in the caller's thread)."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if self.write_all is not None and batch:
                try:
                    self.write_all([(slot, value) for slot, (value, _) in batch.items()])
                except Exception:  # bookkeeping: never fail a caller
                    logger.warning("%s: could not write a batch", self.name, exc_info=True)
                return
            for slot, (value, write) in batch.items():
                try:
                    write(slot, value)
                except OSError as exc:  # a read-only or unreachable store: used unrecorded
                    logger.debug("%s: could not write %r: %s", self.name, slot, exc)
                except Exception:  # bookkeeping: never lose the rest, never fail a caller
                    logger.warning("%s: could not write %r", self.name, slot, exc_info=True)

    def _after_fork(self) -> None:
        self._pending = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._thread = None


def flush_all() -> None:
    """Write what every writer of this process holds (at exit, and before reading records)."""
    for writer in list(_writers):
        writer.flush()


def _reset_in_child() -> None:
    for writer in list(_writers):
        writer._after_fork()


atexit.register(flush_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
