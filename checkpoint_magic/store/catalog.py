"""What is in a store, read without side effects: the entry model the store's tools share.

:func:`scan_entries` reads every manifest (without removing damaged ones, never unpickling
anything) and the usage recorded for it, through the backend; :func:`blob_files` lists the
blobs and :func:`stored_size` totals them cheaply. Budgets (:mod:`.budget`), the sweep, and
the tools (``ls``, ``du``, ``verify``) build on these.

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

import contextlib
import functools
import gc
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .. import config
from ..exceptions import StoreFormatError
from . import layout
from .backends import Stat
from .core import Store
from .index import (
    INDEX_ERRORS,
    EntryIndex,
    EntryRow,
    StateRow,
    index_failed,
    open_index,
    signature,
    trusted,
)
from .manifest import MANIFEST_MAX_BYTES, decode_manifest
from .usage import flush_usage, parse_usage

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


@dataclass
class EntryInfo:
    """One cached computation, as listed by :func:`scan_entries`.

    ``last_used`` is the last recorded hit (the creation time if never hit); ``saved``
    is the compute time the cache has saved so far (``hits * duration``); ``name`` is the
    manifest's store name (``entries/<namespace folder>/<key>``); ``version`` its stat
    signature when it was read (:func:`~checkpoint_magic.store.index.signature`).
    """

    namespace: str
    key: str
    kind: str
    code: str
    inputs: dict[str, str]
    outputs: list[str]
    size: int
    created: float
    last_used: float
    hits: int
    duration: float
    pinned: bool
    blobs: dict[str, int] = field(default_factory=dict, repr=False)
    manifest_data: dict[str, Any] | None = field(default=None, repr=False)
    root: str | None = field(default=None, repr=False)
    file_size: int = field(default=0, repr=False)
    version: str | None = field(default=None, repr=False)
    name: str = field(default="", repr=False)
    loader: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def manifest(self) -> dict[str, Any]:
        """The whole manifest (read on first use when the entry was listed from the index)."""
        if self.manifest_data is None:
            self.manifest_data = self.loader() if self.loader is not None else {}
        return self.manifest_data

    @property
    def path(self) -> Path | None:
        """The manifest's local path (``None`` for a URL store)."""
        return Path(self.root, self.name) if self.root is not None and self.name else None

    @property
    def saved(self) -> float:
        """Compute time saved by hits so far, in seconds."""
        return self.hits * self.duration

    @functools.cached_property
    def ns_dir(self) -> str:
        """The entry's namespace folder under ``entries/``."""
        return self.name.split("/")[1] if self.name else layout.namespace_dir(self.namespace)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (without the raw manifest).

        Returns
        -------
        dict
            The listed fields plus ``saved``; ``blobs`` maps digest to size.
        """
        return {
            "namespace": self.namespace,
            "key": self.key,
            "kind": self.kind,
            "code": self.code,
            "inputs": dict(self.inputs),
            "outputs": list(self.outputs),
            "size": self.size,
            "created": self.created,
            "last_used": self.last_used,
            "hits": self.hits,
            "duration": self.duration,
            "saved": self.saved,
            "pinned": self.pinned,
            "blobs": dict(self.blobs),
        }


@dataclass
class Scan:
    """Every manifest of a store, as :func:`scan_entries` read it.

    ``entries`` are the readable ones; ``damaged`` are ``(name, why)``; ``unsigned`` are
    entries a signed store refuses, with why; ``entry_bytes`` totals the manifest files.
    """

    entries: list[EntryInfo] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    unsigned: list[tuple[EntryInfo, str]] = field(default_factory=list)
    entry_bytes: int = 0


def parse_manifest(data: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(manifest, damage, signature problem)`` of a manifest file's bytes; never removes it.

    Parameters
    ----------
    data : bytes
        A manifest file's bytes.

    Returns
    -------
    tuple
        As :func:`~checkpoint_magic.store.manifest.decode_manifest`, with the configured
        secret, parsing refused (unsigned) entries too.
    """
    return decode_manifest(data, config.secret_key(), parse_refused=True)


