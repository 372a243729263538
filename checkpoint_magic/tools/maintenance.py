"""Changing a store: garbage collection under budgets, clear, verify (and repair), pin.

This module owns what ``checkpoint-magic gc|clear|verify|pin|unpin`` (and the notebook's
``%checkpoint_store``) do to a store, and re-exports the read-only model of
:mod:`checkpoint_magic.tools.inventory` (:func:`list_entries`, :func:`du`...). Nothing here
unpickles a value: manifests are JSON and blobs are only hashed.

**Security.** Inspecting a store is safe; *loading* from it is not. Stored values are
pickles, and unpickling runs code: loading results from a store someone else wrote,
without signed entries, is running their code. With ``CHECKPOINT_MAGIC_SECRET`` set,
every manifest carries an HMAC-SHA256 of its body (which names every blob by its hash)
and unsigned or wrongly signed entries are refused before anything is unpickled;
:func:`verify` reports them.

**Budgets** (:func:`gc`): entries are evicted least recently used first (by the use the
store records on every hit, never by file access time), never a pinned one; then blobs
no manifest refers to are freed, so a blob shared by several entries survives while any
of them remains. A staging file, state file or unreferenced blob modified within the
last ``grace`` seconds (10 minutes by default) is never removed, not even a blob whose
entry was just evicted or cleared: a concurrent commit writes its blobs before its
manifest, and ``put_blob`` refreshes the mtime of a blob it reuses. Only ``grace=0``,
passed explicitly, removes them at once.

**Only the store's own files.** Nothing is changed in a directory without a valid
``FORMAT`` file, and only names the store writes are ever removed: ``objects/ab/<32 hex
digest starting with ab>``, ``tmp/<pid>-<32 hex>``, and under ``state/<namespace>/``
``<key>.hits``, ``<key>.pin``, ``last-miss.json``, ``latest-output.json`` and their
writers' temporary names. Anything else found there is left alone.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"namespace": "demo.f", "outputs": {"return": record}})
>>> report = gc(store, max_size=0)
>>> report.evicted[0].key, report.pending_blobs  # its blob is left for the grace period
('a1b2', 1)
>>> gc(store, grace=0).freed_blobs, du(store).objects_bytes
(1, 0)
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

from ..exceptions import InvalidArgumentError
from ..store.core import Store, namespace_dir
from .inventory import (
    NAMESPACE_RECORDS,
    DuReport,
    EntryInfo,
    NamespaceSummary,
    blob_files,
    digest_of,
    du,
    find_entry,
    list_entries,
    list_files,
    namespaces,
    require_store,
    resolve_namespace,
    scan_entries,
    state_file,
    stored_size,
    summarize,
)
from .sweep import (
    live_references,
    remove_manifest,
    remove_state,
    sweep_blobs,
    sweep_tmp_and_state,
    unlink_quietly,
)

if TYPE_CHECKING:  # pragma: no cover - imported lazily below (integrity builds on this module)
    from .integrity import Problem, VerifyReport, verify

__all__ = [
    "GRACE_SECONDS",
    "ClearReport",
    "DuReport",
    "EntryInfo",
    "GcReport",
    "NamespaceSummary",
    "Problem",
    "VerifyReport",
    "clear",
    "du",
    "find_entry",
    "gc",
    "list_entries",
    "namespaces",
    "parse_age",
    "parse_grace",
    "parse_size",
    "pin",
    "resolve_namespace",
    "stored_size",
    "summarize",
    "unpin",
    "verify",
]

logger = logging.getLogger(__name__)

#: Files modified more recently than this (seconds) are never removed: a commit may be in progress.
GRACE_SECONDS = 600.0


# ---------------------------------------------------------------------------------------- parsing
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)


def parse_size(value: str | int | float) -> int:
    """Bytes from ``10GB``, ``500MiB``, ``1.5G`` or a number of bytes.

    ``KB/MB/GB/TB`` are powers of 1000; ``KiB/MiB/GiB/TiB`` and the bare letters
    ``K/M/G/T`` (as in ``du -h``) are powers of 1024.

    Examples
    --------
    >>> parse_size("10GB"), parse_size("500MiB"), parse_size("1.5G"), parse_size(4096)
    (10000000000, 524288000, 1610612736, 4096)
    >>> parse_size("ten gigs")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid size 'ten gigs': use a number of bytes or a number with a unit, e.g. 500MB, 10GB, 1.5G, 2GiB
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"invalid size {value!r}: use a number of bytes or e.g. '10GB'")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise InvalidArgumentError(f"invalid size {value!r}: a size cannot be negative")
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise InvalidArgumentError(
            f"invalid size {value!r}: use a number of bytes or a number with a unit, e.g. 500MB, 10GB, 1.5G, 2GiB"
        )
    number, prefix, binary, byte = match.groups()
    power = "kmgtp".find(prefix.lower()) + 1 if prefix else 0
    if binary and not prefix:
        raise InvalidArgumentError(
            f"invalid size {value!r}: 'i' needs a prefix, as in KiB, MiB, GiB"
        )
    base = 1000 if (prefix and byte and not binary) else 1024
    return int(float(number) * base**power)


