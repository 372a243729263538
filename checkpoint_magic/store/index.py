"""The entry index: a SQLite cache of what every manifest and usage record says, kept fresh.

Reading every manifest costs ~100 us per entry (more once they leave the page cache). The
index (:data:`~checkpoint_magic.store.layout.INDEX` under ``state/``, WAL mode, as diskcache
keeps its own) holds per entry what the tools need (namespace, kind, code, inputs, outputs,
size, times, blob references, damage) and per state record its hits, last use or pin, so
``ls``, ``du`` and ``gc`` read rows instead of files. **The manifests stay the source of
truth**: before every use the index is refreshed from them, cheaply and soundly:

* a folder (a shard folder ``entries/<ns>/<shard>``, ``state/<ns>/<shard>``, or a
  namespace folder, for the shard folders in it) whose stat signature is the one recorded
  at its last listing is unchanged: the store publishes every file by rename, which
  changes its folder's mtime (a file rewritten *in place* by something else is seen once
  its folder changes; ``verify`` always reads every manifest itself); so a commit makes
  the next refresh list one shard folder (see :mod:`~checkpoint_magic.store.indexfresh`);
* a changed folder is listed with one ``stat`` per file, and only files whose signature
  (inode, size, mtime) is new or different are read again; rows of files gone are dropped;
* as git's "racily clean" rule, a folder or file changed within :data:`RACY_SECONDS` of
  the listing could change again within one timestamp tick unseen: it is looked at again.

Hits and commits never read or write the index. Any failure (a corrupt, locked, foreign or
read-only index) makes callers read the manifests instead (:data:`INDEX_ERRORS`,
:func:`checkpoint_magic.store.catalog.with_index`).

An object store has no folders to stat: there, a refresh lists each namespace's manifests
and records in one listing (:meth:`~checkpoint_magic.store.backends.StoreBackend.list_tree`)
and compares each object's own version (its ETag) with the one recorded, reading only the
new or changed ones, concurrently. The index is then a file of the machine's local cache
(see :func:`open_index`).

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> store.write_entry("demo.f", "k1", {"outputs": {}})
>>> index = open_index(store)
>>> index is not None and index.path.endswith(".entry-index-1.sqlite3")
True
>>> index.close()
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import stat as stat_module
import threading
from typing import Any

from . import layout
from .backends import StoreBackend
from .indexfresh import IndexRefresh
from .indexrows import LISTED, RACY_SECONDS, EntryRow, signature, trusted

__all__ = [
    "INDEX_ERRORS",
    "LISTED",
    "RACY_SECONDS",
    "EntryIndex",
    "EntryRow",
    "discard_index",
    "index_failed",
    "open_index",
    "signature",
    "trusted",
]

logger = logging.getLogger(__name__)

#: Errors that make the index unusable for one call (the caller reads the manifests then).
INDEX_ERRORS: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
_SCHEMA = "checkpoint_magic entry index 1"
_BUSY_TIMEOUT = 10.0  # seconds to wait for another process's write before giving up

_SCHEMA_SQL = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS folders (name TEXT PRIMARY KEY, version TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
    ns_dir TEXT NOT NULL, key TEXT NOT NULL, version TEXT, trusted INTEGER,
    file_size INTEGER, mtime REAL,
    damage TEXT, problem TEXT, namespace TEXT, kind TEXT, code TEXT, inputs TEXT,
    input_names TEXT, outputs TEXT, size INTEGER, created REAL, duration REAL, blobs TEXT,
    PRIMARY KEY (ns_dir, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS refs (
    digest TEXT NOT NULL, ns_dir TEXT NOT NULL, key TEXT NOT NULL, size INTEGER,
    PRIMARY KEY (ns_dir, key, digest)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
    ns_dir TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, version TEXT,
    trusted INTEGER, size INTEGER, hits INTEGER, last_used REAL,
    PRIMARY KEY (ns_dir, key, kind)) WITHOUT ROWID;
"""


