"""Single-flight: racing callers of one missing computation run it once; the others load it.

The first caller to miss takes the computation's *flight lease*, a small object under
``leases/`` created with the backend's atomic create-if-absent (``O_CREAT|O_EXCL`` locally, a
conditional PUT with ``If-None-Match: *`` on S3), and renews it with a heartbeat while the
body runs. Another caller that misses finds the lease and waits, polling for the entry; when
it appears, it loads it. The lease ends when the holder publishes the entry or gives up
(its body raised, or the commit failed): waiters then find the entry, or the lease gone and
race to take it.

A holder that dies (``SIGKILL``, a lost machine) stops renewing. Its lease is *stale* once
its holder is a dead process on this host, or it has not changed for
``CHECKPOINT_MAGIC_LEASE_TTL`` seconds (default 60) as measured by the waiter's own clock, so
clocks of different hosts need not agree. Locally the lease is written in place, not staged
and linked (two file-system operations fewer per miss), so a waiter may find it empty for a
moment; one still empty :data:`EMPTY_STALE` seconds later lost its holder in between. A
stale lease of generation ``g`` is taken over by creating generation ``g + 1``
(create-if-absent again), so exactly one waiter takes over.
Nothing waits forever, and nothing is lost: a taken-over holder that was only slow still
publishes its result (a valid entry), it merely stops renewing.

Coordination is for computations worth waiting for. A caller whose computation took less
than :data:`WORTH_WAITING` every time this process ran it (:func:`worth_a_flight`) computes
without a lease: a waiter's first poll comes no sooner than that, and the lease's
file-system operations (list, create, check, read back, delete) cost more than running such
a computation twice. Two racing callers then both publish the same valid entry (the later
one replaces the earlier, atomically).

The lease is a JSON record (``kind`` ``"flight"``, host, pid, namespace, key, an empty
``digests`` list) that garbage collection reads with the commit leases
(:mod:`checkpoint_magic.store.leases`): it marks a computation in flight, claims no blob,
and is removed by gc once stale. Any failure of the store while waiting or renewing is
logged and the caller simply computes: single-flight saves work, it never blocks a result.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store.backends import open_backend
>>> backend = open_backend(tempfile.mkdtemp())
>>> flight = acquire(backend, "m.f", "0123456789abcdef0123456789abcdef", lambda: False)
>>> flight.held, [name for name, _ in backend.list_files("leases")]
(True, ['flight-0123456789abcdef0123456789abcdef-0'])
>>> flight.release(); backend.list_files("leases")
[]
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from .. import config
from . import layout
from .backends import Stat, StoreBackend

__all__ = ["HOST", "WORTH_WAITING", "Flight", "acquire", "flight_leases", "worth_a_flight"]

logger = logging.getLogger(__name__)

#: This host's name, as leases record it (a dead pid is only judged on its own host).
HOST = socket.gethostname()
#: Seconds after which a lease still empty (its holder died right after creating it, before
#: writing its record: a living holder writes it at once) is stale.
EMPTY_STALE = 2.0
#: First and longest pause between two polls of a waiter (seconds); local stores poll faster.
POLL_MIN, POLL_MAX = 0.02, 1.0
#: A computation always faster than this (seconds) is not coordinated (see :func:`worth_a_flight`).
WORTH_WAITING = POLL_MIN


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worth_a_flight(slowest: float | None) -> bool:
    """Whether a miss should take the flight lease, given its computation's slowest run so far.

    Parameters
    ----------
    slowest : float or None
        The longest this computation (one checkpoint) took in this process, in seconds;
        ``None`` before its first run, which is coordinated: how long it takes is unknown.

    Returns
    -------
    bool
        ``False`` when it never took as long as :data:`WORTH_WAITING`: a waiter could not
        get its result sooner than by computing it.

    Examples
    --------
    >>> worth_a_flight(None), worth_a_flight(2.5), worth_a_flight(0.001)
    (True, True, False)
    """
    return slowest is None or slowest >= WORTH_WAITING


def flight_leases(backend: StoreBackend, key: str) -> list[tuple[int, str, Stat]]:
    """``(generation, name, stat)`` of the flight leases of ``key``, oldest generation first.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    key : str
        The entry's key.

    Returns
    -------
    list of (int, str, Stat)
        ``[]`` if no computation of ``key`` is in flight.
    """
    found = []
    for leaf, st in backend.list_files(layout.LEASES):
        gen = layout.flight_generation(leaf, key)
        if gen is not None:
            found.append((gen, f"{layout.LEASES}/{leaf}", st))
    return sorted(found)


class Flight:
    """The caller's side of one computation: a held lease (renewed until released) or none.

    ``held`` is ``False`` when the entry appeared while waiting (load it), or when the store
    failed and the caller computes without single-flight.

    Parameters
    ----------
    backend : StoreBackend or None
        The store's backend; ``None`` for a flight not held.
    name : str or None
        The held lease's name; ``None`` if not held.
    token : str, default ""
        The random token written in the lease, so :meth:`release` removes only its own.
    """

    def __init__(self, backend: StoreBackend | None, name: str | None, token: str = ""):
        self.backend = backend
        self.name = name
        self.token = token

    @property
    def held(self) -> bool:
        """Whether this caller holds the lease (and so runs the computation)."""
        return self.name is not None

    def __repr__(self) -> str:
        return f"Flight({self.name!r})"

    def renew(self) -> bool:
        """Refresh the lease (the heartbeat).

        Returns
        -------
        bool
            ``False`` once the lease is gone (taken over) or not held; ``True`` while held,
            also when the store is unreachable for now.
        """
        if self.backend is None or self.name is None:
            return False
        try:
            if self.backend.touch(self.name):
                return True
        except OSError as exc:  # unreachable for now: keep trying, waiters may take over
            logger.debug("could not renew lease %s: %s", self.name, exc)
            return True
        logger.info("lease %s was taken over; this result is still stored", self.name)
        return False

    def release(self) -> None:
        """End the flight: stop renewing and remove the lease if it is still ours."""
        _heartbeat.remove(self)
        name, self.name = self.name, None
        if name is None or self.backend is None:
            return
        try:
            record = json.loads(self.backend.read_bytes(name, limit=1 << 16))
            if isinstance(record, dict) and record.get("token") == self.token:
                self.backend.delete(name)
        except FileNotFoundError:
            pass  # taken over and cleaned up by the taker
        except (OSError, ValueError) as exc:
            logger.debug("could not remove lease %s: %s", name, exc)


class _Heartbeat:
    """One daemon thread per process renewing every held lease every ``interval`` seconds."""

    def __init__(self) -> None:
        self._flights: dict[int, tuple[Flight, float, float]] = {}  # id -> (flight, interval, due)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, flight: Flight, interval: float) -> None:
        with self._cond:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="checkpoint-magic-lease", daemon=True
                )
                self._thread.start()
            self._flights[id(flight)] = (flight, interval, time.monotonic() + interval)
            self._cond.notify()

    def remove(self, flight: Flight) -> None:
        with self._cond:
            self._flights.pop(id(flight), None)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [f for f, _, at in self._flights.values() if at <= now]
                for flight in due:
                    _, interval, _ = self._flights[id(flight)]
                    self._flights[id(flight)] = (flight, interval, now + interval)
                nxt = min((at for _, _, at in self._flights.values()), default=now + 3600)
            for flight in due:
                if not flight.renew():
                    self.remove(flight)
            with self._cond:
                self._cond.wait(max(0.0, nxt - time.monotonic()))


_heartbeat = _Heartbeat()


def _record(namespace: str, key: str, token: str) -> bytes:
    return json.dumps(
        {
            "kind": "flight",
            "host": HOST,
            "pid": os.getpid(),
            "started": time.time(),
            "namespace": namespace,
            "key": key,
            "token": token,
            "digests": [],
        }
    ).encode("utf-8")


class _Watch:
    """A waiter's view of the current lease: when it last saw it change (own monotonic clock)."""

    def __init__(self, backend: StoreBackend, ttl: float):
        self.backend = backend
        self.ttl = ttl
        self.seen: tuple[str, Any, float] | None = None  # (name, version, first seen)
        self.owners: dict[tuple[str, Any], tuple[str, int] | None] = {}

    def stale(self, name: str, st: Stat) -> bool:
        version = (st.version, st.mtime, st.size)
        now = time.monotonic()
        if self.seen is None or self.seen[:2] != (name, version):
            self.seen = (name, version, now)
        if now - self.seen[2] > self.ttl:
            return True
        if st.size == 0 and now - self.seen[2] > EMPTY_STALE:
            return True  # its holder died between creating it and writing its record
        owner = self._owner(name, version)
        return owner is not None and owner[0] == HOST and not _alive(owner[1])

    def _owner(self, name: str, version: Any) -> tuple[str, int] | None:
        if (name, version) not in self.owners:
            try:
                record = json.loads(self.backend.read_bytes(name, limit=1 << 16))
            except FileNotFoundError:
                return None
            except ValueError:
                record = None
            ok = isinstance(record, dict) and isinstance(record.get("pid"), int)
            self.owners[name, version] = (str(record["host"]), record["pid"]) if ok else None
        return self.owners[name, version]


