"""Checking a store's integrity: every manifest and every blob, and repairing what is damaged.

This module owns :func:`verify` (``checkpoint-magic verify [--fix]``). It reads manifests
without removing them (the store's own reads drop a damaged file; a check should report
it first) and hashes every blob once, however many entries share it; nothing is
unpickled. With ``CHECKPOINT_MAGIC_SECRET`` set it also refuses unsigned or wrongly
signed manifests: loading a pickle from a store someone else could write, without
signed entries, is running their code. ``fix`` never removes those (a mistyped or newly
set secret would otherwise wipe the store): ``drop_unsigned`` does, explicitly.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("m.f", "k1", {"outputs": {"return": record}})
>>> verify(store).ok
True
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import xxhash

from ..store import layout
from ..store.backends import UnsafeStoreError
from ..store.budget import GRACE_SECONDS, parse_grace
from ..store.catalog import (
    EntryInfo,
    blob_files,
    blob_refs,
    parse_manifest,
    read_entries,
    require_store,
)
from ..store.core import Store
from ..store.entryinfo import Scan, no_gc_pauses
from ..store.manifest import MANIFEST_MAX_BYTES
from ..store.sweep import (
    free_blobs,
    is_old,
    live_references,
    removable_staging,
    remove_state,
    sweep_state,
)
from ..store.upgrade import upgrade_store
from ..store.walk import entry_keys

__all__ = ["Problem", "VerifyReport", "verify"]

logger = logging.getLogger(__name__)

_CHUNK = 8 << 20


@dataclass
class Problem:
    """One finding of :func:`verify`; ``path`` is relative to the store root.

    Attributes
    ----------
    kind : str
        What is wrong: ``"damaged manifest"``, ``"signature"``, ``"missing blob"``,
        ``"corrupt blob"``, ``"unsafe blob"`` (a link where a blob should be: ``fix``
        removes the link, never what it points to), ``"broken entry"``; or, for leftovers, ``"unreferenced blob"``,
        ``"staging leftover"``, ``"stale state"``, ``"stray flat manifest"`` (moved, not
        removed, by ``fix``).
    path : str
        The file concerned, relative to the store root.
    detail : str
        Why, in words (sizes, the entries that refer to a missing blob...).
    fixed : bool
        Whether ``fix=True`` (or ``drop_unsigned``) removed it.
    """

    kind: str
    path: str
    detail: str
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description.

        Returns
        -------
        dict of str to object
            The fields by name.
        """
        return asdict(self)


@dataclass
class VerifyReport:
    """Damage (``problems``) and leftovers (``garbage``) found by :func:`verify`.

    Attributes
    ----------
    entries : int
        Manifests checked (damaged ones included).
    blobs : int
        Referenced blobs found and hashed.
    problems : list of Problem
        Damage: manifests, signatures, blobs and the entries they break.
    garbage : list of Problem
        Leftovers that only take space: unreferenced blobs, staging files, stale state.
    ok : bool
        No damage left unfixed (a property).
    unsigned : int
        Entries kept although their signature fails (a property).
    """

    entries: int = 0
    blobs: int = 0
    problems: list[Problem] = field(default_factory=list)
    garbage: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No damage left unfixed (leftovers are not damage: they only take space)."""
        return all(p.fixed for p in self.problems)

    @property
    def unsigned(self) -> int:
        """Entries kept although their signature fails (``drop_unsigned`` removes them)."""
        return sum(p.kind == "signature" and not p.fixed for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description.

        Returns
        -------
        dict of str to object
            ``ok``, ``entries``, ``blobs``, ``unsigned``, and the ``problems`` and ``garbage``.
        """
        return {
            "ok": self.ok,
            "entries": self.entries,
            "blobs": self.blobs,
            "unsigned": self.unsigned,
            "problems": [p.to_dict() for p in self.problems],
            "garbage": [p.to_dict() for p in self.garbage],
        }


def _hash_blob(store: Store, name: str) -> tuple[int, str]:
    """``(size, xxh3-128 hex)`` of a stored blob, read in chunks."""
    hasher = xxhash.xxh3_128()
    size = 0
    f, st = store.backend.open_read(name)
    with f:
        view = memoryview(bytearray(min(_CHUNK, max(st.size, 1))))
        while n := f.readinto(view):  # type: ignore[attr-defined]
            hasher.update(view[:n])
            size += n
    return size, hasher.hexdigest()