_LISTED_COLUMNS = ", ".join(  # LISTED as the query names them
    {"hits": "h.hits", "last_used": "h.last_used", "pinned": "p.key IS NOT NULL"}.get(c, f"e.{c}")
    for c in LISTED
)
_JOINED = (  # entries with their usage record and pin
    "FROM entries e "
    "LEFT JOIN state h ON h.ns_dir = e.ns_dir AND h.key = e.key AND h.kind = 'hits' "
    "LEFT JOIN state p ON p.ns_dir = e.ns_dir AND p.key = e.key AND p.kind = 'pin'"
)
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(location: str, what: str, exc: BaseException, level: int = logging.WARNING) -> None:
    with _warned_lock:
        if (location, what) in _warned:
            return
        _warned.add((location, what))
    logger.log(level, "entry index of %s %s (%s); reading manifests instead", location, what, exc)


def _secret_tag(secret: bytes | None) -> str:
    """What of the signing secret the index records: whether parses may be reused."""
    if secret is None:
        return "unsigned"
    return hmac.new(secret, b"checkpoint_magic entry index", hashlib.sha256).hexdigest()[:32]


class EntryIndex(IndexRefresh):
    """An open entry index of one store (see the module docstring); not thread-safe.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend (listings and reads go through it).
    path : str
        The local SQLite file.
    secret : bytes or None
        The signing secret in use: rows parsed under another one are dropped.
    sharded : bool, default True
        Whether the store keeps entries in shard folders (format 2); rows of the other
        layout (an index kept across ``checkpoint-magic upgrade``) are dropped.
    """

    def __init__(
        self, backend: StoreBackend, path: str, secret: bytes | None, *, sharded: bool = True
    ):
        self.backend = backend
        self.sharded = sharded
        self.path = path
        self.db = sqlite3.connect(
            path, timeout=_BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            self._setup(_secret_tag(secret))
        except BaseException:
            self.db.close()
            raise

    def _setup(self, secret_tag: str) -> None:
        db = self.db
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
            raise sqlite3.OperationalError("the index cannot use write-ahead logging here")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA_SQL)  # idempotent; it commits, so it runs outside _write
        with self._write():
            meta = dict(db.execute("SELECT name, value FROM meta"))
            if meta.get("schema", _SCHEMA) != _SCHEMA:
                raise sqlite3.DatabaseError(f"not an index of this version: {meta['schema']!r}")
            tables: tuple[str, ...] = ()
            if meta.get("secret") != secret_tag:  # parses depend on the secret: start over
                tables = ("entries", "refs", "folders")
            shape = "sharded" if self.sharded else "flat"  # an index before shards was flat
            if meta.get("layout", "flat") != shape:  # the store was upgraded: start over
                tables = ("entries", "refs", "folders", "state")
            for table in tables:
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
            db.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                [("schema", _SCHEMA), ("secret", secret_tag), ("layout", shape)],
            )

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    # ------------------------------------------------------------------ reading
    def listing(self, ns_dir: str | None = None) -> list[tuple[Any, ...]]:
        """Every entry (damaged ones too) with its usage and pin, by folder and key, in one query.

        Plain tuples of the columns :data:`~checkpoint_magic.store.indexrows.LISTED` names,
        in that order: a listing of a whole store builds no row object per entry.

        Parameters
        ----------
        ns_dir : str, optional
            Only this namespace folder.

        Returns
        -------
        list of tuple
            One per manifest, ordered by namespace folder and key.
        """
        where, args = ("WHERE e.ns_dir = ?", (ns_dir,)) if ns_dir is not None else ("", ())
        query = f"SELECT {_LISTED_COLUMNS} {_JOINED} {where} ORDER BY e.ns_dir, e.key"  # noqa: S608
        return self.db.execute(query, args).fetchall()

    def summaries(self, namespace: str | None = None) -> list[tuple[Any, ...]]:
        """Per namespace of readable entries, aggregated in SQL.

        The totals of every namespace are kept in the index with what its ``folders`` table
        said when they were computed; they are reused while it says the same (no folder
        listed since, and none changed too recently to be recorded): rows only change when
        a folder is listed again, which records its new signature. An unchanged store of
        any size is then summed up without reading its rows.

        Parameters
        ----------
        namespace : str, optional
            Only this namespace.

        Returns
        -------
        list of tuple
            ``(namespace, kinds, entries, versions, size, created, last used, hits, saved,
            pinned, input names)``, by namespace; ``kinds`` is comma-separated text, ``input
            names`` a set of every input name of the namespace.
        """
        if namespace is not None:
            return self._summaries(namespace)
        self.db.execute("BEGIN")  # one snapshot: the folders as the totals were computed
        try:
            folders = self._folders_key()
            kept = self.db.execute("SELECT value FROM meta WHERE name = 'summaries'").fetchone()
            cached = _cached_rows(kept[0], folders) if kept and folders else None
            rows = cached if cached is not None else self._summaries(None)
        except BaseException:
            if self.db.in_transaction:  # SQLite ends it itself on some errors: that error counts
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        if cached is None and folders is not None:
            text = json.dumps(
                {"folders": folders, "rows": [[*r[:-1], sorted(r[-1])] for r in rows]}
            )
            try:  # a cache: not keeping it is no error
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('summaries', ?)", (text,))
            except sqlite3.Error as exc:
                logger.debug("entry index totals not kept: %s", exc)
        return rows

    def _folders_key(self) -> str | None:
        """What the ``folders`` table says, ``None`` while a folder is too recent to trust."""
        folders = self.db.execute("SELECT name, version FROM folders ORDER BY name").fetchall()
        if any(version is None for _, version in folders):
            return None
        return hashlib.sha256(json.dumps(folders).encode("utf-8")).hexdigest()

    def _summaries(self, namespace: str | None) -> list[tuple[Any, ...]]:
        where, args = ("AND e.namespace = ?", (namespace,)) if namespace is not None else ("", ())
        rows = self.db.execute(
            "SELECT e.namespace, group_concat(DISTINCT e.kind), count(*), "  # noqa: S608
            "count(DISTINCT e.code), sum(e.size), min(e.created), "
            "max(coalesce(h.last_used, e.created)), sum(coalesce(h.hits, 0)), "
            f"sum(coalesce(h.hits, 0) * e.duration), sum(p.key IS NOT NULL) {_JOINED} "
            f"WHERE e.damage IS NULL {where} GROUP BY e.namespace ORDER BY e.namespace",
            args,
        ).fetchall()
        names: dict[str, set[str]] = {}
        for ns, text in self.db.execute(
            "SELECT DISTINCT e.namespace, e.input_names FROM entries e "  # noqa: S608
            f"WHERE e.damage IS NULL {where}",
            args,
        ):
            names.setdefault(ns, set()).update(json.loads(text))
        return [(*row, names.get(row[0], set())) for row in rows]

    def referenced(self) -> set[str]:
        """Digests of the blobs readable manifests refer to.

        Returns
        -------
        set of str
            Every digest a readable manifest lists.
        """
        return {r[0] for r in self.db.execute("SELECT DISTINCT digest FROM refs")}

    def totals(self) -> tuple[int, int, int, int]:
        """``(manifest bytes, manifest files, state bytes, state files)`` (damaged ones too).

        Returns
        -------
        tuple of int
            Bytes and count of the manifest files, then of the state records.
        """
        sizes = [
            self.db.execute(f"SELECT sum({col}), count(*) FROM {table}").fetchone()  # noqa: S608
            for table, col in (("entries", "file_size"), ("state", "size"))
        ]
        return int(sizes[0][0] or 0), sizes[0][1], int(sizes[1][0] or 0), sizes[1][1]


