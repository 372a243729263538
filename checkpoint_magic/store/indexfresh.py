"""Keeping the entry index fresh: which folders changed, and the rows of the files in them.

The rules are the index's (see :mod:`checkpoint_magic.store.index`): a folder whose stat
signature is the one recorded at its last listing is unchanged; a changed one is listed with
one ``stat`` per file and only new or changed files are read again; anything changed within
:data:`~checkpoint_magic.store.indexrows.RACY_SECONDS` is looked at again next time.

In a sharded store (format 2) a namespace's manifests are in ``entries/<ns>/<shard>/``: a
shard folder's mtime moves with its files, the namespace folder's only with its shard
folders. So the namespace folder is listed (for its shard folders) only when it changed,
and each shard folder is compared with its own signature: a commit makes the next refresh
list one shard of a few hundred files, whatever the size of the namespace. The namespace
folder's signature is recorded only after every one of its shard folders was, so a shard
folder can never be missed by a refresh that trusts the namespace folder.

An object store has no folders whose stat tells a change
(:attr:`~checkpoint_magic.store.backends.StoreBackend.tracks_folders` is false): each
namespace's manifests, then its records, are listed in one listing each, every object whose
version (ETag) is not the one recorded is read (in concurrent batches), and the namespace's
row in ``folders`` records a digest of the listing, so that totals kept for an unchanged
store are still reused.

:class:`IndexRefresh` is the half of :class:`~checkpoint_magic.store.index.EntryIndex` that
does this; it is not used on its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any, Protocol

from . import layout
from .backends import Stat, StoreBackend
from .indexrows import EntryRow, signature, trusted
from .manifest import MANIFEST_MAX_BYTES
from .usage import RECORD_MAX, parse_usage
from .walk import entry_files, in_shard, state_files

__all__ = ["NO_FOLDER", "IndexRefresh", "Parser", "folder_signature"]

#: The recorded version of a missing state folder (known: no records, not racy).
NO_FOLDER = "none"


class Parser(Protocol):
    """Parses the manifest ``entries/<ns_dir>/...<key>`` into a row; ``None`` if it is gone.

    Given ``st`` and ``data`` (its listed stat and its bytes, read in a batch), it parses
    those; else it reads the manifest itself.
    """

    def __call__(
        self, ns_dir: str, key: str, st: Stat | None = None, data: bytes | None = None
    ) -> EntryRow | None: ...  # pragma: no cover - a signature


# Rows of one shard: keys that start with it (the range lets SQLite use the primary key).
_IN_SHARD = "key >= ? AND key < ? AND substr(key, 1, 2) = ?"


def _shard_args(shard: str) -> tuple[str, str, str]:
    return shard, shard + "\U0010ffff", shard


def folder_signature(st: Stat | None, now: float) -> str | None:
    """A folder's signature as recorded: ``None`` if it is missing or changed too recently.

    Parameters
    ----------
    st : Stat or None
        The folder's stat.
    now : float
        The time of the listing.

    Returns
    -------
    str or None
        Its :func:`~checkpoint_magic.store.indexrows.signature`, or ``None``.
    """
    return signature(st) if st is not None and trusted(st, now) else None


def _record_slot(name: str) -> tuple[str, str]:
    """``(key, kind)`` of a state file: ``kind`` ``"hits"`` or ``"pin"`` by its suffix, else ``""``
    (a namespace record, or a name the store never writes) with the whole name as key."""
    for suffix, kind in ((layout.HITS, "hits"), (layout.PIN, "pin")):
        if name.endswith(suffix):
            return name[: -len(suffix)], kind
    return name, ""


def _loads(text: str) -> dict[str, int]:
    value = json.loads(text)
    return value if isinstance(value, dict) else {}


class IndexRefresh:
    """Refreshing the rows of :class:`~checkpoint_magic.store.index.EntryIndex`."""

    backend: StoreBackend
    db: sqlite3.Connection
    sharded: bool

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _recorded(
        self, columns: str, table: str, ns_dir: str, where: str = "", args: tuple[str, ...] = ()
    ) -> dict[Any, str | None]:
        """The recorded version of each row of ``ns_dir`` (``None``: not trusted, read again),
        by ``key`` (one column) or by ``(key, kind)``."""
        rows = self.db.execute(
            f"SELECT {columns}, version, trusted FROM {table} WHERE ns_dir = ?{where}",  # noqa: S608
            (ns_dir, *args),
        )
        return {
            (row[0] if len(row) == 3 else row[:-2]): row[-2] if row[-1] else None for row in rows
        }

    def _folder_version(self, name: str) -> str | None:
        row = self.db.execute("SELECT version FROM folders WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def _record(
        self, ns_dir: str, top: str, version: str | None, gone: list[str], rows: dict[str, str]
    ) -> None:
        """Forget the shard folders ``gone`` of ``top`` and their rows, then record ``top``'s
        signature (last: a refresh that trusts it must find every shard folder recorded).

        ``rows`` maps each table to the condition its rows of the namespace's shards meet.
        """
        with self._write():
            for folder in gone:
                args = (ns_dir, *_shard_args(folder.rpartition("/")[2]))
                for table, condition in rows.items():
                    self.db.execute(
                        f"DELETE FROM {table} WHERE ns_dir = ?{condition} AND {_IN_SHARD}",  # noqa: S608
                        args,
                    )
            self.db.executemany("DELETE FROM folders WHERE name = ?", [(g,) for g in gone])
            self.db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (top, version))

    def _shards(
        self, top: str, version: str | None
    ) -> tuple[list[str], list[str], dict[str, str | None]]:
        """``(shard folders of top, recorded ones now gone, the recorded signatures)``.

        ``top`` is listed only if its signature is not ``version`` (``None``: always).
        """
        recorded: dict[str, str | None] = dict(
            self.db.execute(
                "SELECT name, version FROM folders WHERE name > ? AND name < ?",
                (f"{top}/", f"{top}0"),
            ).fetchall()
        )
        if version is not None and self._folder_version(top) == version:
            return list(recorded), [], recorded
        present = [
            f"{top}/{sub}" for sub in self.backend.list_folders(top) if not sub.startswith(".")
        ]
        return present, sorted(set(recorded) - set(present)), recorded

    def _changed(
        self, folders: list[str], recorded: dict[str, str | None]
    ) -> Iterator[tuple[str, str, str | None]]:
        """``(folder, shard, signature)`` of each shard folder not as recorded."""
        for folder in folders:
            version = folder_signature(self.backend.stat_folder(folder), time.time())
            if version is None or recorded.get(folder) != version:
                yield folder, folder.rpartition("/")[2], version

    # ------------------------------------------------------------------ namespaces
    def refresh(self, parse: Parser, ns_dirs: list[str] | None = None) -> None:
        """Bring the rows of ``ns_dirs`` (every namespace folder if None) up to date.

        Parameters
        ----------
        parse : callable
            ``parse(ns_dir, key)`` reads one manifest into an :class:`EntryRow`.
        ns_dirs : list of str, optional
            Only these namespace folders.
        """
        present = self.backend.list_folders(layout.ENTRIES)
        targets = present if ns_dirs is None else [d for d in present if d in ns_dirs]
        known = {r[0] for r in self.db.execute("SELECT DISTINCT ns_dir FROM entries")}
        if gone := (known - set(present)) & (known if ns_dirs is None else set(ns_dirs)):
            with self._write():
                for ns_dir in gone:
                    self._forget_folder(ns_dir)
        for ns_dir in targets:
            self.refresh_entries(ns_dir, parse)
            self.refresh_state(ns_dir)

    def _forget_folder(self, ns_dir: str) -> None:
        for table in ("entries", "refs"):
            self.db.execute(f"DELETE FROM {table} WHERE ns_dir = ?", (ns_dir,))  # noqa: S608
        top = f"{layout.ENTRIES}/{ns_dir}"
        self.db.execute(
            "DELETE FROM folders WHERE name = ? OR (name > ? AND name < ?)",
            (top, f"{top}/", f"{top}0"),
        )

    # ------------------------------------------------------------------ manifests
    def refresh_entries(self, ns_dir: str, parse: Parser) -> bool:
        """Re-list the folders of ``entries/<ns_dir>`` that changed; re-read changed manifests.

        Parameters
        ----------
        ns_dir : str
            A namespace folder.
        parse : callable
            ``parse(ns_dir, key)`` reads one manifest into an :class:`EntryRow`.

        Returns
        -------
        bool
            Whether a folder was listed (it had changed, or was never listed).
        """
        if not self.backend.tracks_folders:
            self._listed_entries(ns_dir, parse)
            return True
        top = f"{layout.ENTRIES}/{ns_dir}"
        # A folder's stat is taken before listing it: a change during the listing leaves
        # the recorded signature behind the folder's, so the next refresh lists it again.
        version = folder_signature(self.backend.stat_folder(top), time.time())
        if not self.sharded:
            if version is not None and self._folder_version(top) == version:
                return False
            self._list_entries(ns_dir, top, None, parse, version)
            return True
        shards, gone, recorded = self._shards(top, version)
        listed = False
        for folder, shard, shard_version in self._changed(shards, recorded):
            listed = True
            self._list_entries(ns_dir, folder, shard, parse, shard_version)
        if gone or self._folder_version(top) != version or version is None:
            self._record(ns_dir, top, version, gone, {"entries": "", "refs": ""})
            listed = True
        return listed

    def _list_entries(
        self, ns_dir: str, folder: str, shard: str | None, parse: Parser, version: str | None
    ) -> None:
        """List ``folder`` (of ``shard``, or every key without shards); update its rows."""
        where, args = ("", ()) if shard is None else (f" AND {_IN_SHARD}", _shard_args(shard))
        known = self._recorded("key", "entries", ns_dir, where, args)
        listed: set[str] = set()
        fresh: list[EntryRow] = []
        for key, st in self.backend.list_files(folder):
            if not in_shard(key, shard):
                continue
            if known.get(key) == signature(st):
                listed.add(key)
                continue
            row = parse(ns_dir, key)
            if row is not None:  # else removed meanwhile
                listed.add(key)
                fresh.append(row)
        with self._write():
            self._store_rows(ns_dir, [k for k in known if k not in listed], fresh)
            self.db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (folder, version))

    def _store_rows(self, ns_dir: str, removed: list[str], fresh: list[EntryRow]) -> None:
        """Drop the rows of the keys ``removed``, write ``fresh`` (inside a transaction)."""
        db = self.db
        gone = [(ns_dir, k) for k in removed]
        db.executemany("DELETE FROM entries WHERE ns_dir = ? AND key = ?", gone)
        db.executemany("DELETE FROM refs WHERE ns_dir = ? AND key = ?", gone)
        db.executemany("DELETE FROM refs WHERE ns_dir = ? AND key = ?", [r[:2] for r in fresh])
        marks = ", ".join("?" * len(EntryRow._fields))
        db.executemany(f"INSERT OR REPLACE INTO entries VALUES ({marks})", fresh)  # noqa: S608
        db.executemany(
            "INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)",
            [
                (digest, r.ns_dir, r.key, size)
                for r in fresh
                if r.damage is None and r.blobs != "{}"
                for digest, size in _loads(r.blobs).items()
            ],
        )

    # ------------------------------------------------------------------ usage records and pins
    def refresh_state(self, ns_dir: str) -> bool:
        """Re-list the folders of ``state/<ns_dir>`` that changed; re-read changed records.

        Parameters
        ----------
        ns_dir : str
            A namespace folder.

        Returns
        -------
        bool
            Whether a folder was listed.
        """
        if not self.backend.tracks_folders:
            self._listed_state(ns_dir)
            return True
        top = layout.state_folder(ns_dir)
        st = self.backend.stat_folder(top)
        # A name never hit nor pinned has no state folder: that is known (no records), not
        # racy, so its totals can be kept; a folder appearing later has a signature of its own.
        version = NO_FOLDER if st is None else folder_signature(st, time.time())
        unchanged = version is not None and self._folder_version(top) == version
        if not self.sharded:
            if unchanged:
                return False
            self._list_state(ns_dir, top, None, version, record=True)
            return True
        shards, gone, recorded = self._shards(top, None if st is None else version)
        listed = False
        for folder, shard, shard_version in self._changed(shards, recorded):
            listed = True
            self._list_state(ns_dir, folder, shard, shard_version, record=True)
        if not unchanged or gone:
            if self._list_state(ns_dir, top, "", version, record=False) or shards:
                version = None if version == NO_FOLDER else version  # appeared meanwhile
            self._record(ns_dir, top, version, gone, {"state": " AND kind != ''"})
            listed = True
        return listed

    def _list_state(
        self, ns_dir: str, folder: str, shard: str | None, version: str | None, *, record: bool
    ) -> bool:
        """List ``folder``'s records and update their rows; return whether it had files.

        ``shard`` is ``None`` for a format-1 folder (every record), ``""`` for the namespace
        records directly in a sharded namespace's folder, else the shard of the folder.
        """
        now = time.time()
        args: tuple[str, ...] = ()
        if shard is None:
            where = ""
        elif shard == "":
            where = " AND kind = ''"
        else:
            where, args = f" AND kind != '' AND {_IN_SHARD}", _shard_args(shard)
        known = self._recorded("key, kind", "state", ns_dir, where, args)
        listed: set[tuple[str, str]] = set()
        fresh: list[tuple[Any, ...]] = []
        files = self.backend.list_files(folder)
        if files and version == NO_FOLDER:  # it appeared meanwhile: looked at again
            version = None
        for name, st in files:
            key, kind = name, ""  # a namespace record, or a name the store never writes
            if shard != "":
                key, kind = _record_slot(name)
                if shard and not (kind and in_shard(key, shard)):
                    continue  # not a record of this shard's entries
            listed.add((key, kind))
            if known.get((key, kind)) == signature(st):
                continue
            hits = last_used = None
            if kind == "hits":
                try:
                    f, st = self.backend.open_read(f"{folder}/{name}")
                    with f:
                        data = f.read(256)
                except FileNotFoundError:
                    listed.discard((key, kind))
                    continue
                hits, last_used = parse_usage(data, st.mtime)
            fresh.append(
                (ns_dir, key, kind, signature(st), trusted(st, now), st.size, hits, last_used)
            )
        with self._write():
            self.db.executemany(
                "DELETE FROM state WHERE ns_dir = ? AND key = ? AND kind = ?",
                [(ns_dir, key, kind) for key, kind in known if (key, kind) not in listed],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh
            )
            if record:
                self.db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (folder, version))
        return bool(files)

    def refresh_all_state(self) -> None:
        """Refresh every ``state/<namespace>`` folder (namespaces without entries too)."""
        present = self.backend.list_folders(layout.STATE)
        known = {r[0] for r in self.db.execute("SELECT DISTINCT ns_dir FROM state")}
        with self._write():
            for ns_dir in known - set(present):
                self.db.execute("DELETE FROM state WHERE ns_dir = ?", (ns_dir,))
        for ns_dir in present:
            self.refresh_state(ns_dir)

    # ------------------------------------------------------------------ stores without folders
    def _read(self, items: list[tuple[str, Stat]], limit: int) -> list[bytes | None]:
        """The bytes of the listed objects ``(name, stat)``: the small ones in one batch."""
        small = [name for name, st in items if st.size <= limit]
        batch = iter(self.backend.read_many(small, limit))
        found: list[bytes | None] = []
        for name, st in items:
            if st.size <= limit:
                found.append(next(batch))
                continue
            try:  # larger than any manifest or record: its first bytes tell it is damaged
                found.append(self.backend.read_bytes(name, limit))
            except FileNotFoundError:
                found.append(None)
        return found

    def _listed_entries(self, ns_dir: str, parse: Parser) -> None:
        """Refresh a namespace's manifests from one listing of them (a store without folders).

        Every object whose version is not the one recorded (trusted) is read, in one batch;
        the namespace's entry in ``folders`` records a digest of the listing, ``None`` while
        a row is not trusted yet, so that totals kept for it are reused only while nothing
        changed.
        """
        now = time.time()
        known = self._recorded("key", "entries", ns_dir)
        files = entry_files(self.backend, ns_dir, sharded=self.sharded)
        changed = [(key, st) for key, st in files if known.get(key) != signature(st)]
        names = [(layout.entry_in(ns_dir, key, sharded=self.sharded), st) for key, st in changed]
        fresh: list[EntryRow] = []
        gone: set[str] = set()
        for (key, st), data in zip(changed, self._read(names, MANIFEST_MAX_BYTES), strict=True):
            row = None if data is None else parse(ns_dir, key, st, data)
            if row is None:
                gone.add(key)
            else:
                fresh.append(row)
        listed = {key for key, _ in files} - gone
        version = _listing_digest(files, now) if all(r.trusted for r in fresh) else None
        with self._write():
            # Rows as they are now (another process may have added some since ``known``):
            # kept under this listing's digest, they must be this listing's exactly.
            rows = self.db.execute("SELECT key FROM entries WHERE ns_dir = ?", (ns_dir,))
            self._store_rows(ns_dir, [k for (k,) in rows if k not in listed], fresh)
            top = f"{layout.ENTRIES}/{ns_dir}"
            self.db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (top, version))

    def _listed_state(self, ns_dir: str) -> None:
        """Refresh a namespace's usage records and pins from one listing of them."""
        now = time.time()
        top = layout.state_folder(ns_dir)
        known = self._recorded("key, kind", "state", ns_dir)
        listed: dict[tuple[str, str], tuple[str, Stat]] = {}
        for leaf, name, st in state_files(self.backend, ns_dir, sharded=self.sharded):
            key, kind = leaf, ""  # a namespace record, or a name the store never writes
            in_top = name == f"{top}/{leaf}"
            if not (self.sharded and in_top):  # as _list_state: an entry's record
                key, kind = _record_slot(leaf)
                if self.sharded and not kind:
                    continue  # not a record of its shard's entries
            listed[(key, kind)] = (name, st)
        changed = [
            (slot, name, st)
            for slot, (name, st) in listed.items()
            if known.get(slot) != signature(st)
        ]
        hits = [(name, st) for (_, kind), name, st in changed if kind == "hits"]
        counts = dict(zip([n for n, _ in hits], self._read(hits, RECORD_MAX), strict=True))
        fresh: list[tuple[Any, ...]] = []
        for (key, kind), name, st in changed:
            used: tuple[int | None, float | None] = (None, None)
            if kind == "hits":
                data = counts[name]
                if data is None:  # removed meanwhile
                    del listed[(key, kind)]
                    continue
                used = parse_usage(data[:RECORD_MAX], st.mtime)
            fresh.append((ns_dir, key, kind, signature(st), trusted(st, now), st.size, *used))
        version = (
            _listing_digest([(f"{k}\0{t}", st) for (k, t), (_, st) in listed.items()], now)
            if all(r[4] for r in fresh)
            else None
        )
        with self._write():  # as _listed_entries: the rows as they are now
            rows = self.db.execute("SELECT key, kind FROM state WHERE ns_dir = ?", (ns_dir,))
            self.db.executemany(
                "DELETE FROM state WHERE ns_dir = ? AND key = ? AND kind = ?",
                [(ns_dir, key, kind) for key, kind in rows.fetchall() if (key, kind) not in listed],
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh
            )
            self.db.execute("INSERT OR REPLACE INTO folders VALUES (?, ?)", (top, version))


def _listing_digest(files: list[tuple[str, Stat]], now: float) -> str | None:
    """What a listing of ``(name, stat)`` says, as a digest; ``None`` if one is too recent."""
    if not all(trusted(st, now) for _, st in files):
        return None
    text = "\n".join(f"{name} {signature(st)}" for name, st in sorted(files))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
