"""Removing a store's garbage safely: only names the store writes, never a blob in use.

Garbage collection (:mod:`checkpoint_magic.store.budget`) and ``verify --fix`` remove files
only through these helpers. An unreferenced blob is freed in three steps: it is moved aside
(``tmp/gc-<random>``), then the live commit leases are read (:mod:`.leases`)
and the manifests listed again, and the blob is restored if a lease claims it or a manifest
now refers to it; otherwise it is deleted. A commit claims a blob in its lease before it
checks that the blob exists, so either gc sees the claim, or the commit sees the blob gone
and writes it again: a grace period is not needed for safety (``grace`` only keeps
recently touched garbage around). A staging file is removed only when the process that
writes it is gone; a state record only when its entry is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable

from . import layout
from .backends import Stat
from .catalog import EntryInfo, blob_files, blob_refs, parse_manifest
from .core import Store
from .indexrows import signature
from .leases import LEASE_TTL, live_claims
from .manifest import MANIFEST_MAX_BYTES
from .walk import manifest_files, state_names

__all__ = [
    "free_blobs",
    "is_old",
    "live_references",
    "remove_manifest",
    "remove_state",
    "sweep_state",
    "sweep_tmp_and_state",
]

logger = logging.getLogger(__name__)

#: A blob set aside by a gc that died is removed after this many seconds.
_TRASH_AGE = 600.0


def is_old(st: Stat, now: float, grace: float) -> bool:
    """Whether ``st`` was last modified at least ``grace`` seconds before ``now``.

    Parameters
    ----------
    st : Stat
        A stored object's stat.
    now : float
        The current time.
    grace : float
        Seconds a file must be left alone after its last modification.

    Returns
    -------
    bool
        True if ``now - st.mtime >= grace``.
    """
    return now - st.mtime >= grace


def remove_manifest(store: Store, entry: EntryInfo) -> bool:
    """Remove an entry's manifest unless a concurrent commit rewrote it since it was read.

    Parameters
    ----------
    store : Store
        The store.
    entry : EntryInfo
        The entry, as :func:`~checkpoint_magic.store.catalog.scan_entries` listed it.

    Returns
    -------
    bool
        ``True`` if removed; ``False`` if gone or rewritten meanwhile (then kept).
    """
    st = store.backend.stat(entry.name)
    if st is None:
        return False
    if signature(st) != entry.version:
        logger.debug("%s was rewritten meanwhile; kept", entry.name)
        return False
    return store.backend.delete(entry.name)


def remove_state(store: Store, entry: EntryInfo) -> int:
    """Remove an entry's usage and pin records.

    Parameters
    ----------
    store : Store
        The store.
    entry : EntryInfo
        The entry, as :func:`~checkpoint_magic.store.catalog.scan_entries` listed it.

    Returns
    -------
    int
        How many records were removed (0 to 2).
    """
    sharded = store.sharded
    return sum(
        store.backend.delete(layout.state_in(entry.ns_dir, entry.key, sfx, sharded=sharded))
        for sfx in (layout.HITS, layout.PIN)
    )


def live_references(
    store: Store, scanned: Iterable[EntryInfo], removed: set[tuple[str, str]]
) -> set[str]:
    """Blobs the manifests stored *now* refer to, flat or sharded (unchanged ones not re-read).

    Parameters
    ----------
    store : Store
        The store.
    scanned : iterable of EntryInfo
        Entries read earlier; an unchanged manifest (same version) is not read again.
    removed : set of (str, str)
        ``(namespace folder, key)`` of entries removed since: their blobs do not count.

    Returns
    -------
    set of str
        Digests of every blob a current manifest refers to.
    """
    known = {(e.ns_dir, e.key): e for e in scanned}
    referenced: set[str] = set()
    backend = store.backend
    for ns_dir in backend.list_folders(layout.ENTRIES):
        # Both layouts: an upgrade may be moving manifests, or this process read FORMAT 1.
        for key, name, st in manifest_files(backend, ns_dir):
            entry = known.get((ns_dir, key))
            if entry is not None and signature(st) == entry.version:
                if (ns_dir, key) not in removed:
                    referenced.update(entry.blobs)
                continue
            try:
                data = backend.read_bytes(name, MANIFEST_MAX_BYTES)
            except FileNotFoundError:
                continue
            manifest, _, _ = parse_manifest(data)
            if manifest is not None:
                referenced.update(blob_refs(manifest, {}))
    return referenced


def free_blobs(
    store: Store,
    referenced: set[str],
    now: float,
    grace: float,
    dry_run: bool,
    *,
    scanned: Iterable[EntryInfo] = (),
    removed: set[tuple[str, str]] | None = None,
) -> tuple[int, int, int, int]:
    """Free the blobs no manifest refers to: ``(freed, bytes, pending, pending bytes)``.

    Blobs touched within ``grace`` seconds are *pending* (a later gc frees them). Files
    whose names are not digests are never touched. See the module docstring for why a
    blob a live commit uses is never lost.

    Parameters
    ----------
    store : Store
        The store.
    referenced : set of str
        Digests referred to by the manifests scanned (never freed).
    now : float
        The current time.
    grace : float
        Seconds a file must be left alone after its last modification.
    dry_run : bool
        Count what would be freed; remove nothing.
    scanned : iterable of EntryInfo, optional
        The entries scanned, to re-check references cheaply (:func:`live_references`).
    removed : set of (str, str), optional
        Entries removed by this gc.

    Returns
    -------
    freed : int
        Blobs freed (or that would be, with ``dry_run``).
    freed_bytes : int
        Their bytes.
    pending : int
        Unreferenced blobs kept for now (too recent, or claimed meanwhile).
    pending_bytes : int
        Their bytes.
    """
    backend = store.backend
    count = freed = pending = pending_bytes = 0
    aside: dict[str, tuple[str, Stat]] = {}
    for rel, st in blob_files(store).items():
        digest = layout.digest_of(rel)
        if digest is None or digest in referenced:
            continue
        if not is_old(st, now, grace):
            pending += 1
            pending_bytes += st.size
        elif dry_run:
            count += 1
            freed += st.size
        else:
            trash = layout.trash()
            with contextlib.suppress(FileNotFoundError):
                current = backend.stat(layout.blob(digest))
                if (
                    current is not None
                    and is_old(current, time.time(), grace)
                    and backend.move(layout.blob(digest), trash)
                ):
                    aside[digest] = (trash, st)
                    continue
            pending += 1
            pending_bytes += st.size
    if not aside:
        return count, freed, pending, pending_bytes
    claimed, stale = live_claims(backend)
    still = live_references(store, scanned, removed or set())
    for digest, (trash, st) in aside.items():
        if digest in claimed or digest in still:
            if backend.stat(layout.blob(digest)) is None:
                backend.move(trash, layout.blob(digest))
            else:
                backend.delete(trash)
            pending += 1
            pending_bytes += st.size
        else:
            backend.delete(trash)
            count += 1
            freed += st.size
    for name in stale:
        backend.delete(name)
    return count, freed, pending, pending_bytes


def _has_manifest(store: Store, ns_dir: str, key: str) -> bool:
    """Whether the entry has a manifest, flat or in its shard (looked at in the order an
    upgrade moves it, so a manifest moved meanwhile is found)."""
    return any(
        store.backend.stat(layout.entry_in(ns_dir, key, sharded=sharded)) is not None
        for sharded in (False, True)
    )


def _writer_alive(name: str) -> bool:
    pid, _, _ = name.partition("-")
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def removable_staging(name: str, st: Stat, now: float, grace: float) -> bool:
    """Whether ``tmp/<name>`` is a staging leftover: a store name, its writer gone, old enough.

    Parameters
    ----------
    name : str
        A file name in ``tmp/``.
    st : Stat
        Its stat.
    now : float
        The current time.
    grace : float
        Seconds a file must be left alone after its last modification.

    Returns
    -------
    bool
        True if it may be removed.
    """
    if not layout.is_staging(name) or not is_old(st, now, grace):
        return False
    if name.startswith("gc-"):
        return now - st.mtime >= _TRASH_AGE  # a gc in progress restores or deletes it soon
    return not _writer_alive(name) or now - st.mtime >= LEASE_TTL


def sweep_tmp_and_state(
    store: Store, live: set[tuple[str, str]], now: float, grace: float, dry_run: bool
) -> tuple[int, int]:
    """Remove staging leftovers and usage/pin/miss records of entries that no longer exist.

    Parameters
    ----------
    store : Store
        The store.
    live : set of (str, str)
        ``(namespace folder, key)`` of the entries that exist.
    now : float
        The current time.
    grace : float
        Seconds a file must be left alone after its last modification.
    dry_run : bool
        Count what would be removed; remove nothing.

    Returns
    -------
    tmp : int
        Staging files removed.
    state : int
        State records removed.
    """
    backend = store.backend
    tmp = 0
    for name, st in backend.list_files(layout.TMP):
        if removable_staging(name, st, now, grace) and (
            dry_run or backend.delete(f"{layout.TMP}/{name}")
        ):
            tmp += 1
    return tmp, sweep_state(store, live, now, grace, dry_run)


def sweep_state(
    store: Store, live: set[tuple[str, str]], now: float, grace: float, dry_run: bool
) -> int:
    """Remove the usage/pin/miss records of entries that no longer exist; return how many.

    A record is stale when its entry is not in ``live`` and has no manifest in either
    layout (or, for a namespace's own records, when the namespace has no live entry), and
    old enough. Only those few are stat'ed: a local state folder is listed by name.

    Parameters
    ----------
    store : Store
        The store.
    live : set of (str, str)
        ``(namespace folder, key)`` of the entries that exist.
    now : float
        The current time.
    grace : float
        Seconds a file must be left alone after its last modification.
    dry_run : bool
        Count what would be removed; remove nothing.

    Returns
    -------
    int
        State records removed (or that would be, with ``dry_run``).

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> key = "0a" * 16
    >>> store.write_entry("m.f", key, {"outputs": {}})
    >>> store.set_pinned("m.f", key)
    >>> sweep_state(store, {("m.f", key)}, time.time(), 0, dry_run=True)
    0
    >>> sweep_state(store, set(), time.time(), 0, dry_run=True)  # its manifest still exists
    0
    >>> _ = store.backend.delete(layout.entry("m.f", key))
    >>> sweep_state(store, set(), time.time(), 0, dry_run=False)
    1
    >>> store.backend.stat(layout.entry_state("m.f", key, layout.PIN)) is None
    True
    """
    backend = store.backend
    state = 0
    live_dirs = {ns for ns, _ in live}
    sharded = store.sharded
    for ns_dir in backend.list_folders(layout.STATE):
        for name, path, st in state_names(backend, ns_dir, sharded=sharded):
            kind, key = layout.state_kind(name)
            if kind == "entry":  # and its manifest is in neither layout (see live_references)
                stale = (ns_dir, key) not in live and not _has_manifest(store, ns_dir, key)
            elif kind == "namespace":
                stale = ns_dir not in live_dirs
            else:
                stale = kind == "temp"
            if not stale:
                continue
            st = st or backend.stat(path)  # listed by name: only a stale record is stat'ed
            if st is not None and is_old(st, now, grace) and (dry_run or backend.delete(path)):
                state += 1
    return state
