"""The store backend interface: the I/O primitives a :class:`~checkpoint_magic.store.Store` is built on.

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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from ...exceptions import CheckpointError
from ..layout import staging as new_staging_name

__all__ = ["Staged", "Stat", "StoreBackend", "UnsafeStoreError"]


class UnsafeStoreError(CheckpointError, OSError):
    """A folder or file of the store is a link the store did not create; nothing is written through it."""


@dataclass(frozen=True)
class Stat:
    """What a backend knows of a stored object: size, modification time, and an identity.

    ``version`` changes whenever the object is replaced (a local file's inode and mtime,
    an object store's ETag); the store uses it to reuse a manifest it already verified.
    """

    size: int
    mtime: float
    version: Any = None


@dataclass
class Staged:
    """Data written to a staging name, not yet visible under its final name (see :meth:`StoreBackend.stage`)."""

    name: str
    size: int


class StoreBackend(abc.ABC):
    """I/O primitives over the names of one store (abstract).

    A new backend implements the abstract methods (about a dozen short ones) and is made
    known with :func:`~checkpoint_magic.store.backends.register_backend`.
    """

    #: Where the store is, as the user would write it (a path or a URL).
    location: str

    # ------------------------------------------------------------------ the store itself
    @abc.abstractmethod
    def exists(self) -> bool:
        """Whether the store's root exists (a deleted store is recreated on the next write)."""

    def is_empty(self) -> bool:
        """Whether nothing is stored at the location (it may not exist yet)."""
        return not self.exists() or not (self.list_folders("") or self.list_files(""))

    @abc.abstractmethod
    def ensure(self, folders: Sequence[str]) -> None:
        """Create the root and ``folders`` if missing; refuse them if they are links.

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

        Raises
        ------
        FileNotFoundError
            Nothing is stored under ``name``.
        """

    def read_bytes(self, name: str, limit: int | None = None) -> bytes:
        """The bytes stored under ``name`` (at most ``limit`` + 1 of them, to detect oversize).

        Raises
        ------
        FileNotFoundError
            Nothing is stored under ``name``.
        """
        f, _ = self.open_read(name)
        with f:
            return f.read() if limit is None else f.read(limit + 1)

    def local_path(self, name: str) -> str | None:
        """A local file path of ``name`` that can be memory-mapped, or ``None`` if the backend has none."""
        return None

    @abc.abstractmethod
    def stat(self, name: str) -> Stat | None:
        """Size and modification time of ``name``; ``None`` if nothing is stored there."""

    def stat_folder(self, folder: str) -> Stat | None:
        """A folder's stat whose ``version`` changes whenever an object is added to or removed from it.

        ``None`` (the default) when the backend cannot tell: callers then re-list the folder.
        """
        return None

    @abc.abstractmethod
    def list_files(self, folder: str) -> list[tuple[str, Stat]]:
        """``(name, stat)`` of the files directly in ``folder`` (no links), sorted by name; ``[]`` if none."""

    @abc.abstractmethod
    def list_folders(self, folder: str) -> list[str]:
        """Names of the folders directly in ``folder`` (no links), sorted; ``[]`` if none."""

    # ------------------------------------------------------------------ writing
    @abc.abstractmethod
    def stage(self, name: str, views: Sequence[memoryview], *, fsync: bool = False) -> Staged:
        """Write ``views`` back to back under the staging name ``name`` (never an existing object).

        The data becomes visible under its final name only through :meth:`publish`.
        """

    @abc.abstractmethod
    def publish(self, staged: Staged, name: str, *, replace: bool = True) -> bool:
        """Move ``staged`` to ``name`` atomically, creating ``name``'s folder if needed.

        With ``replace=False`` this is create-if-absent: if ``name`` exists, the staged data
        is dropped and ``False`` is returned. The staged data is gone in every case.
        """

    @abc.abstractmethod
    def discard(self, staged: Staged) -> None:
        """Drop staged data that will not be published."""

    def write(self, name: str, data: bytes, *, staging: str | None = None) -> bool:
        """Replace ``name`` with ``data`` atomically (through a staging name)."""
        staged = self.stage(staging or new_staging_name(), [memoryview(data)])
        return self.publish(staged, name)

    @abc.abstractmethod
    def create(self, name: str, data: bytes) -> bool:
        """Create ``name`` holding ``data`` if nothing is stored there (atomically); ``False`` if something is.

        The lease primitive: two processes creating the same name cannot both succeed.
        """

    @abc.abstractmethod
    def touch(self, name: str) -> bool:
        """Set the modification time of ``name`` to now (refresh a lease); ``False`` if it is gone."""

    @abc.abstractmethod
    def move(self, name: str, new_name: str) -> bool:
        """Rename ``name`` to ``new_name`` (replacing it); ``False`` if ``name`` is gone."""

    @abc.abstractmethod
    def delete(self, name: str) -> bool:
        """Remove ``name``; ``False`` if it was already gone."""

    @abc.abstractmethod
    def delete_folder(self, folder: str) -> bool:
        """Remove an empty folder; ``False`` if it is gone or not empty."""
