"""What a backend says of stored objects: :class:`Stat`, :class:`Staged`, and its refusal.

The values :class:`~checkpoint_magic.store.backends.StoreBackend` methods return, apart from
bytes: a stored object's size, modification time and identity (:class:`Stat`), data staged
but not yet published (:class:`Staged`), the error for a store folder replaced by a link
(:class:`UnsafeStoreError`), and :data:`TICK_SECONDS`, the age below which an object's stat
cannot yet tell it unchanged.

Examples
--------
>>> Stat(size=5, mtime=1.0, version=(7, 5, 1)).version
(7, 5, 1)
>>> Staged(name="tmp/x", size=5).size
5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...exceptions import CheckpointError

__all__ = ["TICK_SECONDS", "Staged", "Stat", "UnsafeStoreError"]


class UnsafeStoreError(CheckpointError, OSError):
    """A folder or file of the store is a link the store did not create.

    Nothing is written through it; the message says how to fix the store.
    """


#: Well above a coarse timestamp tick (one jiffy, <= 10 ms): an object changed within it
#: may change again with the same mtime, so what was read of it is not remembered yet
#: (git's "racily clean" rule).
TICK_SECONDS = 0.1


@dataclass(frozen=True)
class Stat:
    """What a backend knows of a stored object: size, modification time, and an identity.

    Attributes
    ----------
    size : int
        Bytes.
    mtime : float
        Last modification time (seconds since the epoch).
    version : object
        Changes whenever the object is replaced (a local file's inode and mtime, an object
        store's ETag); the store uses it to reuse a manifest it already verified. None when
        the backend cannot tell.
    """

    size: int
    mtime: float
    version: Any = None


@dataclass
class Staged:
    """Data written to a staging name, not yet visible under its final name.

    Returned by :meth:`StoreBackend.stage` and passed on to :meth:`StoreBackend.publish`
    or :meth:`StoreBackend.discard`.

    Attributes
    ----------
    name : str
        The staging name the data was written to.
    size : int
        The number of bytes written.
    """

    name: str
    size: int