def _cached_rows(text: str, folders: str) -> list[tuple[Any, ...]] | None:
    """The totals kept in ``text`` if they were computed from these ``folders``."""
    try:
        kept = json.loads(text)
        if kept.get("folders") != folders:
            return None
        return [(*row[:-1], set(row[-1])) for row in kept["rows"]]
    except (ValueError, TypeError, KeyError, AttributeError):  # damaged: computed again
        return None


def _cache_file(backend: StoreBackend) -> str | None:
    """The index of a remote store, in the machine's local cache (its folder created)."""
    path = backend.index_file()
    if path is not None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    return _refuse_links(path)


def _local_files(path: str) -> list[str]:
    """The SQLite files of the index at ``path`` (with its write-ahead log)."""
    return [path + name[len(layout.INDEX) :] for name in layout.INDEX_FILES]


def _refuse_links(path: str | None) -> str | None:
    """``path``, refused if one of the index's files there exists and is not a regular file."""
    for local in _local_files(path) if path is not None else ():
        try:
            st = os.lstat(local)
        except FileNotFoundError:
            continue
        if not stat_module.S_ISREG(st.st_mode):
            raise sqlite3.OperationalError(f"{local} is not a regular file the index wrote")
    return path


def open_index(store: Any, secret: bytes | None = None) -> EntryIndex | None:
    """The store's entry index, created if missing; ``None`` where there is none.

    A local store has one in ``state/``, shared by the processes of the machine. A URL store
    has one per machine, in its folder of the local read cache
    (:meth:`~checkpoint_magic.store.backends.StoreBackend.index_file`; none when that cache
    is off), refreshed from one listing per namespace and the versions (ETags) it carries.
    A read-only local store has none, nor has one not created yet. A corrupt or foreign
    index is removed and rebuilt (logged once); a locked one is not waited for beyond a few
    seconds.

    Parameters
    ----------
    store : Store
        The store.
    secret : bytes, optional
        The signing secret in use (``CHECKPOINT_MAGIC_SECRET``).

    Returns
    -------
    EntryIndex or None
        Open; the caller closes it.
    """
    backend = store.backend
    local = store.is_local and backend.files_are_local
    try:
        if local:
            if backend.stat_folder(layout.STATE) is None:
                return None  # nothing to index yet (and a read-only command creates nothing)
            path = _refuse_links(backend.local_path(layout.INDEX))
        else:
            path = _cache_file(backend)
        if path is None:
            return None
        try:
            return EntryIndex(backend, path, secret, sharded=store.sharded)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # not a database, malformed, or of another schema
            _warn_once(store.location, "was damaged or foreign and is rebuilt", exc)
            discard_index(store)
            return EntryIndex(backend, path, secret, sharded=store.sharded)
    except INDEX_ERRORS as exc:
        normal = isinstance(exc, (PermissionError, sqlite3.OperationalError))  # read-only...
        level = logging.INFO if normal else logging.WARNING
        _warn_once(store.location, "cannot be used", exc, level)
        return None


def index_failed(store: Any, exc: sqlite3.Error) -> None:
    """Log (once per store and kind) that the index failed; remove it if it is damaged.

    Parameters
    ----------
    store : Store
        The store.
    exc : sqlite3.Error
        What failed: a locked or unwritable index is left alone, a damaged one removed
        (the next listing rebuilds it from the manifests).
    """
    if isinstance(exc, sqlite3.OperationalError):
        _warn_once(store.location, "is locked or cannot be written", exc)
        return
    _warn_once(store.location, "was damaged and is rebuilt", exc)
    with contextlib.suppress(OSError):
        discard_index(store)


def discard_index(store: Any) -> None:
    """Remove the store's index files (a damaged index is rebuilt from the manifests).

    Parameters
    ----------
    store : Store
        The store.
    """
    cached = store.backend.index_file()
    if cached is not None:  # a remote store's, in the local cache
        for local in _local_files(cached):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local)
        return
    for name in layout.INDEX_FILES:
        with contextlib.suppress(FileNotFoundError):
            store.backend.delete(name)
