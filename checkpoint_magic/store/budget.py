"""Budgets of a store: evict least recently used entries to meet size, age and version limits.

This module owns :func:`gc` (``checkpoint-magic gc``, and the automatic one after every
commit when ``CHECKPOINT_MAGIC_MAX_SIZE`` is set: :func:`enforce_budget`) and the parsing
of sizes, ages and grace periods. Entries are evicted least recently used first (by the
use the store records on every hit), never a pinned one; then blobs no manifest refers to
are freed at once (:func:`~checkpoint_magic.store.sweep.free_blobs` never frees a blob a
commit in flight uses), so a blob shared by several entries survives while any remains.
Nothing is changed in a location without a valid ``FORMAT`` record, and only names the
store writes are ever removed.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"outputs": {"return": record}})
>>> report = gc(store, max_size=0)
>>> report.evicted[0].key, report.freed_blobs, stored_size(store)
('a1b2', 1, 0)
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field, fields
from typing import Any

from ..exceptions import InvalidArgumentError
from . import layout
from .catalog import EntryInfo, blob_files, require_store, scan_entries, stored_size
from .core import Store
from .sweep import free_blobs, live_references, remove_manifest, remove_state, sweep_tmp_and_state

__all__ = [
    "GRACE_SECONDS",
    "GcReport",
    "enforce_budget",
    "gc",
    "parse_age",
    "parse_grace",
    "parse_size",
]

logger = logging.getLogger(__name__)

#: Default grace period (seconds) of gc, clear and ``verify --fix``: garbage is freed at once.
GRACE_SECONDS = 0.0


# ---------------------------------------------------------------------------------------- parsing
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)


def parse_size(value: str | int | float) -> int:
    """Bytes from ``10GB``, ``500MiB``, ``1.5G`` or a number of bytes.

    ``KB/MB/GB/TB`` are powers of 1000; ``KiB/MiB/GiB/TiB`` and the bare letters
    ``K/M/G/T`` (as in ``du -h``) are powers of 1024.

    Parameters
    ----------
    value : str, int or float
        A size with an optional unit, or a number of bytes.

    Returns
    -------
    int
        Bytes.

    Raises
    ------
    InvalidArgumentError
        ``value`` is negative, NaN, a bool, or not a size.

    Examples
    --------
    >>> parse_size("10GB"), parse_size("500MiB"), parse_size("1.5G"), parse_size(4096)
    (10000000000, 524288000, 1610612736, 4096)
    >>> parse_size("ten gigs")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid size 'ten gigs': use a number ...
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

    Parameters
    ----------
    value : str, int or float
        An age with a unit, or a number of seconds.

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    InvalidArgumentError
        ``value`` is negative, NaN, a bool, or a string without a unit.

    Examples
    --------
    >>> parse_age("30d"), parse_age("12h"), parse_age("90m"), parse_age(5)
    (2592000.0, 43200.0, 5400.0, 5.0)
    >>> parse_age("30")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid age '30': give a unit, e.g. 30d ...
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

    Parameters
    ----------
    value : str or float
        A number of seconds.

    Returns
    -------
    float
        The number of seconds.

    Raises
    ------
    InvalidArgumentError
        ``value`` is not a finite number >= 0.

    Examples
    --------
    >>> parse_grace("600"), parse_grace(0)
    (600.0, 0.0)
    >>> parse_grace("-1")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid grace period '-1': give a ...
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


