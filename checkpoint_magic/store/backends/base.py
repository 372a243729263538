"""The store backend interface: the I/O primitives a :class:`~.store.Store` is built on.

A backend moves bytes under *names* (``/``-separated paths relative to the store root, all
spelled by :mod:`checkpoint_magic.store.layout`) and nothing else: it knows no manifests,
digests, signatures, budgets or usage. :class:`~checkpoint_magic.store.Store` owns those,
once, above this seam (as diskcache's ``Cache`` sits on ``Disk`` and joblib's memory on
``StoreBackendBase``).

What a backend must guarantee:

* :meth:`StoreBackend.publish` is atomic: a reader sees the whole new object or the old
  one (or none), never a part. With ``replace=False`` it is *create-if-absent*: when the
  name exists already the staged data is dropped and ``False`` returned.
* :meth:`StoreBackend.create` is an atomic create-if-absent of a small object (leases).
* It never writes outside the store: names are relative, and a backend refuses
  (:class:`UnsafeStoreError`) a store whose folders were replaced by links.
* Missing names raise :class:`FileNotFoundError` from reads and are ``False``/``None``
  elsewhere; other faults are :class:`OSError` (the store turns them into warnings).

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store.backends import open_backend
>>> backend = open_backend(tempfile.mkdtemp())
>>> backend.write("state/m.f/notes", b"hello")
True
>>> backend.read_bytes("state/m.f/notes"), backend.stat("state/m.f/notes").size
(b'hello', 5)
>>> [name for name, _ in backend.list_files("state/m.f")]
['notes']
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

from ..layout import staging as new_staging_name
from .stats import TICK_SECONDS, Staged, Stat, UnsafeStoreError

__all__ = ["TICK_SECONDS", "Staged", "Stat", "StoreBackend", "UnsafeStoreError"]


class StoreBackend(abc.ABC):
    """I/O primitives over the names of one store (abstract).

    A new backend implements the abstract methods (about a dozen short ones) and is made
    known with :func:`~checkpoint_magic.store.backends.register_backend`. Every ``name`` is a
    ``/``-separated path relative to the store root; ``""`` is the root itself.
    """

    #: Whether :meth:`open_read` returns the store's own local files, whose stat signature
    #: (device, inode, size, mtime, ctime) changes with any change of their content: then a
    #: blob this process verified may be read again without hashing while it is unchanged.
    files_are_local: bool = False

    #: Whether :meth:`stat_folder`'s version changes with every file added, removed or
    #: renamed in (a local directory's mtime does): the entry index then lists only changed
    #: folders; else every namespace, with one :meth:`list_tree`.
    tracks_folders: bool = False

    #: Where the store is, as the user would write it (a path or a URL).
    location: str

    # ------------------------------------------------------------------ the store itself
    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store's root exists (a deleted store is recreated on the next write).

        Returns
        -------
        bool
            ``True`` if the root folder (or URL prefix) exists; never raises for a missing root.
        """

    def is_empty(self) -> bool:
        """Whether nothing is stored at the location (it may not exist yet).

        Returns
        -------
        bool
            ``True`` if the root is missing or holds neither files nor folders.

        Raises
        ------
        OSError
            When the location cannot be listed, e.g. ``NotADirectoryError`` when it is a
            file.
        """
        return not self.exists() or not (self.list_folders("") or self.list_files(""))

    @abc.abstractmethod
    def ensure(self, folders: Sequence[str]) -> None:
        """Create the root and ``folders`` if missing; refuse them if they are links.

        Must be idempotent and safe to call from several processes at once.

        Parameters
        ----------
        folders : sequence of str
            Folder names (relative to the root) that must exist afterwards.

        Raises
        ------
        UnsafeStoreError
            A folder is a link (or another non-folder) the store did not create.
        OSError
            The root cannot be created (not a directory, permission denied...).
        """

    # ------------------------------------------------------------------ reading
    @abc.abstractmethod
    def open_read(self, name: str) -> tuple[BinaryIO, Stat]:
        """Open ``name`` for reading (a binary file with ``readinto``) and stat it.

        The stat must describe the object the returned file reads (not a later replacement).

        Parameters
        ----------
        name : str
            Name of a stored object.

        Returns
        -------
        file : binary file
            Open for reading, positioned at 0; the caller closes it.
        stat : Stat
            Size, mtime and version of that object.

        Raises
        ------
        FileNotFoundError
            Nothing is stored under ``name``.
        """

    def read_bytes(self, name: str, limit: int | None = None) -> bytes:
        """The bytes stored under ``name`` (at most ``limit`` + 1 of them, to detect oversize).

        Parameters
        ----------
        name : str
            Name of a stored object.
        limit : int, optional
            Read at most ``limit + 1`` bytes, so a caller can tell an object is too large.

        Returns
        -------
        bytes
            The object's content (or its first ``limit + 1`` bytes).

        Raises
        ------
        FileNotFoundError
            Nothing is stored under ``name``.
        """
        f, _ = self.open_read(name)
        with f:
            return f.read() if limit is None else f.read(limit + 1)

    def read_many(self, names: Sequence[str], limit: int) -> list[bytes | None]:
        """Several small objects, each read as :meth:`read_bytes` (concurrently by URL stores).

        Parameters
        ----------
        names : sequence of str
            Names of stored objects.
        limit : int
            Read at most ``limit + 1`` bytes of each.

        Returns
        -------
        list of bytes or None
            In the order of ``names``; ``None`` for a name nothing is stored under.
        """
        found: list[bytes | None] = []
        for name in names:
            try:
                found.append(self.read_bytes(name, limit))
            except FileNotFoundError:
                found.append(None)
        return found

    def write_many(self, items: Mapping[str, bytes]) -> None:
        """Replace several small objects, each as :meth:`write` (concurrently by URL stores).

        Parameters
        ----------
        items : mapping of str to bytes
            The new content of each name.
        """
        for name, data in items.items():
            self.write(name, data)

    def index_file(self) -> str | None:
        """The local file where this machine keeps the entry index of a remote store.

        A local store keeps its index inside the store (``state/``); a remote store's
        backend may name a file of its local cache (the URL one does).

        Returns
        -------
        str or None
            An absolute local path, or ``None`` (the default): no index outside the store.
        """
        return None

    def read_small(self, name: str, limit: int) -> tuple[bytes, Stat]:
        """The bytes of a small object, at most ``limit`` + 1 of them, and its stat, together.

        The hit path reads manifests with it; a backend may override it to read in fewer
        calls (the local one opens, stats, reads and closes a descriptor: no file object).

        Parameters
        ----------
        name : str
            Name of a stored object.
        limit : int
            Read at most ``limit + 1`` bytes, so a caller can tell an object is too large;
            fewer when the object is smaller (no buffer of ``limit`` bytes is allocated).

        Returns
        -------
        data : bytes
            The object's content (or its first ``limit + 1`` bytes).
        stat : Stat
            Size, mtime and version of the object read; ``mtime`` 0.0 and ``version`` None
            from a backend that reads in one request without the metadata (the URL one).

        Raises
        ------
        FileNotFoundError
            Nothing is stored under ``name``.
        """
        f, st = self.open_read(name)
        with f:
            return f.read(min(st.size, limit) + 1), st

    def local_path(self, name: str) -> str | None:
        """A local file path of ``name`` that can be memory-mapped, or ``None`` if there is none.

        Parameters
        ----------
        name : str
            Name of a stored object.

        Returns
        -------
        str or None
            An absolute path whose file stays valid while the object is not deleted; the
            default (remote backends) is ``None``.
        """
        return None

    @abc.abstractmethod
    def stat(self, name: str) -> Stat | None:
        """Size and modification time of ``name``; ``None`` if nothing is stored there.

        Parameters
        ----------
        name : str
            Name of a stored object.

        Returns
        -------
        Stat or None
            ``None`` for a missing name (or a link, which is never followed); never raises
            :class:`FileNotFoundError`.
        """

    def version(self, name: str) -> Any:
        """The ``version`` of :meth:`stat` alone: the cheapest check that ``name`` is unchanged.

        The hit path calls it on every hit to reuse a manifest it already verified; a backend
        may override it to skip building a :class:`Stat`.

        Parameters
        ----------
        name : str
            Name of a stored object.

        Returns
        -------
        object or None
            ``stat(name).version``; ``None`` for a missing name.
        """
        st = self.stat(name)
        return None if st is None else st.version

    def stat_folder(self, folder: str) -> Stat | None:
        """A folder's stat whose ``version`` changes whenever an object is added to or removed.

        Parameters
        ----------
        folder : str
            Name of a folder.

        Returns
        -------
        Stat or None
            ``None`` (the default) when the backend cannot tell: callers then re-list the folder.
        """
        return None

    @abc.abstractmethod
    def list_files(self, folder: str) -> list[tuple[str, Stat]]:
        """``(name, stat)`` of the files directly in ``folder`` (no links), sorted by name.

        Parameters
        ----------
        folder : str
            Name of a folder (``""`` for the root).

        Returns
        -------
        list of (str, Stat)
            Base names (not full names) with their stats; ``[]`` if the folder is missing.
        """

    def list_names(self, folder: str) -> list[str]:
        """Names of the files directly in ``folder`` (no links), sorted: :meth:`list_files`
        without the stats, which a local folder lists without a ``stat`` call per file.

        Parameters
        ----------
        folder : str
            Name of a folder (``""`` for the root).

        Returns
        -------
        list of str
            Base names; ``[]`` if the folder is missing.
        """
        return [name for name, _ in self.list_files(folder)]

    def first_file(self, folder: str) -> str | None:
        """The name of one file directly in ``folder`` (no links), without listing them all.

        Parameters
        ----------
        folder : str
            Name of a folder.

        Returns
        -------
        str or None
            A base name; ``None`` if the folder is missing or holds no file.
        """
        found = self.list_files(folder)
        return found[0][0] if found else None

    def list_tree(self, folder: str) -> list[tuple[str, Stat]]:
        """``(name, stat)`` of every file below ``folder`` (no links), sorted by name.

        The default walks :meth:`list_folders` and :meth:`list_files`; an object store lists
        a prefix in one paginated request instead.

        Parameters
        ----------
        folder : str
            Name of a folder.

        Returns
        -------
        list of (str, Stat)
            Names relative to ``folder`` (``"ab/<key>"``); ``[]`` if the folder is missing.
        """
        found = list(self.list_files(folder))
        for sub in self.list_folders(folder):
            found += [(f"{sub}/{n}", st) for n, st in self.list_tree(f"{folder}/{sub}")]
        return sorted(found, key=lambda item: item[0])

    @abc.abstractmethod
    def list_folders(self, folder: str) -> list[str]:
        """Names of the folders directly in ``folder`` (no links), sorted.

        Parameters
        ----------
        folder : str
            Name of a folder (``""`` for the root).

        Returns
        -------
        list of str
            Base names of the sub-folders; ``[]`` if the folder is missing.
        """

    # ------------------------------------------------------------------ writing
    @abc.abstractmethod
    def stage(self, name: str, views: Sequence[memoryview], *, fsync: bool = False) -> Staged:
        """Write ``views`` back to back under the staging name ``name`` (never an existing object).

        The data becomes visible under its final name only through :meth:`publish`; on
        failure nothing may be left under its final name.

        Parameters
        ----------
        name : str
            A fresh staging name (see :func:`checkpoint_magic.store.layout.staging`).
        views : sequence of memoryview
            Byte buffers written in order.
        fsync : bool, default False
            Make the data durable before returning (where the backend can).

        Returns
        -------
        Staged
            The handle to pass to :meth:`publish` or :meth:`discard`.

        Raises
        ------
        OSError
            The data could not be written (disk full, permission denied...).
        """

    @abc.abstractmethod
    def publish(self, staged: Staged, name: str, *, replace: bool = True) -> bool:
        """Move ``staged`` to ``name`` atomically, creating ``name``'s folder if needed.

        A concurrent reader sees the old object or the new one, never a part. With
        ``replace=False`` this is create-if-absent: if ``name`` exists, the staged data is
        dropped and ``False`` is returned. The staged data is gone in every case.

        Parameters
        ----------
        staged : Staged
            What :meth:`stage` returned.
        name : str
            The final name.
        replace : bool, default True
            Replace an existing object; if ``False``, keep it.

        Returns
        -------
        bool
            ``True`` if ``name`` now holds the staged data.

        Raises
        ------
        TypeError
            When ``staged`` was not made by this backend's :meth:`stage` (backends that can
            tell).
        OSError
            When the data cannot be moved into place.
        """

    @abc.abstractmethod
    def discard(self, staged: Staged) -> None:
        """Drop staged data that will not be published (no error if it is already gone).

        Parameters
        ----------
        staged : Staged
            What :meth:`stage` returned.
        """

    def write(self, name: str, data: bytes, *, staging: str | None = None) -> bool:
        """Replace ``name`` with ``data`` atomically (through a staging name).

        Parameters
        ----------
        name : str
            The final name.
        data : bytes
            The new content.
        staging : str, optional
            The staging name to use (a fresh one by default).

        Returns
        -------
        bool
            ``True`` if ``name`` now holds ``data``.
        """
        staged = self.stage(staging or new_staging_name(), [memoryview(data)])
        return self.publish(staged, name)

    @abc.abstractmethod
    def create(self, name: str, data: bytes, *, whole: bool = True) -> bool:
        """Create ``name`` holding ``data`` if nothing is stored there, atomically.

        The lease primitive: two processes creating the same name cannot both succeed, and
        (unless ``whole=False``) a reader never sees a partly written object.

        Parameters
        ----------
        name : str
            The name to create (its folder is created if needed).
        data : bytes
            The content (small: a lease's owner record).
        whole : bool, default True
            ``False`` lets a reader see the object empty or partly written for a moment,
            if that makes creating it cheaper (the local backend then writes it in place
            instead of linking a staged copy): for records whose readers treat an
            unreadable one as just created.

        Returns
        -------
        bool
            ``True`` if this call created ``name``; ``False`` if something was stored there.
        """

    @abc.abstractmethod
    def touch(self, name: str) -> bool:
        """Set the modification time of ``name`` to now (refresh a lease).

        Parameters
        ----------
        name : str
            Name of a stored object; it is never created.

        Returns
        -------
        bool
            ``False`` if ``name`` is gone.
        """

    @abc.abstractmethod
    def move(self, name: str, new_name: str) -> bool:
        """Rename ``name`` to ``new_name``, replacing it (atomically where the backend can).

        Parameters
        ----------
        name : str
            Name of a stored object.
        new_name : str
            Its new name (its folder is created if needed).

        Returns
        -------
        bool
            ``False`` if ``name`` is gone.
        """

    @abc.abstractmethod
    def delete(self, name: str) -> bool:
        """Remove ``name``.

        Parameters
        ----------
        name : str
            Name of a stored object.

        Returns
        -------
        bool
            ``False`` if it was already gone (not an error: deletes race with each other).
        """

    @abc.abstractmethod
    def delete_folder(self, folder: str) -> bool:
        """Remove an empty folder.

        Parameters
        ----------
        folder : str
            Name of a folder.

        Returns
        -------
        bool
            ``False`` if it is gone or not empty (a non-empty folder is never removed).
        """