def parse_age(value: str | int | float) -> float:
    """Seconds from ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (or a number of seconds).

    Examples
    --------
    >>> parse_age("30d"), parse_age("12h"), parse_age("90m"), parse_age(5)
    (2592000.0, 43200.0, 5400.0, 5.0)
    >>> parse_age("30")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid age '30': give a unit, e.g. 30d (days), 12h, 90m, 45s or 2w
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"invalid age {value!r}: use e.g. '30d'")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise InvalidArgumentError(f"invalid age {value!r}: an age cannot be negative")
        return float(value)
    match = _AGE_RE.match(str(value))
    if not match:
        raise InvalidArgumentError(
            f"invalid age {value!r}: give a unit, e.g. 30d (days), 12h, 90m, 45s or 2w"
        )
    return float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]


def parse_grace(value: str | float) -> float:
    """Seconds of a grace period (``600``, ``"0"``): a finite number >= 0.

    Examples
    --------
    >>> parse_grace("600"), parse_grace(0)
    (600.0, 0.0)
    >>> parse_grace("-1")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid grace period '-1': give a finite number of seconds >= 0 (0 removes garbage at once)
    """
    try:
        seconds = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise InvalidArgumentError(
            f"invalid grace period {value!r}: give a finite number of seconds >= 0 "
            "(0 removes garbage at once)"
        )
    return seconds


# ---------------------------------------------------------------------------------------- reports
@dataclass
class GcReport:
    """What :func:`gc` removed (or, with ``dry_run``, would remove)."""

    dry_run: bool = False
    full_scan: bool = True
    size_before: int = 0
    size_after: int = 0
    evicted: list[EntryInfo] = field(default_factory=list)
    freed_blobs: int = 0
    freed_bytes: int = 0
    removed_tmp: int = 0
    removed_state: int = 0
    pending_blobs: int = 0
    pending_bytes: int = 0
    over_budget: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "evicted"}
        data["evicted"] = [
            {"namespace": e.namespace, "key": e.key, "size": e.size} for e in self.evicted
        ]
        return data


@dataclass
class ClearReport:
    """What :func:`clear` removed: entries per namespace, then the blobs they alone used.

    ``kept_pinned`` pinned entries were kept (``force`` removes them); ``pending_blobs``
    unreferenced blobs were modified within the grace period and are left to a later gc.
    """

    removed: dict[str, int] = field(default_factory=dict)
    freed_blobs: int = 0
    freed_bytes: int = 0
    kept_pinned: int = 0
    pending_blobs: int = 0
    pending_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)


# ---------------------------------------------------------------------------------------- pins
def pin(store: Store, key_prefix: str) -> EntryInfo:
    """Pin the entry ``key_prefix`` names, so that :func:`gc` never evicts it; return it.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "abc123", {"namespace": "m.f"})
    >>> pin(store, "abc").pinned, unpin(store, "abc").pinned
    (True, False)
    """
    require_store(store)
    entry = find_entry(store, key_prefix)
    store.set_pinned(entry.namespace, entry.key, True)
    entry.pinned = True
    return entry


def unpin(store: Store, key_prefix: str) -> EntryInfo:
    """Unpin the entry ``key_prefix`` names; return it."""
    require_store(store)
    entry = find_entry(store, key_prefix)
    store.set_pinned(entry.namespace, entry.key, False)
    entry.pinned = False
    return entry


def gc(
    store: Store,
    max_size: str | int | None = None,
    max_age: str | float | None = None,
    keep_versions: int | None = None,
    dry_run: bool = False,
    *,
    grace: float = GRACE_SECONDS,
    full: bool = False,
) -> GcReport:
    """Evict entries to meet the budgets, least recently used first; then free unreferenced blobs.

    Parameters
    ----------
    store : Store
    max_size : str or int, optional
        Keep ``objects/`` + ``entries/`` within this size (``"10GB"``, ``"500MiB"``, bytes).
    max_age : str or float, optional
        Evict entries not used for this long (``"30d"``, ``"12h"``, seconds).
    keep_versions : int, optional
        Keep only the entries of the N most recently used code versions of each namespace.
    dry_run : bool
        Report what would be removed; remove nothing.
    grace : float
        Never remove a staging file, state file or unreferenced blob modified within this
        many seconds (a concurrent commit writes its blobs before its manifest), even the
        blobs of the entries evicted now: those are ``pending`` and a later gc frees them.
        ``0`` removes them at once.
    full : bool
        Scan and sweep even when ``max_size`` is the only budget and the store is within
        it. Without it that case costs a few ``stat`` calls (:func:`stored_size`): this is
        what keeps the automatic gc after every commit (``CHECKPOINT_MAGIC_MAX_SIZE``) cheap.

    Returns
    -------
    GcReport
        Budgets count the entries kept: unreferenced blobs (``pending`` ones included)
        are garbage. Pinned entries are never evicted; if they alone exceed
        ``max_size``, ``over_budget`` is set.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> for i, key in enumerate(["old", "new"]):
    ...     rec = store.put_value(bytes([i]) * 50_000)
    ...     store.write_entry("m.f", key, {"namespace": "m.f", "created": float(i), "outputs": {"return": rec}})
    >>> report = gc(store, max_size="60KB", dry_run=True, grace=0)
    >>> [e.key for e in report.evicted], report.size_after <= 60_000
    (['old'], True)
    """
    limit = parse_size(max_size) if max_size is not None else None
    age = parse_age(max_age) if max_age is not None else None
    if keep_versions is not None and (
        isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1
    ):
        raise InvalidArgumentError(
            f"keep_versions must be a whole number >= 1, not {keep_versions!r}"
        )
    grace = parse_grace(grace)
    require_store(store)
    if not full and limit is not None and age is None and keep_versions is None:
        current = stored_size(store)
        if current <= limit:
            return GcReport(
                dry_run=dry_run, full_scan=False, size_before=current, size_after=current
            )
    now = time.time()
    scan = scan_entries(store)
    files = blob_files(store)
    blobs = {d: st for rel, st in files.items() if (d := digest_of(rel)) is not None}
    report = GcReport(
        dry_run=dry_run, size_before=sum(st.st_size for st in files.values()) + scan.entry_bytes
    )
    refcount: dict[str, int] = defaultdict(int)
    for e in scan.entries:
        for d in e.blobs:
            refcount[d] += 1
    # Unreferenced blobs do not count: the sweep frees them, now or once the grace period is over.
    projected = report.size_before - sum(
        st.st_size for d, st in blobs.items() if refcount.get(d, 0) == 0
    )
    evicted: dict[tuple[str, str], EntryInfo] = {}

    def evict(entry: EntryInfo) -> None:
        nonlocal projected
        if (entry.ns_dir, entry.key) in evicted:
            return
        evicted[(entry.ns_dir, entry.key)] = entry
        projected -= entry.file_size
        for d in entry.blobs:
            refcount[d] -= 1
            st = blobs.get(d)
            if refcount[d] == 0 and st is not None:
                projected -= st.st_size

    candidates = sorted(
        (e for e in scan.entries if not e.pinned), key=lambda e: (e.last_used, e.created)
    )
    if age is not None:
        for e in candidates:
            if e.last_used < now - age:
                evict(e)
    if keep_versions is not None:
        recency: dict[str, dict[str, float]] = defaultdict(dict)
        for e in scan.entries:
            versions = recency[e.namespace]
            versions[e.code] = max(versions.get(e.code, 0.0), e.last_used)
        kept = {
            ns: set(sorted(v, key=v.__getitem__, reverse=True)[:keep_versions])
            for ns, v in recency.items()
        }
        for e in candidates:
            if e.code not in kept[e.namespace]:
                evict(e)
    if limit is not None:
        for e in candidates:
            if projected <= limit:
                break
            evict(e)
        report.over_budget = projected > limit
    removed = set(evicted)
    if not dry_run:
        removed = {k for k, e in evicted.items() if remove_manifest(e)}
        for k in removed:
            report.removed_state += remove_state(store, evicted[k])
    report.evicted = [e for k, e in evicted.items() if k in removed]
    report.freed_bytes = sum(e.file_size for e in report.evicted)
    if dry_run:
        referenced = {d for e in scan.entries if (e.ns_dir, e.key) not in removed for d in e.blobs}
    else:
        referenced = live_references(store, scan.entries, removed)
    swept = sweep_blobs(store, referenced, now, grace, dry_run)
    report.freed_blobs, freed, report.pending_blobs, report.pending_bytes = swept
    report.freed_bytes += freed
    live = {(e.ns_dir, e.key) for e in scan.entries} - removed
    report.removed_tmp, state = sweep_tmp_and_state(store, live, now, grace, dry_run)
    report.removed_state += state
    report.size_after = report.size_before - report.freed_bytes
    if report.evicted or report.freed_blobs:
        logger.info(
            "gc %s: %s %d entries and %d blobs (%d bytes)",
            store.root,
            "would evict" if dry_run else "evicted",
            len(report.evicted),
            report.freed_blobs,
            report.freed_bytes,
        )
    if report.over_budget and (str(store.root), limit) not in _warned_over_budget:
        _warned_over_budget.add((str(store.root), limit))
        logger.warning(
            "gc %s: pinned entries alone exceed the size budget of %d bytes",
            store.root,
            limit,
        )
    return report


_warned_over_budget: set[tuple[str, int | None]] = set()


def clear(
    store: Store,
    namespace: str | None = None,
    *,
    force: bool = False,
    grace: float = GRACE_SECONDS,
) -> ClearReport:
    """Remove the entries of ``namespace`` (every entry if ``None``), their state, and the blobs only they used.

    Pinned entries are kept unless ``force``. The removed entries' usage and pin records
    go with them, and a namespace left without entries loses its last-miss and
    latest-output records. Blobs no remaining entry refers to are freed if untouched for
    ``grace`` seconds (a concurrent commit may be reusing them); younger ones are left to
    a later :func:`gc` (``pending_blobs``). ``grace=0`` frees them at once.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "k1", {"namespace": "m.f"})
    >>> store.write_entry("m.f", "k2", {"namespace": "m.f"})
    >>> store.set_pinned("m.f", "k2")
    >>> report = clear(store, "m.f")
    >>> report.removed, report.kept_pinned
    ({'m.f': 1}, 1)
    >>> clear(store, "m.f", force=True).removed
    {'m.f': 1}
    """
    grace = parse_grace(grace)
    require_store(store)
    scan = scan_entries(store, None if namespace is None else namespace_dir(namespace))
    report = ClearReport()
    targets = [e for e in scan.entries if namespace is None or e.namespace == namespace]
    for e in targets:
        if e.pinned and not force:
            report.kept_pinned += 1
        elif e.path is not None and unlink_quietly(e.path):
            report.removed[e.namespace] = report.removed.get(e.namespace, 0) + 1
            remove_state(store, e)
    if namespace is None:
        for path, _ in scan.damaged:
            unlink_quietly(path)
    dirs = {e.ns_dir for e in targets} | (
        {namespace_dir(namespace)} if namespace is not None else set()
    )
    for ns_dir in dirs:
        if not any(not f.name.startswith(".") for f in list_files(store.entries / ns_dir)):
            for name in NAMESPACE_RECORDS:
                unlink_quietly(state_file(store, ns_dir, name))
    referenced = live_references(store, [], set())
    swept = sweep_blobs(store, referenced, time.time(), grace, False)
    report.freed_blobs, report.freed_bytes, report.pending_blobs, report.pending_bytes = swept
    logger.info(
        "cleared %d entries and %d blobs from %s (%d pinned entries kept)",
        sum(report.removed.values()),
        report.freed_blobs,
        store.root,
        report.kept_pinned,
    )
    return report


_LAZY = {"Problem", "VerifyReport", "verify"}


def __getattr__(name: str) -> Any:
    # verify lives in checkpoint_magic.tools.integrity (which builds on the helpers above).
    if name in _LAZY:
        from . import integrity

        return getattr(integrity, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