@dataclass
class GcReport:
    """What :func:`gc` removed (or, with ``dry_run``, would remove).

    Attributes
    ----------
    dry_run : bool
        Nothing was removed: the report says what would be.
    full_scan : bool
        False when only ``max_size`` was given and the store was within it: nothing was
        scanned, and the sizes are the quick :func:`stored_size`.
    size_before, size_after : int
        Bytes of ``objects/`` and ``entries/`` before and after.
    evicted : list of EntryInfo
        The entries evicted, least recently used first.
    freed_blobs : int
        Unreferenced blobs removed.
    freed_bytes : int
        Bytes freed: the evicted manifests and the removed blobs.
    removed_tmp : int
        Staging leftovers removed from ``tmp/``.
    removed_state : int
        State records removed with the evicted entries or found stale.
    pending_blobs, pending_bytes : int
        Unreferenced blobs (and their bytes) modified within the grace period, left to a
        later gc.
    over_budget : bool
        Pinned entries alone exceed ``max_size``.
    """

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
        """A JSON-able description.

        Returns
        -------
        dict
            Every field; ``evicted`` as a list of ``{namespace, key, size}``.
        """
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "evicted"}
        data["evicted"] = [
            {"namespace": e.namespace, "key": e.key, "size": e.size} for e in self.evicted
        ]
        return data


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
        The store to trim.
    max_size : str or int, optional
        Keep ``objects/`` + ``entries/`` within this size (``"10GB"``, ``"500MiB"``, bytes).
    max_age : str or float, optional
        Evict entries not used for this long (``"30d"``, ``"12h"``, seconds).
    keep_versions : int, optional
        Keep only the entries of the N most recently used code versions of each namespace.
    dry_run : bool
        Report what would be removed; remove nothing.
    grace : float
        Leave unreferenced blobs and records modified within this many seconds
        (``pending``: a later gc frees them). Default ``0``: space is freed at once, and
        commits in flight are safe whatever the grace (their leases protect their blobs).
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

    Raises
    ------
    InvalidArgumentError
        When a budget or the grace period cannot be parsed (``keep_versions`` must be a
        whole number >= 1).
    StoreFormatError
        When ``store`` is not a checkpoint store (or of a newer format).

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> for i, key in enumerate(["old", "new"]):
    ...     rec = store.put_value(bytes([i]) * 50_000)
    ...     manifest = {"namespace": "m.f", "created": float(i), "outputs": {"return": rec}}
    ...     store.write_entry("m.f", key, manifest)
    >>> report = gc(store, max_size="60KB", dry_run=True)
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
    blobs = {d: st for rel, st in files.items() if (d := layout.digest_of(rel)) is not None}
    report = GcReport(
        dry_run=dry_run, size_before=sum(st.size for st in files.values()) + scan.entry_bytes
    )
    refcount: dict[str, int] = defaultdict(int)
    for e in scan.entries:
        for d in e.blobs:
            refcount[d] += 1
    # Unreferenced blobs do not count: the sweep frees them, now or once the grace period is over.
    projected = report.size_before - sum(
        st.size for d, st in blobs.items() if refcount.get(d, 0) == 0
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
                projected -= st.size

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
        removed = {k for k, e in evicted.items() if remove_manifest(store, e)}
        for k in removed:
            report.removed_state += remove_state(store, evicted[k])
    report.evicted = [e for k, e in evicted.items() if k in removed]
    report.freed_bytes = sum(e.file_size for e in report.evicted)
    if dry_run:
        referenced = {d for e in scan.entries if (e.ns_dir, e.key) not in removed for d in e.blobs}
    else:
        referenced = live_references(store, scan.entries, removed)
    swept = free_blobs(
        store, referenced, now, grace, dry_run, scanned=scan.entries, removed=removed
    )
    report.freed_blobs, freed, report.pending_blobs, report.pending_bytes = swept
    report.freed_bytes += freed
    live = {(e.ns_dir, e.key) for e in scan.entries} - removed
    report.removed_tmp, state = sweep_tmp_and_state(store, live, now, grace, dry_run)
    report.removed_state += state
    report.size_after = report.size_before - report.freed_bytes
    if report.evicted or report.freed_blobs:
        logger.info(
            "gc %s: %s %d entries and %d blobs (%d bytes)",
            store.location,
            "would evict" if dry_run else "evicted",
            len(report.evicted),
            report.freed_blobs,
            report.freed_bytes,
        )
    if report.over_budget and (store.location, limit) not in _warned_over_budget:
        _warned_over_budget.add((store.location, limit))
        logger.warning(
            "gc %s: pinned entries alone exceed the size budget of %d bytes",
            store.location,
            limit,
        )
    return report


_warned_over_budget: set[tuple[str, int | None]] = set()


def enforce_budget(store: Store, max_size: str | int) -> GcReport:
    """Keep the store within ``max_size`` after a commit (``CHECKPOINT_MAGIC_MAX_SIZE``).

    Costs a few ``stat`` calls while the store is within budget (see :func:`stored_size`).

    Parameters
    ----------
    store : Store
        The store just written to.
    max_size : str or int
        The size budget, as :func:`parse_size` reads it.

    Returns
    -------
    GcReport
        What :func:`gc` did.
    """
    return gc(store, max_size=max_size)
