"""Commit leases: objects under ``leases/`` naming a commit in flight and the blobs it uses.

A commit that stores blobs holds a :class:`CommitLease`. It lists every blob digest the
commit stores or reuses, written *before* the commit checks whether the blob exists, and is
deleted once the manifest is published. Garbage collection frees an unreferenced blob in
three steps (see :mod:`checkpoint_magic.store.sweep`): move it aside, read the live leases,
then restore it if a lease claims it or a manifest now refers to it. A commit that claims a
blob after gc read the leases finds it gone and writes it again, so no interleaving
publishes a manifest whose blob gc removed.

A lease of a process that died (same host, pid gone) or not refreshed for
:data:`LEASE_TTL` seconds is stale: ignored, and removed by gc.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store.backends import open_backend
>>> backend = open_backend(tempfile.mkdtemp())
>>> lease = CommitLease(backend)
>>> lease.claim("0123456789abcdef0123456789abcdef")
>>> sorted(live_claims(backend)[0])
['0123456789abcdef0123456789abcdef']
>>> lease.release(); live_claims(backend)
(set(), [])
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from . import layout
from .backends import StoreBackend

__all__ = ["LEASE_DIGESTS", "LEASE_TTL", "CommitLease", "is_stale", "live_claims"]

logger = logging.getLogger(__name__)

#: A lease not refreshed for this many seconds is stale, whoever holds it.
LEASE_TTL = 3600.0
#: Digests per lease file. :func:`live_claims` reads at most 1 MiB of a lease (~29,000
#: digests), and each claim rewrites the file being filled: a commit of more blobs fills
#: several files, so none outgrows what a gc reads and a claim costs no more as they add up.
LEASE_DIGESTS = 1024
_LEASE_READ_LIMIT = 1 << 20
_HOST = socket.gethostname()


class CommitLease:
    """The lease of one commit; created by its first :meth:`claim`, removed by :meth:`release`.

    It is one file per :data:`LEASE_DIGESTS` digests claimed (``leases/commit-<32 hex>``).

    Parameters
    ----------
    backend : StoreBackend
        The backend of the store the commit writes to.
    """

    def __init__(self, backend: StoreBackend):
        self.backend = backend
        self.name: str | None = None  # the file being filled
        self.names: list[str] = []  # every file written, that one last
        self.digests: list[str] = []  # what that file claims
        self.claimed: set[str] = set()  # what every file claims
        self.started = time.time()

    def _body(self, digests: list[str]) -> bytes:
        record = {
            "kind": "commit",
            "host": _HOST,
            "pid": os.getpid(),
            "started": self.started,
            "digests": digests,
        }
        return json.dumps(record).encode("utf-8")

    def claim(self, digest: str) -> None:
        """Record that the commit stores or reuses blob ``digest`` (before checking it exists).

        Parameters
        ----------
        digest : str
            The blob's content hash; claiming it twice is a no-op.

        Raises
        ------
        OSError
            The lease could not be written (the commit must not rely on the blob then).
        """
        self.claim_all([digest])

    def claim_all(self, digests: Iterable[str]) -> None:
        """Claim several blobs with one write of the lease (see :meth:`claim`).

        Parameters
        ----------
        digests : iterable of str
            The blobs' content hashes; those claimed already are skipped.

        Raises
        ------
        OSError
            The lease could not be written.
        """
        new = [d for d in dict.fromkeys(digests) if d not in self.claimed]
        while new:
            if self.name is not None and len(self.digests) >= LEASE_DIGESTS:
                self.name, self.digests = None, []  # that file is full: the next one
            room = LEASE_DIGESTS - len(self.digests)
            batch, new = new[:room], new[room:]
            body = self._body(self.digests + batch)
            if self.name is None:
                name = layout.lease("commit")
                self.backend.create(name, body)
                self.name = name
                self.names.append(name)
            else:
                self.backend.write(self.name, body)
            self.digests.extend(batch)  # claimed once written, not before
            self.claimed.update(batch)

    def release(self) -> None:
        """Remove the lease (the commit is published, or abandoned)."""
        for name in self.names:
            with contextlib.suppress(OSError):
                self.backend.delete(name)
        self.name, self.names, self.digests, self.claimed = None, [], [], set()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(record: dict[str, Any], mtime: float, now: float) -> bool:
    """Whether a lease's holder is gone: a dead pid on this host, or no refresh for a while.

    Parameters
    ----------
    record : dict
        The lease's JSON record (``host``, ``pid``...).
    mtime : float
        The lease's modification time (its last refresh).
    now : float
        The current time.

    Returns
    -------
    bool
        ``True`` if the lease is older than :data:`LEASE_TTL` or its process is gone.
    """
    if now - mtime > LEASE_TTL:
        return True
    pid = record.get("pid")
    return record.get("host") == _HOST and isinstance(pid, int) and not _alive(pid)


def live_claims(backend: StoreBackend) -> tuple[set[str], list[str]]:
    """``(digests claimed by live commits, names of stale leases)``.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.

    Returns
    -------
    claimed : set of str
        Every blob digest a live commit lease lists.
    stale : list of str
        Names of leases whose holder is gone (or unreadable ones older than a minute).
    """
    now = time.time()
    claimed: set[str] = set()
    stale: list[str] = []
    # The files of one commit lease share its holder and start; only the one being filled is
    # rewritten (refreshed) by new claims: the lease is as fresh as its newest file.
    leases: dict[Any, list[tuple[str, dict[str, Any]]]] = {}
    refreshed: dict[Any, float] = {}
    for leaf, st in backend.list_files(layout.LEASES):
        name = f"{layout.LEASES}/{leaf}"
        try:
            record = json.loads(backend.read_bytes(name, limit=_LEASE_READ_LIMIT))
        except FileNotFoundError:
            continue
        except (ValueError, RecursionError):
            record = None
        if not isinstance(record, dict):
            # Half-written by a crash, or not ours: stale once old enough.
            if now - st.mtime > 60:
                stale.append(name)
            continue
        holder: Any = name
        if record.get("kind") == "commit":
            holder = tuple(repr(record.get(k)) for k in ("host", "pid", "started"))
        leases.setdefault(holder, []).append((name, record))
        refreshed[holder] = max(refreshed.get(holder, st.mtime), st.mtime)
    for holder, files in leases.items():
        if is_stale(files[0][1], refreshed[holder], now):
            stale.extend(name for name, _ in files)
            continue
        for _, record in files:
            claimed.update(d for d in record.get("digests", []) if isinstance(d, str))
    return claimed, stale