def _stray_names(store: Store) -> list[str]:
    """Manifests written flat into a sharded store (by a process that opened it before
    ``checkpoint-magic upgrade``): no hit sees them."""
    if not store.sharded:
        return []
    backend = store.backend
    return [
        layout.entry_in(ns_dir, key, sharded=False)
        for ns_dir in backend.list_folders(layout.ENTRIES)
        for key, _ in entry_keys(backend, ns_dir, sharded=False)
        if layout.shardable(key)  # a file named like a shard folder is no manifest
    ]


def _read_manifests(store: Store) -> Scan:
    """Every manifest read and checked now (never from the index, none kept), a local folder
    listed by name: each manifest's stat is the ``fstat`` of the file read."""
    return read_entries(store, usage=False, manifests=False, by_name=True)


def _stray_references(store: Store, stray: list[str]) -> set[str]:
    """The blobs stray manifests refer to (kept: ``fix`` moves the manifests, not frees them)."""
    referenced: set[str] = set()
    for name in stray:
        try:
            manifest, _, _ = parse_manifest(store.backend.read_bytes(name, MANIFEST_MAX_BYTES))
        except FileNotFoundError:
            continue
        if manifest is not None:
            referenced.update(blob_refs(manifest, {}))
    return referenced


def _stray_manifests(store: Store, stray: list[str], fix: bool) -> list[Problem]:
    """The ``stray`` manifests as leftovers; ``fix`` moves them into their shards."""
    backend = store.backend
    if fix and stray:
        try:
            upgrade_store(store)
        except OSError as exc:  # a link in the way, say: reported, never written through
            logger.warning("stray flat manifests not moved: %s", exc)
    detail = (
        "written flat by a process that opened the store before `checkpoint-magic upgrade`: "
        "no hit sees it; `verify --fix` or `checkpoint-magic upgrade` moves it into its shard"
    )
    return [
        Problem("stray flat manifest", name, detail, fixed=fix and backend.stat(name) is None)
        for name in stray
    ]