def _create_in_place(backend: StoreBackend, name: str, data: bytes) -> bool:
    """``backend.create(name, data, whole=False)``, or without ``whole`` for a backend
    written before the keyword existed (its create is then whole, which is as correct)."""
    cls = type(backend)
    accepts = _ACCEPTS_WHOLE.get(cls)
    if accepts is None:
        try:
            accepts = "whole" in inspect.signature(cls.create).parameters
        except (TypeError, ValueError):  # no signature to inspect: assume the old one
            accepts = False
        _ACCEPTS_WHOLE[cls] = accepts
    return backend.create(name, data, whole=False) if accepts else backend.create(name, data)


# backend class -> whether its create() takes ``whole`` (third-party backends may not)
_ACCEPTS_WHOLE: dict[type, bool] = {}


def acquire(
    backend: StoreBackend,
    namespace: str,
    key: str,
    entry_exists: Callable[[], bool],
    *,
    ttl: float | None = None,
    poll_max: float | None = None,
) -> Flight:
    """Take the flight lease of ``key``, or wait until its entry exists.

    Returns a held :class:`Flight` (compute, commit, then :meth:`Flight.release`), or one not
    held when ``entry_exists()`` became true while waiting (load the entry). A store failure
    returns a flight not held either, after a log line: the caller computes uncoordinated.
    Call ``entry_exists`` first yourself: this assumes a miss was just seen.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    namespace : str
        The computation's namespace (for log lines).
    key : str
        The entry's key.
    entry_exists : callable
        ``entry_exists()`` tells whether the entry was committed meanwhile.
    ttl : float, optional
        Seconds without a lease change after which a waiter takes it over (default
        ``config.lease_ttl()``).
    poll_max : float, optional
        Longest pause between two polls, in seconds (default :data:`POLL_MAX`).

    Returns
    -------
    Flight
        Held: compute, commit, release. Not held: load the entry (or compute uncoordinated
        after a store failure).
    """
    ttl = config.lease_ttl() if ttl is None else ttl
    poll_max = POLL_MAX if poll_max is None else poll_max
    token = uuid.uuid4().hex
    watch = _Watch(backend, ttl)
    pause = POLL_MIN
    waited = False
    try:
        while True:
            leases = flight_leases(backend, key)
            if leases:
                gen, name, st = leases[-1]
                if not watch.stale(name, st):
                    if not waited:
                        logger.info("%s: waiting for another process computing it", namespace)
                        waited = True
                    time.sleep(pause)
                    pause = min(poll_max, pause * 1.5)
                    if entry_exists():
                        return Flight(None, None)
                    continue
                logger.info("%s: taking over the stale lease %s", namespace, name)
                gen += 1
            else:
                gen = 0
            mine = layout.flight_lease(key, gen)
            # Written in place (not staged and linked): two file-system operations fewer
            # per miss; a reader may see it empty for a moment (see _Watch.stale).
            if _create_in_place(backend, mine, _record(namespace, key, token)):
                # The listing may have been stale: a file it named was removed (by a waiter
                # taking over) before its stat, after a newer generation was created that
                # it did not see yet. Whoever holds the newest generation runs; others wait.
                if any(g > gen for g, _, _ in flight_leases(backend, key)):
                    backend.delete(mine)
                    continue
                for _, old, _ in leases:
                    backend.delete(old)  # stale generations, or ones released meanwhile
                if entry_exists():  # published between our last look and the lease
                    Flight(backend, mine, token).release()
                    return Flight(None, None)
                flight = Flight(backend, mine, token)
                _heartbeat.add(flight, max(0.1, ttl / 3))
                return flight
            # Someone else created that generation first: watch it.
    except OSError as exc:
        logger.info("%s: single-flight unavailable (%s); computing without it", namespace, exc)
        return Flight(None, None)
