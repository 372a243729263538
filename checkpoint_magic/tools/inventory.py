"""What is in a store, for people: entries grouped by name, sizes, key lookup.

This module owns the read-only views the commands share (:func:`list_entries`,
:func:`summarize`, :func:`summarize_store`, :func:`du`, :func:`find_entry`,
:func:`resolve_namespace`), built on the store's catalog
(:mod:`checkpoint_magic.store.catalog`) and its entry index (:mod:`~checkpoint_magic.store.index`,
refreshed from the manifests before each use): manifests are parsed without removing
damaged ones (``verify`` reports them) and nothing is unpickled, so inspecting a store
someone else wrote is safe. Changing a store is :mod:`checkpoint_magic.tools.maintenance`.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"namespace": "demo.f", "outputs": {"return": record}})
>>> [(e.namespace, e.key, e.size > 100_000) for e in list_entries(store)]
[('demo.f', 'a1b2', True)]
>>> du(store).objects_bytes == list_entries(store)[0].size
True
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from ..exceptions import InvalidArgumentError
from ..store import layout
from ..store.catalog import (
    EntryInfo,
    blob_files,
    manifest_refs,
    require_store,
    scan_entries,
    stored_size,
    with_index,
)
from ..store.core import Store
from ..store.index import EntryIndex
from ..store.usage import flush_usage
from ..store.walk import state_files

__all__ = [
    "DuReport",
    "EntryInfo",
    "NamespaceSummary",
    "du",
    "find_entry",
    "list_entries",
    "namespaces",
    "resolve_namespace",
    "stored_size",
    "summarize",
    "summarize_store",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- model
@dataclass
class NamespaceSummary:
    """The entries of one function, block or cell, grouped (see :func:`summarize`).

    Attributes
    ----------
    namespace : str
        The function, block or cell.
    kind : str
        The kinds of its entries, comma-separated.
    entries : int
        How many entries it has.
    versions : int
        How many code versions they were computed by.
    inputs : list of str
        The input names of all its entries, sorted.
    size : int
        Bytes of their blobs.
    created : float
        The oldest entry's creation time (seconds since the epoch).
    last_used : float
        The most recent hit (or creation) of any of them.
    hits : int
        Hits recorded for all of them.
    saved : float
        Compute time their hits saved, in seconds.
    pinned : int
        How many of them are pinned.
    """

    namespace: str
    kind: str
    entries: int
    versions: int
    inputs: list[str]
    size: int
    created: float
    last_used: float
    hits: int
    saved: float
    pinned: int

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description.

        Returns
        -------
        dict of str to object
            The fields by name.
        """
        return asdict(self)


