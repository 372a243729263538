"""Changing a store: garbage collection under budgets, clear, verify (and repair), pin.

This module owns what ``checkpoint-magic gc|clear|verify|pin|unpin`` (and the notebook's
``%checkpoint_store``) do to a store, as plain functions returning data (the command line
and the magics only print it). Budgets themselves belong to the store
(:mod:`checkpoint_magic.store.budget`, re-exported here: :func:`gc`, :func:`parse_size`...),
and so does the safe removal of garbage; integrity checks are
:mod:`checkpoint_magic.tools.integrity` (:func:`verify`, re-exported). Nothing here
unpickles a value.

**Security.** Inspecting a store is safe; *loading* from it is not. Stored values are
pickles, and unpickling runs code: loading results from a store someone else wrote,
without signed entries, is running their code. With ``CHECKPOINT_MAGIC_SECRET`` set,
every manifest carries an HMAC-SHA256 of its body, which names every blob by a
cryptographic digest, and unsigned or wrongly signed entries are refused before anything
is parsed; :func:`verify` reports them.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"namespace": "demo.f", "outputs": {"return": record}})
>>> report = gc(store, max_size=0)
>>> report.evicted[0].key, report.freed_blobs, du(store).objects_bytes
('a1b2', 1, 0)
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..store import layout
from ..store.budget import GRACE_SECONDS, GcReport, gc, parse_age, parse_grace, parse_size
from ..store.catalog import require_store, scan_entries
from ..store.core import Store
from ..store.sweep import free_blobs, live_references, remove_state
from ..store.walk import entry_keys
from .integrity import Problem, VerifyReport, verify
from .inventory import (
    DuReport,
    EntryInfo,
    NamespaceSummary,
    du,
    find_entry,
    list_entries,
    namespaces,
    resolve_namespace,
    stored_size,
    summarize,
    summarize_store,
)

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
    "summarize_store",
    "unpin",
    "verify",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- reports
@dataclass
class ClearReport:
    """What :func:`clear` removed: entries per namespace, then the blobs they alone used.

    Attributes
    ----------
    removed : dict of str to int
        Entries removed, by namespace.
    freed_blobs, freed_bytes : int
        Blobs removed because no remaining entry references them, and their bytes.
    kept_pinned : int
        Pinned entries kept (``force`` removes them).
    pending_blobs, pending_bytes : int
        Unreferenced blobs (and their bytes) modified within the grace period, left to a
        later gc.
    """

    removed: dict[str, int] = field(default_factory=dict)
    freed_blobs: int = 0
    freed_bytes: int = 0
    kept_pinned: int = 0
    pending_blobs: int = 0
    pending_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description.

        Returns
        -------
        dict of str to object
            The fields by name.
        """
        return asdict(self)


# ---------------------------------------------------------------------------------------- pins
def pin(store: Store, key_prefix: str) -> EntryInfo:
    """Pin the entry ``key_prefix`` names, so that :func:`gc` never evicts it; return it.

    Parameters
    ----------
    store : Store
        The store.
    key_prefix : str
        The entry's key or a unique prefix of it (see :func:`~.inventory.find_entry`).

    Returns
    -------
    EntryInfo
        The entry, now pinned.

    Raises
    ------
    InvalidArgumentError
        When no entry, or several, match ``key_prefix``.

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
    """Unpin the entry ``key_prefix`` names; return it.

    Parameters
    ----------
    store : Store
        The store.
    key_prefix : str
        The entry's key or a unique prefix of it (see :func:`~.inventory.find_entry`).

    Returns
    -------
    EntryInfo
        The entry, no longer pinned.

    Raises
    ------
    InvalidArgumentError
        When no entry, or several, match ``key_prefix``.
    """
    require_store(store)
    entry = find_entry(store, key_prefix)
    store.set_pinned(entry.namespace, entry.key, False)
    entry.pinned = False
    return entry


def clear(
    store: Store,
    namespace: str | None = None,
    *,
    force: bool = False,
    grace: float = GRACE_SECONDS,
) -> ClearReport:
    """Remove the entries of ``namespace`` (every entry if None), their state, and their own blobs.

    Pinned entries are kept unless ``force``. The removed entries' usage and pin records
    go with them, and a namespace left without entries loses its last-miss and
    latest-output records. Blobs no remaining entry refers to are freed at once (never one
    a commit in flight uses); with ``grace``, those touched within that many seconds are
    left to a later :func:`gc` (``pending_blobs``).

    Parameters
    ----------
    store : Store
        The store.
    namespace : str, optional
        The namespace to clear; None clears every entry (and removes damaged manifests).
    force : bool, default False
        Remove pinned entries too.
    grace : float, default 0
        Seconds within which an unreferenced blob is left alone.

    Returns
    -------
    ClearReport
        What was removed, kept and left pending.

    Raises
    ------
    StoreFormatError
        When the location is not a checkpoint store.

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
    scan = scan_entries(store, None if namespace is None else layout.namespace_dir(namespace))
    report = ClearReport()
    targets = [e for e in scan.entries if namespace is None or e.namespace == namespace]
    for e in targets:
        if e.pinned and not force:
            report.kept_pinned += 1
        elif store.backend.delete(e.name):
            report.removed[e.namespace] = report.removed.get(e.namespace, 0) + 1
            remove_state(store, e)
    if namespace is None:
        for name, _ in scan.damaged:
            store.backend.delete(name)
    dirs = {e.ns_dir for e in targets} | (
        {layout.namespace_dir(namespace)} if namespace is not None else set()
    )
    for ns_dir in dirs:
        if not entry_keys(store.backend, ns_dir, sharded=store.sharded):
            for name in layout.NAMESPACE_RECORDS:
                store.backend.delete(f"{layout.state_folder(ns_dir)}/{name}")
    referenced = live_references(store, [], set())
    swept = free_blobs(store, referenced, time.time(), grace, False)
    report.freed_blobs, report.freed_bytes, report.pending_blobs, report.pending_bytes = swept
    logger.info(
        "cleared %d entries and %d blobs from %s (%d pinned entries kept)",
        sum(report.removed.values()),
        report.freed_blobs,
        store.location,
        report.kept_pinned,
    )
    return report


def confirm_clear_all(store: Store) -> bool:
    """Ask before ``clear`` without a name wipes every entry; refuse when nobody can answer.

    Parameters
    ----------
    store : Store
        The store about to be cleared.

    Returns
    -------
    bool
        ``True`` when there is nothing to remove or the user answered yes on a terminal.

    Raises
    ------
    InvalidArgumentError
        Standard input is not a terminal: pass ``--yes`` (``yes=True``) to confirm.
    """
    from ..exceptions import InvalidArgumentError
    from .inventory import list_entries

    count = len(list_entries(store))  # also refuses a directory that is not a store
    if not count:
        return True
    what = f"remove all {count} entries of {store.location} (every function, block and cell)"
    if count == 1:
        what = f"remove the only entry of {store.location}"
    if not sys.stdin or not sys.stdin.isatty():
        raise InvalidArgumentError(
            f"`clear` without NAME would {what}; pass --yes to confirm, or name what to clear"
        )
    return input(f"{what}? [y/N] ").strip().lower() in ("y", "yes")
