"""What is in a store, read without side effects: the entry listings the store's tools share.

:func:`scan_entries` lists every entry (without removing damaged manifests, never
unpickling anything) and the usage recorded for it: from the entry index
(:mod:`.index`), refreshed first from the folders that changed, or by reading every
manifest (:func:`read_entries`). :func:`blob_files` lists the blobs and :func:`stored_size`
totals them cheaply. Budgets (:mod:`.budget`), the sweep, and the tools (``ls``, ``du``,
``verify``) build on these; the entry model is :mod:`.entryinfo`.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"outputs": {"return": record}})
>>> [(e.namespace, e.key, e.size) for e in scan_entries(store).entries]
[('demo.f', 'a1b2', 100009)]
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .. import config
from ..exceptions import StoreFormatError
from . import layout
from .backends import Stat
from .core import Store
from .entryinfo import (
    EntryInfo,
    ManifestLoader,
    Scan,
    blob_refs,
    entry_reader,
    load_manifest,
    may_reference_blobs,
    no_gc_pauses,
    parse_manifest,
)
from .index import INDEX_ERRORS, EntryIndex, index_failed, open_index
from .indexfresh import Parser
from .indexrows import RACY_SECONDS, EntryRow, signature, trusted
from .manifest import MANIFEST_MAX_BYTES, loads_json
from .usage import flush_usage, parse_usage
from .walk import entry_files, entry_folders, entry_keys, state_files

__all__ = [
    "EntryInfo",
    "Scan",
    "blob_files",
    "blob_refs",
    "load_manifest",
    "manifest_refs",
    "parse_manifest",
    "read_entries",
    "require_store",
    "row_parser",
    "scan_entries",
    "stored_size",
    "with_index",
]


def row_parser(store: Store) -> Parser:
    """A function reading one manifest into an index row (for :meth:`EntryIndex.refresh`).

    Parameters
    ----------
    store : Store
        The store.

    Returns
    -------
    Parser
        ``parse(ns_dir, key, st=None, data=None)``: the
        :class:`~checkpoint_magic.store.index.EntryRow` of the manifest (of ``data``, its
        bytes listed with ``st``, when given), or ``None`` if it was removed meanwhile.
    """
    now = time.time()
    dumps = json.dumps
    read = entry_reader(store)
    sharded = store.sharded

    def parse(
        ns_dir: str, key: str, st: Stat | None = None, data: bytes | None = None
    ) -> EntryRow | None:
        if st is None or data is None:
            try:
                f, st = store.backend.open_read(layout.entry_in(ns_dir, key, sharded=sharded))
                with f:
                    big = st.size > MANIFEST_MAX_BYTES  # read(n) allocates n bytes first
                    data = f.read(MANIFEST_MAX_BYTES + 1) if big else f.read()
            except FileNotFoundError:
                return None
        info, problem = read(ns_dir, key, st, data)
        head = (ns_dir, key, signature(st), trusted(st, now), st.size, st.mtime)
        if info is None:
            return EntryRow(*head, damage=problem or "damaged")
        return EntryRow(
            *head,
            None,
            problem or None,
            info.namespace,
            info.kind,
            info.code,
            dumps(info.inputs),
            dumps(sorted(info.inputs)),
            dumps(info.outputs),
            info.size,
            info.created,
            info.duration,
            dumps(info.blobs),
        )

    return parse


_T = TypeVar("_T")


@no_gc_pauses()
def with_index(
    store: Store, use: Callable[[EntryIndex], _T], namespace_dir: str | None = None
) -> _T | None:
    """``use(index)`` on the store's entry index refreshed from the manifests; ``None`` if unusable.

    The index (:mod:`checkpoint_magic.store.index`) is refreshed first: only folders
    changed since its last refresh are listed, and only new or changed manifests read.
    ``None`` means there is no index (a URL store, a read-only one) or it failed (locked,
    damaged: logged once, and a damaged one is rebuilt next time): the caller reads the
    manifests then.

    Parameters
    ----------
    store : Store
        The store.
    use : callable
        What to compute from the refreshed index.
    namespace_dir : str, optional
        Refresh only this namespace folder.

    Returns
    -------
    object or None
        What ``use`` returned.
    """
    index = open_index(store, config.secret_key())
    if index is None:
        return None
    try:
        index.refresh(row_parser(store), None if namespace_dir is None else [namespace_dir])
        return use(index)
    except INDEX_ERRORS as exc:
        if not isinstance(exc, sqlite3.Error):
            raise  # the store itself failed: reading the manifests would fail too
        index_failed(store, exc)
        return None
    finally:
        index.close()


def _scan_index(store: Store, index: EntryIndex, namespace_dir: str | None) -> Scan:
    """The entries as the index lists them (:data:`.indexrows.LISTED`), without row objects."""
    scan = Scan()
    root = store.location if store.is_local else None
    sharded = store.sharded
    entries, damaged, unsigned = scan.entries, scan.damaged, scan.unsigned
    outputs_of: dict[str, list[str]] = {}  # a namespace's entries mostly list the same outputs
    total = 0
    for (
        ns_dir,
        key,
        version,
        file_size,
        damage,
        problem,
        namespace,
        kind,
        code,
        inputs,
        outputs,
        size,
        created,
        duration,
        blobs,
        hits,
        last_used,
        pinned,
    ) in index.listing(namespace_dir):
        total += file_size
        name = layout.entry_in(ns_dir, key, sharded=sharded)
        if damage is not None:
            damaged.append((name, damage))
            continue
        names = outputs_of.get(outputs)
        if names is not None:
            names = list(names)  # a copy of the list of str parsed before
        else:
            names = loads_json(outputs)
            if isinstance(names, list) and all(type(n) is str for n in names):
                outputs_of[outputs] = names
                names = list(names)
        info = EntryInfo(
            namespace,
            key,
            kind,
            code,
            loads_json(inputs),
            names,
            size,
            created,
            created if last_used is None else last_used,
            hits or 0,
            duration,
            bool(pinned),
            loads_json(blobs) if blobs != "{}" else {},
            None,
            root,
            file_size,
            version,
            name,
            ManifestLoader(store, name),
        )
        entries.append(info)
        if problem:
            unsigned.append((info, problem))
    scan.entry_bytes = total
    return scan


@no_gc_pauses()
def scan_entries(store: Store, namespace_dir: str | None = None, *, fresh: bool = False) -> Scan:
    """Every manifest (without removing damaged ones) and the usage recorded for it.

    Listed from the store's entry index (refreshed first from the folders that changed)
    where the store has one, else, or with ``fresh``, by reading every manifest.

    Parameters
    ----------
    store : Store
        The store.
    namespace_dir : str, optional
        Only this namespace folder.
    fresh : bool, default False
        Read every manifest now (``verify``: a check cannot come from an index).

    Returns
    -------
    Scan
        The readable entries (usage and pins filled in), the damaged and the refused ones.
    """
    flush_usage()  # hits of this process are counted in memory
    if not fresh:
        indexed = with_index(
            store, lambda idx: _scan_index(store, idx, namespace_dir), namespace_dir
        )
        if indexed is not None:
            return indexed
    return read_entries(store, namespace_dir, usage=True)


@no_gc_pauses()
def read_entries(
    store: Store,
    namespace_dir: str | None = None,
    *,
    usage: bool = True,
    manifests: bool = True,
    by_name: bool = False,
) -> Scan:
    """Read every manifest (and, with ``usage``, every usage record and pin).

    Parameters
    ----------
    store : Store
        The store.
    namespace_dir : str, optional
        Only this namespace folder.
    usage : bool, default True
        Fill ``hits``, ``last_used`` and ``pinned`` (``verify`` needs none of them).
    manifests : bool, default True
        Keep each parsed manifest on its entry; without, :attr:`EntryInfo.manifest` reads
        it again if asked (``verify`` checks every manifest and keeps none).
    by_name : bool, default False
        List a local store's manifests by name (:func:`~.walk.entry_keys`): each one's stat
        is then the ``fstat`` of the file read, and ``entry_bytes`` is not counted.

    Returns
    -------
    Scan
        The readable entries, the damaged and the refused ones.
    """
    scan = Scan()
    read = entry_reader(store, keep_manifest=manifests)
    folders = store.backend.list_folders(layout.ENTRIES)
    if namespace_dir is not None:
        folders = [d for d in folders if d == namespace_dir]
    sharded = store.sharded
    for ns_dir in folders:
        state = (
            {leaf: st for leaf, _, st in state_files(store.backend, ns_dir, sharded=sharded)}
            if usage
            else {}
        )
        listing = entry_keys if by_name else entry_files
        for key, st in listing(store.backend, ns_dir, sharded=sharded):
            try:
                info, problem = read(ns_dir, key, st)
            except FileNotFoundError:
                continue  # removed meanwhile
            if st is not None:
                scan.entry_bytes += st.size
            if info is None:
                scan.damaged.append((layout.entry_in(ns_dir, key, sharded=sharded), problem))
                continue
            hits_st = state.get(key + layout.HITS)
            if hits_st is not None:
                try:
                    data = store.backend.read_bytes(
                        layout.state_in(ns_dir, key, layout.HITS, sharded=sharded), 256
                    )
                    info.hits, info.last_used = parse_usage(data, hits_st.mtime)
                except FileNotFoundError:
                    pass
            info.pinned = (key + layout.PIN) in state
            scan.entries.append(info)
            if problem:
                scan.unsigned.append((info, problem))
    return scan


def manifest_refs(store: Store) -> tuple[set[str], int, int]:
    """``(blobs referenced by readable manifests, manifest bytes, manifest files)``, cheaply.

    What ``du`` needs, without building an :class:`EntryInfo` or reading usage: a manifest
    whose bytes cannot hold a blob reference is not parsed at all.

    Parameters
    ----------
    store : Store
        The store.

    Returns
    -------
    referenced : set of str
        The digests of the blobs that readable manifests reference.
    manifest_bytes : int
        Bytes of every manifest file.
    manifest_files : int
        How many manifest files there are.
    """
    indexed = with_index(store, lambda idx: (idx.referenced(), *idx.totals()[:2]))
    if indexed is not None:
        return indexed
    referenced: set[str] = set()
    total = files = 0
    sharded = store.sharded
    read = entry_reader(store)
    with no_gc_pauses():
        for ns_dir in store.backend.list_folders(layout.ENTRIES):
            for key, st in entry_files(store.backend, ns_dir, sharded=sharded):
                try:
                    name = layout.entry_in(ns_dir, key, sharded=sharded)
                    data = store.backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
                    info = read(ns_dir, key, st, data)[0] if may_reference_blobs(data) else None
                except FileNotFoundError:
                    continue  # removed meanwhile
                total += st.size
                files += 1
                if info is not None:
                    referenced.update(info.blobs)
    return referenced, total, files


def blob_files(store: Store) -> dict[str, Stat]:
    """Every file under ``objects/``, by ``<sub>/<name>`` (a blob's name is its digest).

    Parameters
    ----------
    store : Store
        The store.

    Returns
    -------
    dict of str to Stat
        The stat of each blob file.
    """
    found: dict[str, Stat] = {}
    for sub in store.backend.list_folders(layout.OBJECTS):
        for name, st in store.backend.list_files(f"{layout.OBJECTS}/{sub}"):
            found[f"{sub}/{name}"] = st
    return found


def require_store(store: Store, *, allow_empty: bool = False) -> None:
    """Refuse a location that is not a checkpoint store (no valid ``FORMAT`` record).

    Parameters
    ----------
    store : Store
        The store.
    allow_empty : bool, default False
        Accept a location where nothing exists yet as an empty store (read-only commands).

    Raises
    ------
    StoreFormatError
        ``FORMAT`` is missing, unreadable as a format record, or of a newer format.
    NotADirectoryError
        The location is a file, or below one.
    """
    store.check_format()
    if store.is_store():
        return
    if allow_empty and store.backend.is_empty():
        return
    raise StoreFormatError(
        f"{store.location} is not a checkpoint store (it has no FORMAT file); nothing was "
        "changed. Check --store, the store= argument or CHECKPOINT_MAGIC_DIR"
    )


_size_cache: dict[tuple[str, str], tuple[Any, int]] = {}
_size_lock = threading.Lock()


def stored_size(store: Store) -> int:
    """Bytes under ``objects/`` and ``entries/``, re-reading only folders changed since last call.

    A folder's mtime changes whenever an object is published into it or removed from it,
    so unchanged folders keep their cached total; one modified within the last two seconds
    is re-read next time too (timestamps are coarse). This keeps the automatic gc after
    every commit (``CHECKPOINT_MAGIC_MAX_SIZE``) cheap.

    Parameters
    ----------
    store : Store
        The store.

    Returns
    -------
    int
        Bytes of the blob and manifest files.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> _ = store.put_blob([bytes(20_000)])
    >>> stored_size(store)
    20000
    """
    now = time.time()
    total = 0
    backend = store.backend
    folders = [f"{layout.OBJECTS}/{sub}" for sub in backend.list_folders(layout.OBJECTS)]
    for ns_dir in backend.list_folders(layout.ENTRIES):
        folders += entry_folders(backend, ns_dir, sharded=store.sharded)
    with _size_lock:
        for folder in folders:
            st = backend.stat_folder(folder)
            cache_key = (store.location, folder)
            cached = _size_cache.get(cache_key)
            if st is not None and cached is not None and cached[0] == st.version:
                total += cached[1]
                continue
            size = sum(f.size for _, f in backend.list_files(folder))
            fresh = st is not None and now - st.mtime > RACY_SECONDS
            _size_cache[cache_key] = (st.version if fresh and st else None, size)
            total += size
    return total
