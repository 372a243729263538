"""The entries of a store as a catalogue: listing, iterating, and their small state records.

Listing and iterating the entries, and the small state records next to them (hit counts, pins,
per-namespace records such as the last miss).

:class:`EntryRecords` is the half of :class:`~checkpoint_magic.store.Store` that handles these;
it is not used on its own.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import config
from . import layout
from .backends import TICK_SECONDS, StoreBackend, UnsafeStoreError
from .layout import namespace_dir
from .manifest import MANIFEST_MAX_BYTES, decode_manifest
from .usage import flush_usage, read_usage, record_hit
from .walk import entry_files

__all__ = ["EntryRecords"]

logger = logging.getLogger("checkpoint_magic.store.core")


class EntryRecords:
    """Entry listing and state records, for :class:`~checkpoint_magic.store.Store`."""

    backend: StoreBackend
    location: str
    prepare_write: Callable[[], None]
    check_format: Callable[[], None]
    _format_checked: bool
    _sharded: bool
    _has_entries: dict[str, tuple[Any, str | None]]

    @property
    def sharded(self) -> bool:
        """Whether entries are kept in shard folders (format 2; ``False`` for format 1).

        Returns
        -------
        bool
            As the store's ``FORMAT`` says (a store not created yet will be sharded).

        Raises
        ------
        StoreFormatError
            When ``FORMAT`` names a newer format than this version reads, or is foreign.
        """
        if not self._format_checked:
            self.check_format()
        return self._sharded

    def delete_entry(self, namespace: str, key: str) -> bool:
        """Remove an entry's manifest (its blobs are freed by garbage collection).

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.

        Returns
        -------
        bool
            Whether a manifest was removed.
        """
        return self.backend.delete(layout.entry(namespace, key, sharded=self.sharded))

    def has_entries(self, namespace: str) -> bool:
        """Whether the namespace has an entry file (cheap: no manifest is read, no listing
        while a file seen before is still there).

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.

        Returns
        -------
        bool
            Whether at least one entry file exists.
        """
        folder = layout.entry_folder(namespace)
        if self.backend.local_path(folder) is None:  # no folder times: only a file is a proof
            seen = self._has_entries.get(folder, (None, None))[1]
            if seen is not None and self.backend.stat(f"{folder}/{seen}") is not None:
                return True  # one HEAD, not a listing of the folders and of a shard
            found = self._first_entry(folder)
            self._has_entries[folder] = (None, found)
            return found is not None
        folder_stat = self.backend.stat_folder(folder)
        if folder_stat is None:
            return False
        known = self._has_entries.get(folder)
        if known is not None:
            # Without shards its mtime moves with every file added or removed; with shards
            # only with shard folders, so only a file seen is a proof.
            if known[0] == folder_stat.version and not self.sharded:
                return known[1] is not None
            if known[1] is not None and self.backend.stat(f"{folder}/{known[1]}") is not None:
                return True  # the file seen last time is still there: no listing needed
        found = self._first_entry(folder)  # a miss must not cost a full listing
        if time.time() - folder_stat.mtime > TICK_SECONDS:  # not changed within a tick
            self._has_entries[folder] = (folder_stat.version, found)
        elif found is not None:  # a file name stays a valid hint however recent the folder
            self._has_entries[folder] = (None, found)
        return found is not None

    def _first_entry(self, folder: str) -> str | None:
        """A manifest file in ``folder`` (a namespace's), relative to it; ``None`` if none."""
        if not self.sharded:
            return self.backend.first_file(folder)
        for shard in self.backend.list_folders(folder):
            name = self.backend.first_file(f"{folder}/{shard}")
            if name is not None:
                return f"{shard}/{name}"
        return None

    def entry_keys_by_age(self, namespace: str) -> list[str]:
        """Keys of the namespace's entries, most recently written first.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.

        Returns
        -------
        list of str
            The keys, newest first.
        """
        files = entry_files(self.backend, namespace_dir(namespace), sharded=self.sharded)
        return [n for n, _ in sorted(files, key=lambda f: f[1].mtime, reverse=True)]

    def iter_entry_keys(self, namespace: str | None = None) -> Iterator[tuple[str, str]]:
        """Yield ``(namespace folder, key)`` of every entry (of one namespace if given).

        Parameters
        ----------
        namespace : str, optional
            Only this namespace; every namespace when ``None``.

        Yields
        ------
        tuple of (str, str)
            ``(namespace folder, key)`` of each entry.
        """
        folders = (
            [namespace_dir(namespace)]
            if namespace is not None
            else self.backend.list_folders(layout.ENTRIES)
        )
        sharded = self.sharded
        for folder in folders:
            for key, _ in entry_files(self.backend, folder, sharded=sharded):
                yield folder, key

    def iter_manifests(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield every readable manifest.

        Damaged ones, and ones refused because signing is required and they are unsigned or
        wrongly signed, are skipped with a log line.

        Parameters
        ----------
        namespace : str, optional
            Only this namespace; every namespace when ``None``.

        Yields
        ------
        dict
            Each readable manifest.
        """
        for folder, key in self.iter_entry_keys(namespace):
            name = layout.entry_in(folder, key, sharded=self.sharded)
            try:
                data = self.backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
                decoded, damage, problem = decode_manifest(data, config.secret_key())
            except FileNotFoundError:
                continue
            if decoded is None or problem is not None:
                logger.warning("skipping %s: %s", name, damage or problem)
                continue
            yield decoded

    # ------------------------------------------------------------------ records, usage and pins
    def write_record(self, namespace: str, name: str, data: bytes) -> None:
        """Replace a namespace record ``state/<namespace>/<name>`` (see ``NAMESPACE_RECORDS``).

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        name : str
            One of :data:`~checkpoint_magic.store.layout.NAMESPACE_RECORDS`.
        data : bytes
            The record's new content.
        """
        self.prepare_write()
        self.backend.write(layout.namespace_record(namespace, name), data)

    def read_record(self, namespace: str, name: str, limit: int = 1 << 20) -> bytes | None:
        """The bytes of a namespace record, ``None`` if it is missing.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        name : str
            One of :data:`~checkpoint_magic.store.layout.NAMESPACE_RECORDS`.
        limit : int, default 1 MiB
            Read at most this many bytes.

        Returns
        -------
        bytes or None
            The record's bytes; ``None`` if it does not exist.
        """
        try:
            return self.backend.read_bytes(layout.namespace_record(namespace, name), limit=limit)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def entry_exists(self, namespace: str, key: str) -> bool:
        """Whether a manifest is stored for ``key`` (readable or not).

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.

        Returns
        -------
        bool
            Whether a manifest file exists for ``key``.
        """
        return self.backend.stat(layout.entry(namespace, key, sharded=self.sharded)) is not None

    def record_use(self, namespace: str, key: str) -> None:
        """Count a hit of an entry (in memory; written in batches by a timer thread and at exit).

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.
        """
        sharded = self._sharded if self._format_checked else self.sharded  # a hit checked it
        record_hit(self.backend, layout.entry_state(namespace, key, layout.HITS, sharded=sharded))

    def usage(self, namespace: str, key: str) -> tuple[int, float | None]:
        """``(hits, last used)`` of an entry; last used is ``None`` if it was never hit.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.

        Returns
        -------
        tuple of (int, float or None)
            The hit count and the time of the last hit.
        """
        flush_usage()
        name = layout.entry_state(namespace, key, layout.HITS, sharded=self.sharded)
        return read_usage(self.backend, name)

    def set_pinned(self, namespace: str, key: str, pinned: bool = True) -> None:
        """Pin (or unpin) an entry: pinned entries are never evicted by garbage collection.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.
        pinned : bool, default True
            Pin (``True``) or unpin (``False``).

        Raises
        ------
        UnsafeStoreError
            When the pin's name is taken by something the store did not write (a link?).
        """
        name = layout.entry_state(namespace, key, layout.PIN, sharded=self.sharded)
        if pinned:
            self.prepare_write()
            if not self.backend.create(name, b"") and not self.is_pinned(namespace, key):
                raise UnsafeStoreError(
                    errno.EEXIST,
                    f"{self.location}/{name} exists and is not a pin the store wrote (a link?); "
                    "remove it, then pin again",
                )
        else:
            self.backend.delete(name)

    def is_pinned(self, namespace: str, key: str) -> bool:
        """Whether the entry is pinned.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.

        Returns
        -------
        bool
            Whether the entry is pinned.
        """
        name = layout.entry_state(namespace, key, layout.PIN, sharded=self.sharded)
        return self.backend.stat(name) is not None
