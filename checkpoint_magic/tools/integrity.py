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

import contextlib
import logging
import os
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from ..store.core import Store
from .inventory import (
    EntryInfo,
    blob_files,
    digest_of,
    is_staging,
    list_files,
    require_store,
    scan_entries,
)
from .maintenance import GRACE_SECONDS, parse_grace
from .sweep import (
    is_old,
    live_references,
    remove_state,
    still_old,
    sweep_tmp_and_state,
    unlink_quietly,
)

__all__ = ["Problem", "VerifyReport", "verify"]

logger = logging.getLogger(__name__)

_CHUNK = 8 << 20


@dataclass
class Problem:
    """One finding of :func:`verify`; ``path`` is relative to the store root."""

    kind: str
    path: str
    detail: str
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)


@dataclass
class VerifyReport:
    """Damage (``problems``) and leftovers (``garbage``) found by :func:`verify`."""

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
        """A JSON-able description."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "blobs": self.blobs,
            "unsigned": self.unsigned,
            "problems": [p.to_dict() for p in self.problems],
            "garbage": [p.to_dict() for p in self.garbage],
        }


def _hash_file(path: Path) -> tuple[int, str]:
    """``(size, xxh3-128 hex)`` of a file, read in chunks."""
    hasher = xxhash.xxh3_128()
    size = 0
    with open(path, "rb", buffering=0) as f:
        view = memoryview(bytearray(min(_CHUNK, max(os.fstat(f.fileno()).st_size, 1))))
        while n := f.readinto(view):
            hasher.update(view[:n])
            size += n
    return size, hasher.hexdigest()


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
    only): staging files left by a crash, blobs no manifest refers to, usage records of
    removed entries, all older than ``grace`` seconds (younger ones may belong to a
    commit in progress). Only files named as the store names them are ever removed.

    ``fix`` never removes an entry only because its signature fails: a mistyped secret,
    or a secret set on a store written without one, would wipe it. Those stay (and
    ``ok`` stays false) until the secret is right, or ``drop_unsigned`` removes them.
    Changing anything requires a valid ``FORMAT`` file.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> record = store.put_value(bytes(100_000))
    >>> store.write_entry("m.f", "k1", {"outputs": {"return": record}})
    >>> store.blob_path(record["blobs"][0]["digest"]).write_bytes(b"flipped")
    7
    >>> [p.kind for p in verify(store).problems]
    ['corrupt blob', 'broken entry']
    >>> verify(store, fix=True).ok, verify(store).ok
    (True, True)
    """
    grace = parse_grace(grace)
    if fix or drop_unsigned:
        require_store(store)
    else:
        store.check_format()
    report = VerifyReport()

    def rel(path: Path | str | None) -> str:
        return os.path.relpath(path, store.root) if path is not None else ""

    def found(kind: str, path: Path | str | None, detail: str, remove: bool = fix) -> Problem:
        problem = Problem(
            kind, rel(path), detail, fixed=remove and path is not None and unlink_quietly(path)
        )
        report.problems.append(problem)
        return problem

    scan = scan_entries(store)
    report.entries = len(scan.entries) + len(scan.damaged)
    for path, why in scan.damaged:
        found("damaged manifest", path, why)
    dropped: set[tuple[str, str]] = set()

    def drop(entry: EntryInfo, problem: Problem) -> None:
        if problem.fixed:
            dropped.add((entry.ns_dir, entry.key))
            remove_state(store, entry)

    for entry, why in scan.unsigned:
        drop(entry, found("signature", entry.path, f"{entry.namespace}: {why}", drop_unsigned))
    users: dict[str, list[EntryInfo]] = defaultdict(list)
    for e in scan.entries:
        for d in e.blobs:
            users[d].append(e)
    bad: dict[str, str] = {}
    missing: list[Problem] = []
    for digest in sorted(users):
        path = store.blob_path(digest)
        expected = users[digest][0].blobs[digest]
        try:
            size, actual = _hash_file(path)
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
    for e in scan.entries:
        broken = [d for d in e.blobs if d in bad]
        if broken and (e.ns_dir, e.key) not in dropped:
            more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
            drop(
                e,
                found(
                    "broken entry",
                    e.path,
                    f"{e.namespace}: refers to {bad[broken[0]]} blob {broken[0]}{more}",
                ),
            )
    for problem in missing:  # fixed by removing every entry that refers to the blob
        problem.fixed = all((e.ns_dir, e.key) in dropped for e in users[Path(problem.path).name])

    now = time.time()
    if fix:
        referenced = live_references(store, scan.entries, dropped)
    else:
        referenced = {d for e in scan.entries for d in e.blobs}
    for relpath, st in blob_files(store).items():
        named = digest_of(relpath)
        if named is None or named in referenced or named in bad or not is_old(st, now, grace):
            continue
        path = store.objects / relpath
        fixed = fix and still_old(path, grace) and unlink_quietly(path)
        report.garbage.append(
            Problem("unreferenced blob", rel(path), f"{st.st_size} bytes", fixed=fixed)
        )
    for f in list_files(store.tmp):
        with contextlib.suppress(FileNotFoundError):
            st = f.stat()
            if is_staging(f.name) and is_old(st, now, grace):
                fixed = fix and unlink_quietly(f.path)
                report.garbage.append(
                    Problem("staging leftover", rel(f.path), f"{st.st_size} bytes", fixed=fixed)
                )
    live = {(e.ns_dir, e.key) for e in scan.entries} - dropped
    _, stale = sweep_tmp_and_state(store, live, now, grace, dry_run=not fix)
    if stale:
        detail = f"{stale} usage or miss records of entries that no longer exist"
        report.garbage.append(Problem("stale state", rel(store.state), detail, fixed=fix))
    if report.problems or report.garbage:
        logger.info(
            "verify %s: %d problems, %d leftovers",
            store.root,
            len(report.problems),
            len(report.garbage),
        )
    return report