@no_gc_pauses()
def verify(
    store: Store,
    fix: bool = False,
    *,
    drop_unsigned: bool = False,
    grace: float = GRACE_SECONDS,
) -> VerifyReport:
    """Check every manifest and every blob; with ``fix``, remove what is damaged and the leftovers.

    Problems (damage): a manifest that does not parse or fails its checksum; with
    ``CHECKPOINT_MAGIC_SECRET`` set, an unsigned or wrongly signed manifest
    (``signature``); a blob that is missing, of the wrong size or whose bytes do not hash
    to its name, and the entries referring to it (``broken entry``). Garbage (space
    only): staging files left by a crashed process, blobs no manifest refers to (never one
    a commit in flight uses), usage records of removed entries; with ``grace``, only
    those older than that. Only files named as the store names them are ever removed.
    A manifest written flat into a sharded store (by a process that opened it before
    ``checkpoint-magic upgrade``) is a leftover too: ``fix`` moves it into its shard.

    ``fix`` never removes an entry only because its signature fails: a mistyped secret,
    or a secret set on a store written without one, would wipe it. Those stay (and
    ``ok`` stays false) until the secret is right, or ``drop_unsigned`` removes them.

    Parameters
    ----------
    store : Store
        The store.
    fix : bool, default False
        Remove damaged entries and blobs, and the garbage.
    drop_unsigned : bool, default False
        Also remove entries whose signature fails.
    grace : float, default 0
        Seconds within which garbage is left alone (a commit may still be using it).

    Returns
    -------
    VerifyReport
        The problems and garbage found (``fixed`` when removed).

    Raises
    ------
    StoreFormatError
        When the location is not a checkpoint store.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> record = store.put_value(bytes(100_000))
    >>> store.write_entry("m.f", "k1", {"outputs": {"return": record}})
    >>> digest = record["blobs"][0]["digest"]
    >>> store.backend.write(f"objects/{digest[:2]}/{digest}", b"flipped")
    True
    >>> [p.kind for p in verify(store).problems]
    ['corrupt blob', 'broken entry']
    >>> verify(store, fix=True).ok, verify(store).ok
    (True, True)
    """
    grace = parse_grace(grace)
    require_store(store, allow_empty=not (fix or drop_unsigned))
    report = VerifyReport()

    def found(kind: str, name: str, detail: str, remove: bool = fix) -> Problem:
        try:
            fixed = remove and store.backend.delete(name)
        except UnsafeStoreError:  # in a folder replaced by a link: nothing done through it
            fixed = False
        problem = Problem(kind, name, detail, fixed=fixed)
        report.problems.append(problem)
        return problem

    # Every manifest read and checked now: never from the index (nor kept once checked).
    scan = _read_manifests(store)
    report.entries = len(scan.entries) + len(scan.damaged)
    for path, why in scan.damaged:
        found("damaged manifest", path, why)
    dropped: set[tuple[str, str]] = set()

    def drop(entry: EntryInfo, problem: Problem) -> None:
        if problem.fixed:
            dropped.add((entry.ns_dir, entry.key))
            remove_state(store, entry)

    for entry, why in scan.unsigned:
        drop(entry, found("signature", entry.name, f"{entry.namespace}: {why}", drop_unsigned))
    users: dict[str, list[EntryInfo]] = defaultdict(list)
    for e in scan.entries:
        for d in e.blobs:
            users[d].append(e)
    bad: dict[str, str] = {}
    missing: list[Problem] = []
    for digest in sorted(users):
        path = layout.blob(digest)
        expected = users[digest][0].blobs[digest]
        try:
            size, actual = _hash_blob(store, path)
        except UnsafeStoreError as exc:  # a link where the blob should be: never followed
            bad[digest] = "unsafe"
            found("unsafe blob", path, f"not a file the store wrote ({exc.strerror})")
            continue
        except FileNotFoundError:
            bad[digest] = "missing"
            missing.append(
                found(
                    "missing blob",
                    path,
                    f"referred to by {len(users[digest])} entries",
                    remove=False,
                )
            )
            continue
        report.blobs += 1
        if size != expected:
            why = f"size {size}, expected {expected}"
        elif actual != digest:
            why = "content does not match its hash"
        else:
            continue
        bad[digest] = "corrupt"
        found("corrupt blob", path, why)
    for e in scan.entries if bad else ():
        broken = [d for d in e.blobs if d in bad]
        if broken and (e.ns_dir, e.key) not in dropped:
            more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
            drop(
                e,
                found(
                    "broken entry",
                    e.name,
                    f"{e.namespace}: refers to {bad[broken[0]]} blob {broken[0]}{more}",
                ),
            )
    for problem in missing:  # fixed by removing every entry that refers to the blob
        digest = problem.path.rsplit("/", 1)[-1]
        problem.fixed = all((e.ns_dir, e.key) in dropped for e in users[digest])

    now = time.time()
    # Without fix, what the manifests just read refer to: the digests of ``users``, and of the
    # stray flat manifests (fix moves them).
    stray = _stray_names(store)
    if fix:
        referenced = live_references(store, scan.entries, dropped)
    else:
        referenced = set(users) | _stray_references(store, stray)
    garbage = {
        named: st
        for relpath, st in blob_files(store).items()
        if (named := layout.digest_of(relpath)) is not None
        and named not in referenced
        and named not in bad
        and is_old(st, now, grace)
    }
    freed: set[str] = set()
    if fix and garbage:
        before = set(garbage)
        free_blobs(
            store, referenced | bad.keys(), now, grace, False, scanned=scan.entries, removed=dropped
        )
        freed = {d for d in before if store.backend.stat(layout.blob(d)) is None}
    for named, st in sorted(garbage.items()):
        report.garbage.append(
            Problem(
                "unreferenced blob", layout.blob(named), f"{st.size} bytes", fixed=named in freed
            )
        )
    for name, st in store.backend.list_files(layout.TMP):
        if removable_staging(name, st, now, grace):
            fixed = fix and store.backend.delete(f"{layout.TMP}/{name}")
            report.garbage.append(
                Problem("staging leftover", f"{layout.TMP}/{name}", f"{st.size} bytes", fixed=fixed)
            )
    report.garbage.extend(_stray_manifests(store, stray, fix))
    live = {(e.ns_dir, e.key) for e in scan.entries} - dropped
    stale = sweep_state(store, live, now, grace, dry_run=not fix)  # tmp/ was listed above
    if stale:
        detail = f"{stale} usage or miss records of entries that no longer exist"
        report.garbage.append(Problem("stale state", layout.STATE, detail, fixed=fix))
    if report.problems or report.garbage:
        logger.info(
            "verify %s: %d problems, %d leftovers",
            store.location,
            len(report.problems),
            len(report.garbage),
        )
    return report