def blob_refs(obj: Any, out: dict[str, int], depth: int = 0) -> dict[str, int]:
    """Every ``{"digest": <32 hex>, "size": int}`` found anywhere in a manifest.

    Parameters
    ----------
    obj : object
        A manifest (or part of one): nested dicts and lists.
    out : dict of str to int
        Filled in place with digest -> size.
    depth : int, default 0
        Current nesting depth; deeper than 64 is not searched.

    Returns
    -------
    dict of str to int
        ``out``.

    Examples
    --------
    >>> blob_refs({"outputs": [{"digest": "0" * 32, "size": 5}]}, {})
    {'00000000000000000000000000000000': 5}
    """
    if depth > 64:
        return out
    if isinstance(obj, dict):
        digest, size = obj.get("digest"), obj.get("size")
        if isinstance(digest, str) and layout.is_digest(digest) and isinstance(size, int):
            out[digest] = size
        for value in obj.values():
            if isinstance(value, (dict, list)):
                blob_refs(value, out, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                blob_refs(value, out, depth + 1)
    return out


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def _str_dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _may_reference_blobs(data: bytes) -> bool:
    """Whether manifest bytes can hold a blob reference: they spell ``"digest"`` (or escape)."""
    return b'"digest"' in data or b"\\u" in data


@contextlib.contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector while a scan builds many long-lived containers.

    Each generation-2 pass walks every object the scan built so far, which made listing
    100,000 entries superlinear (as Mercurial's ``util.nogc`` works around); the scan
    creates no reference cycles, and the collector is re-enabled at once afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_entry_file(
    store: Store, ns_dir: str, key: str, st: Stat, data: bytes | None = None
) -> tuple[EntryInfo | None, str]:
    """An :class:`EntryInfo` of one manifest (usage and pin not filled).

    Parameters
    ----------
    store : Store
        The store.
    ns_dir : str
        The namespace folder under ``entries/``.
    key : str
        The manifest's file name.
    st : Stat
        Its stat (from the listing).
    data : bytes, optional
        The manifest's bytes when the caller has read them already.

    Returns
    -------
    info : EntryInfo or None
        ``None`` if the manifest is damaged.
    problem : str
        Why it is damaged, or why a signed store refuses it; ``""`` otherwise.

    Raises
    ------
    FileNotFoundError
        The manifest was removed meanwhile.
    """
    name = f"{layout.ENTRIES}/{ns_dir}/{key}"
    if data is None:
        data = store.backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
    manifest, damage, sig_problem = parse_manifest(data)
    if manifest is not None and (
        manifest.get("key", key) != key
        or ("namespace" in manifest and layout.namespace_dir(str(manifest["namespace"])) != ns_dir)
    ):
        damage = f"written for entry {manifest.get('namespace')}/{manifest.get('key')}"
        manifest = None
    if manifest is None:
        return None, damage or "damaged"
    created = _number(manifest.get("created"), st.mtime)
    outputs = manifest.get("outputs")
    info = EntryInfo(
        namespace=str(manifest.get("namespace") or ns_dir),
        key=key,
        kind=str(manifest.get("kind") or ""),
        code=str(manifest.get("code") or ""),
        inputs=_str_dict(manifest.get("inputs")),
        outputs=sorted(outputs) if isinstance(outputs, dict) else [],
        size=0,
        created=created,
        last_used=created,
        hits=0,
        duration=_number(manifest.get("duration"), 0.0),
        pinned=False,
        # A manifest whose bytes never spell "digest" (nor any \u escape) references no blob.
        blobs=blob_refs(manifest, {}) if _may_reference_blobs(data) else {},
        manifest_data=manifest,
        root=store.location if store.is_local else None,
        file_size=st.size,
        version=signature(st),
        name=name,
    )
    info.size = int(_number(manifest.get("size"), sum(info.blobs.values())))
    return info, sig_problem or ""


def load_manifest(store: Store, name: str) -> dict[str, Any]:
    """The manifest ``name`` as :func:`parse_manifest` reads it; ``{}`` if gone or damaged.

    Parameters
    ----------
    store : Store
        The store.
    name : str
        The manifest's store name (``entries/<namespace folder>/<key>``).

    Returns
    -------
    dict
    """
    try:
        data = store.backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        return {}
    return parse_manifest(data)[0] or {}


def row_parser(store: Store) -> Callable[[str, str], EntryRow | None]:
    """A function reading one manifest into an index row (for :meth:`EntryIndex.refresh`).

    Parameters
    ----------
    store : Store
        The store.

    Returns
    -------
    callable
        ``parse(ns_dir, key)``: the :class:`~checkpoint_magic.store.index.EntryRow`, or
        ``None`` if the manifest was removed meanwhile.
    """
    now = time.time()
    dumps = json.dumps

    def parse(ns_dir: str, key: str) -> EntryRow | None:
        try:
            f, st = store.backend.open_read(f"{layout.ENTRIES}/{ns_dir}/{key}")
            with f:
                data = f.read(MANIFEST_MAX_BYTES + 1) if st.size > MANIFEST_MAX_BYTES else f.read()
        except FileNotFoundError:
            return None
        info, problem = read_entry_file(store, ns_dir, key, st, data)
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


def _entry_of(store: Store, row: StateRow, root: str | None) -> EntryInfo:
    e = row.entry
    name = f"{layout.ENTRIES}/{e.ns_dir}/{e.key}"
    return EntryInfo(
        namespace=e.namespace,
        key=e.key,
        kind=e.kind,
        code=e.code,
        inputs=json.loads(e.inputs),
        outputs=json.loads(e.outputs),
        size=e.size,
        created=e.created,
        last_used=e.created if row.last_used is None else row.last_used,
        hits=row.hits or 0,
        duration=e.duration,
        pinned=row.pinned,
        blobs=json.loads(e.blobs) if e.blobs != "{}" else {},
        root=root,
        file_size=e.file_size,
        version=e.version,
        name=name,
        loader=functools.partial(load_manifest, store, name),
    )


_T = TypeVar("_T")


@_no_gc_pauses()
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
    scan = Scan()
    root = store.location if store.is_local else None
    for row in index.entries(namespace_dir):
        e = row.entry
        scan.entry_bytes += e.file_size
        if e.damage is not None:
            scan.damaged.append((f"{layout.ENTRIES}/{e.ns_dir}/{e.key}", e.damage))
            continue
        info = _entry_of(store, row, root)
        scan.entries.append(info)
        if e.problem:
            scan.unsigned.append((info, e.problem))
    return scan


@_no_gc_pauses()
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
    """
    flush_usage()  # hits of this process are counted in memory
    if not fresh:
        indexed = with_index(
            store, lambda idx: _scan_index(store, idx, namespace_dir), namespace_dir
        )
        if indexed is not None:
            return indexed
    return read_entries(store, namespace_dir, usage=True)


@_no_gc_pauses()
def read_entries(store: Store, namespace_dir: str | None = None, *, usage: bool = True) -> Scan:
    """Read every manifest (and, with ``usage``, every usage record and pin).

    Parameters
    ----------
    store : Store
        The store.
    namespace_dir : str, optional
        Only this namespace folder.
    usage : bool, default True
        Fill ``hits``, ``last_used`` and ``pinned`` (``verify`` needs none of them).

    Returns
    -------
    Scan
    """
    scan = Scan()
    folders = store.backend.list_folders(layout.ENTRIES)
    if namespace_dir is not None:
        folders = [d for d in folders if d == namespace_dir]
    for ns_dir in folders:
        state = dict(store.backend.list_files(layout.state_folder(ns_dir))) if usage else {}
        for key, st in store.backend.list_files(f"{layout.ENTRIES}/{ns_dir}"):
            if key.startswith("."):
                continue
            try:
                info, problem = read_entry_file(store, ns_dir, key, st)
            except FileNotFoundError:
                continue  # removed meanwhile
            scan.entry_bytes += st.size
            if info is None:
                scan.damaged.append((f"{layout.ENTRIES}/{ns_dir}/{key}", problem))
                continue
            hits_st = state.get(key + layout.HITS)
            if hits_st is not None:
                try:
                    data = store.backend.read_bytes(
                        f"{layout.STATE}/{ns_dir}/{key}{layout.HITS}", 256
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
    """
    indexed = with_index(store, lambda idx: (idx.referenced(), *idx.entry_totals()))
    if indexed is not None:
        return indexed
    referenced: set[str] = set()
    total = files = 0
    with _no_gc_pauses():
        for ns_dir in store.backend.list_folders(layout.ENTRIES):
            for key, st in store.backend.list_files(f"{layout.ENTRIES}/{ns_dir}"):
                if key.startswith("."):
                    continue
                try:
                    name = f"{layout.ENTRIES}/{ns_dir}/{key}"
                    data = store.backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
                    info = (
                        read_entry_file(store, ns_dir, key, st, data)[0]
                        if _may_reference_blobs(data)
                        else None
                    )
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
_RACY_SECONDS = 2.0


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
    with _size_lock:
        for top in (layout.OBJECTS, layout.ENTRIES):
            for sub in backend.list_folders(top):
                folder = f"{top}/{sub}"
                st = backend.stat_folder(folder)
                cache_key = (store.location, folder)
                cached = _size_cache.get(cache_key)
                if st is not None and cached is not None and cached[0] == st.version:
                    total += cached[1]
                    continue
                size = sum(f.size for _, f in backend.list_files(folder))
                fresh = st is not None and now - st.mtime > _RACY_SECONDS
                _size_cache[cache_key] = (st.version if fresh and st else None, size)
                total += size
    return total
