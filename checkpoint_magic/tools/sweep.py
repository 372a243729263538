"""Removing a store's garbage safely: only the names the store writes, only after a grace period.

:mod:`checkpoint_magic.tools.maintenance` (gc, clear) and :mod:`checkpoint_magic.tools.integrity`
(``verify --fix``) remove files only through these helpers. A blob is freed only if no
manifest on disk refers to it and it was not modified for ``grace`` seconds, re-checked
right before removing it (a concurrent commit writes its blobs before its manifest, and
``put_blob`` refreshes the mtime of a blob it reuses); a staging file or state record
only if its name is one the store writes (see :mod:`checkpoint_magic.tools.inventory`) and it
is that old. A file of any other name is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from ..store.core import Store
from .inventory import (
    HITS,
    PIN,
    EntryInfo,
    blob_files,
    blob_refs,
    digest_of,
    is_staging,
    list_dirs,
    list_files,
    parse_manifest,
    state_file,
    state_kind,
)

logger = logging.getLogger("checkpoint_magic.tools.maintenance")


def is_old(st: os.stat_result, now: float, grace: float) -> bool:
    return now - st.st_mtime >= grace


def unlink_quietly(path: str | Path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def remove_manifest(entry: EntryInfo) -> bool:
    """Remove an entry's manifest unless a concurrent commit rewrote it since it was read."""
    if entry.path is None:
        return False
    try:
        if os.stat(entry.path).st_mtime_ns != entry.mtime_ns:
            logger.debug("%s was rewritten meanwhile; kept", entry.path)
            return False
    except FileNotFoundError:
        return False
    return unlink_quietly(entry.path)


def remove_state(store: Store, entry: EntryInfo) -> int:
    return sum(
        unlink_quietly(state_file(store, entry.ns_dir, entry.key + sfx)) for sfx in (HITS, PIN)
    )


def live_references(
    store: Store, scanned: Iterable[EntryInfo], removed: set[tuple[str, str]]
) -> set[str]:
    """Blobs referred to by the manifests on disk *now* (re-reading only those new or rewritten)."""
    known = {(e.ns_dir, e.key): e for e in scanned}
    referenced: set[str] = set()
    for ns in list_dirs(store.entries):
        for f in list_files(Path(ns.path)):
            if f.name.startswith("."):
                continue
            entry = known.get((ns.name, f.name))
            try:
                if entry is not None and f.stat().st_mtime_ns == entry.mtime_ns:
                    if (ns.name, f.name) not in removed:
                        referenced.update(entry.blobs)
                    continue
                manifest, _, _ = parse_manifest(Path(f.path).read_bytes())
            except FileNotFoundError:
                continue
            if manifest is not None:
                referenced.update(blob_refs(manifest, {}))
    return referenced


def sweep_blobs(
    store: Store, referenced: set[str], now: float, grace: float, dry_run: bool
) -> tuple[int, int, int, int]:
    """Free the blobs no manifest refers to: ``(freed, bytes, pending, pending bytes)``.

    A blob is freed only if untouched for ``grace`` seconds, even if the entries that
    used it were just removed: a concurrent commit reusing it refreshes its mtime
    (``put_blob``) before writing its manifest. Younger ones are *pending* (a later gc
    frees them). Files whose names are not digests are never touched.
    """
    count = freed = pending = pending_bytes = 0
    for rel, st in blob_files(store).items():
        digest = digest_of(rel)
        if digest is None or digest in referenced:
            continue
        old = is_old(st, now, grace)
        if old and not dry_run:
            path = store.objects / rel
            try:  # re-check right before removing: a concurrent commit may have reused it
                old = is_old(os.stat(path), time.time(), grace)
            except FileNotFoundError:
                continue
            if old and not unlink_quietly(path):
                continue
        if old:
            count += 1
            freed += st.st_size
        else:
            pending += 1
            pending_bytes += st.st_size
    return count, freed, pending, pending_bytes


def sweep_tmp_and_state(
    store: Store, live: set[tuple[str, str]], now: float, grace: float, dry_run: bool
) -> tuple[int, int]:
    """Remove staging leftovers and usage/pin/miss records of entries that no longer exist."""
    tmp = 0
    for f in list_files(store.tmp):
        with contextlib.suppress(FileNotFoundError):
            if (
                is_staging(f.name)
                and is_old(f.stat(), now, grace)
                and (dry_run or unlink_quietly(f.path))
            ):
                tmp += 1
    state = 0
    live_dirs = {ns for ns, _ in live}
    for sub in list_dirs(store.state):
        for f in list_files(Path(sub.path)):
            kind, name = state_kind(f.name)
            if kind == "entry":
                stale = (sub.name, name) not in live
            elif kind == "namespace":
                stale = sub.name not in live_dirs
            else:
                stale = kind == "temp"
            with contextlib.suppress(FileNotFoundError):
                if stale and is_old(f.stat(), now, grace) and (dry_run or unlink_quietly(f.path)):
                    state += 1
    return tmp, state


def still_old(path: str | Path, grace: float) -> bool:
    """Re-checked right before removing a file: a concurrent commit may have reused it."""
    try:
        return is_old(os.stat(path), time.time(), grace)
    except FileNotFoundError:
        return False