@dataclass
class DuReport:
    """Bytes and files under each part of the store (see :func:`du`).

    Attributes
    ----------
    root : str
        The store's location.
    objects_bytes, objects_files : int
        Blobs under ``objects/``.
    entries_bytes, entries_files : int
        Manifests under ``entries/``.
    tmp_bytes, tmp_files : int
        Staging files under ``tmp/``.
    state_bytes, state_files : int
        Usage, pins and other records under ``state/``.
    reclaimable_bytes, reclaimable_files : int
        Blobs no readable entry references (what ``gc`` would free).
    total_bytes : int
        Everything under the store directory (a property).
    """

    root: str
    objects_bytes: int = 0
    objects_files: int = 0
    entries_bytes: int = 0
    entries_files: int = 0
    tmp_bytes: int = 0
    tmp_files: int = 0
    state_bytes: int = 0
    state_files: int = 0
    reclaimable_bytes: int = 0
    reclaimable_files: int = 0

    @property
    def total_bytes(self) -> int:
        """Everything under the store directory."""
        return self.objects_bytes + self.entries_bytes + self.tmp_bytes + self.state_bytes

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description.

        Returns
        -------
        dict of str to object
            The fields by name, plus ``total_bytes``.
        """
        return {**asdict(self), "total_bytes": self.total_bytes}


def list_entries(store: Store, namespace: str | None = None) -> list[EntryInfo]:
    """Return every readable entry of the store (or of one namespace), in directory order.

    Damaged manifests are skipped (``verify`` reports them); nothing is unpickled.

    Parameters
    ----------
    store : Store
        The store (it must exist; an empty folder counts as an empty store).
    namespace : str, optional
        Only the entries of this namespace.

    Returns
    -------
    list of EntryInfo
        One per readable manifest.

    Raises
    ------
    StoreFormatError
        When the location exists but is not a checkpoint store, or is of a newer format.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> manifest = {"namespace": "m.f", "code": "c1", "inputs": {"x": "1"}, "duration": 2.0}
    >>> store.write_entry("m.f", "k1", manifest)
    >>> store.record_use("m.f", "k1")
    >>> entry = list_entries(store)[0]
    >>> entry.namespace, entry.code, entry.hits, entry.saved
    ('m.f', 'c1', 1, 2.0)
    """
    require_store(store, allow_empty=True)
    scan = scan_entries(store, None if namespace is None else layout.namespace_dir(namespace))
    if namespace is not None:
        return [e for e in scan.entries if e.namespace == namespace]
    return scan.entries


def summarize(entries: Iterable[EntryInfo]) -> list[NamespaceSummary]:
    """Group entries by namespace: entry and code-version counts, sizes, use, time saved.

    Parameters
    ----------
    entries : Iterable of EntryInfo
        Entries, e.g. from :func:`list_entries`.

    Returns
    -------
    list of NamespaceSummary
        One per namespace, sorted by name.

    Examples
    --------
    >>> e1 = EntryInfo("m.f", "k", "function", "c1", {"x": "1"}, ["return"], 10, 1.0, 2.0, 3, 0.5,
    ...                False)
    >>> e2 = EntryInfo("m.f", "k2", "function", "c2", {"x": "2"}, ["return"], 5, 1.5, 1.5, 0, 0.5,
    ...                True)
    >>> s = summarize([e1, e2])[0]
    >>> s.entries, s.versions, s.size, s.hits, s.saved, s.pinned
    (2, 2, 15, 3, 1.5, 1)
    """
    groups: dict[str, list[EntryInfo]] = defaultdict(list)
    for e in entries:
        groups[e.namespace].append(e)
    summaries = []
    for name, group in groups.items():
        summaries.append(
            NamespaceSummary(
                namespace=name,
                kind=", ".join(sorted({e.kind for e in group if e.kind})),
                entries=len(group),
                versions=len({e.code for e in group}),
                inputs=sorted({n for e in group for n in e.inputs}),
                size=sum(e.size for e in group),
                created=min(e.created for e in group),
                last_used=max(e.last_used for e in group),
                hits=sum(e.hits for e in group),
                saved=sum(e.saved for e in group),
                pinned=sum(e.pinned for e in group),
            )
        )
    return sorted(summaries, key=lambda s: s.namespace)


def summarize_store(store: Store, namespace: str | None = None) -> list[NamespaceSummary]:
    """What ``checkpoint-magic ls`` shows: :func:`summarize` of every entry, from the index.

    Equal to ``summarize(list_entries(store, namespace))``, but aggregated by the store's
    entry index (refreshed first from the folders changed since) without building an
    :class:`EntryInfo` per entry; a store without an index is read entry by entry.

    Parameters
    ----------
    store : Store
        The store (it must exist; an empty folder counts as an empty store).
    namespace : str, optional
        Only this namespace.

    Returns
    -------
    list of NamespaceSummary
        One per namespace, sorted by name.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "k1", {"namespace": "m.f", "code": "c1", "inputs": {"x": "1"}})
    >>> store.write_entry("m.f", "k2", {"namespace": "m.f", "code": "c2", "inputs": {"y": "2"}})
    >>> s = summarize_store(store)[0]
    >>> s.namespace, s.entries, s.versions, s.inputs
    ('m.f', 2, 2, ['x', 'y'])
    """
    require_store(store, allow_empty=True)
    flush_usage()  # hits of this process are counted in memory
    ns_dir = None if namespace is None else layout.namespace_dir(namespace)
    rows = with_index(store, lambda index: index.summaries(namespace), ns_dir)
    if rows is None:
        return summarize(list_entries(store, namespace))
    return [
        NamespaceSummary(
            namespace=ns,
            kind=", ".join(sorted(k for k in (kinds or "").split(",") if k)),
            entries=count,
            versions=versions,
            inputs=sorted(inputs),
            size=int(size or 0),
            created=created,
            last_used=last_used,
            hits=int(hits or 0),
            saved=float(saved or 0.0),
            pinned=int(pinned or 0),
        )
        for ns, kinds, count, versions, size, created, last_used, hits, saved, pinned, inputs in rows
    ]


def namespaces(store: Store) -> list[str]:
    """Return every namespace with an entry or a recorded miss.

    Parameters
    ----------
    store : Store
        The store (it must exist; an empty folder counts as an empty store).

    Returns
    -------
    list of str
        The namespaces, sorted.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.g", "k", {"namespace": "m.g"})
    >>> namespaces(store)
    ['m.g']
    """
    names = {e.namespace for e in list_entries(store)}
    for ns_dir in store.backend.list_folders(layout.STATE):
        try:
            raw = store.backend.read_bytes(
                f"{layout.state_folder(ns_dir)}/{layout.LAST_MISS}", 1 << 20
            )
            names.add(str(json.loads(raw)["namespace"]))
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            continue
    return sorted(names)


def resolve_namespace(store: Store, name: str) -> str:
    """Return the namespace ``name`` refers to: itself, or the only one ending in ``.name``.

    Parameters
    ----------
    store : Store
        The store (it must exist; an empty folder counts as an empty store).
    name : str
        A full namespace (``module.function``) or its last part.

    Returns
    -------
    str
        The full namespace.

    Raises
    ------
    InvalidArgumentError
        When no namespace, or several, match.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("__main__.slow_square", "k", {"namespace": "__main__.slow_square"})
    >>> resolve_namespace(store, "slow_square")
    '__main__.slow_square'
    """
    known = namespaces(store)
    if name in known:
        return name
    matches = [n for n in known if n.endswith("." + name) or n.endswith(":" + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidArgumentError(
            f"{name!r} is ambiguous: it may mean {', '.join(matches)}; give the full name"
        )
    hint = f"; known names: {', '.join(known[:20])}" if known else "; the store is empty"
    raise InvalidArgumentError(
        f"no function, block or cell named {name!r} in {store.location}{hint}"
    )


def find_entry(store: Store, key_prefix: str) -> EntryInfo:
    """Return the entry whose key starts with ``key_prefix`` (a unique prefix, as in git).

    Parameters
    ----------
    store : Store
        The store (it must exist; an empty folder counts as an empty store).
    key_prefix : str
        A key or a unique prefix of one (``NAMESPACE/KEY`` is accepted too).

    Returns
    -------
    EntryInfo
        The entry.

    Raises
    ------
    InvalidArgumentError
        No entry, or several entries, match.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "3fa9c1d2", {"namespace": "m.f"})
    >>> find_entry(store, "3fa").key
    '3fa9c1d2'
    """
    prefix = key_prefix.strip().split("/")[-1]
    if not prefix:
        raise InvalidArgumentError(
            "give an entry key (or a unique prefix of one); `checkpoint-magic ls -l` lists them"
        )
    matches = [e for e in list_entries(store) if e.key.startswith(prefix)]
    if not matches:
        raise InvalidArgumentError(f"no entry key starts with {prefix!r} in {store.location}")
    if len(matches) > 1:
        shown = ", ".join(f"{e.key[:12]} ({e.namespace})" for e in matches[:10])
        raise InvalidArgumentError(
            f"key prefix {prefix!r} is ambiguous: {shown}; give more characters"
        )
    return matches[0]


def du(store: Store) -> DuReport:
    """Return bytes and files in ``objects/``, ``entries/``, ``tmp/``, ``state/``, reclaimable.

    Parameters
    ----------
    store : Store
        The store (it must exist; an empty folder counts as an empty store).

    Returns
    -------
    DuReport
        The sizes; reclaimable blobs are those no readable entry references.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> _ = store.put_blob([bytes(1000)])
    >>> report = du(store)
    >>> report.objects_bytes, report.reclaimable_bytes
    (1000, 1000)
    """
    require_store(store, allow_empty=True)
    report = DuReport(root=store.location)
    flush_usage()  # hits of this process are counted in memory

    def from_index(index: EntryIndex) -> tuple[set[str], int, int, tuple[int, int]]:
        index.refresh_all_state()
        entry_bytes, entry_files, state_bytes, state_files = index.totals()
        return index.referenced(), entry_bytes, entry_files, (state_bytes, state_files)

    indexed = with_index(store, from_index)
    if indexed is None:
        referenced, entry_bytes, entry_files = manifest_refs(store)
    else:
        referenced, entry_bytes, entry_files, (report.state_bytes, report.state_files) = indexed
        for name in layout.INDEX_FILES:  # the index itself lives in the state area
            if (st := store.backend.stat(name)) is not None:
                report.state_bytes += st.size
                report.state_files += 1
    for rel, st in blob_files(store).items():
        report.objects_bytes += st.size
        report.objects_files += 1
        digest = layout.digest_of(rel)
        if digest is not None and digest not in referenced:
            report.reclaimable_bytes += st.size
            report.reclaimable_files += 1
    report.entries_bytes = entry_bytes
    report.entries_files = entry_files
    for _, st in store.backend.list_files(layout.TMP):
        report.tmp_bytes += st.size
        report.tmp_files += 1
    if indexed is None:
        for ns_dir in store.backend.list_folders(layout.STATE):
            for _, _, st in state_files(store.backend, ns_dir, sharded=store.sharded):
                report.state_bytes += st.size
                report.state_files += 1
    return report
