"""Digests of arrays that provably cannot have changed: read-only memory maps of unchanged files.

A hit with ``mmap_mode='r'`` returns a :class:`numpy.memmap` of a blob the store has just
verified. Passing it on to the next step (``step2(step1(x))``) would hash its whole content
again; instead, the front end :func:`remember`\\ s it with the stat signature the store
verified, and :mod:`checkpoint_magic.fingerprint.arrays` reuses its digest, computed once per
file content and geometry, for as long as all of these hold:

* it is the very object remembered (a weak, identity-keyed table; views and slices are
  other objects and are hashed as usual);
* it is still not writeable, and its offset, shape, strides and dtype are unchanged;
* the file at its path still has the remembered stat signature (device, inode, size,
  mtime and ctime: any write, truncation, rename or ``utime`` moves the ctime, which
  cannot be set back), so the mapped pages hold the content that was hashed.

A memory map opened with ``mode='r'`` has no writable alias in the process; a writable
array is never remembered, so a value changed in place is always rehashed.

Examples
--------
>>> import numpy as np, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "a.npy")
>>> np.save(path, np.arange(3))
>>> a = np.load(path, mmap_mode="r")
>>> remember(a, signature(os.stat(path)))
True
>>> remember(np.arange(3), signature(os.stat(path)))  # not a read-only memory map
False
"""

from __future__ import annotations

import mmap
import os
import weakref
from typing import Any

import numpy as np

__all__ = ["known_digest", "keep_digest", "remember", "signature"]

#: Remembered arrays and digests kept at most (the tables are cleared beyond it).
_MAX = 4096

# id(array) -> (weak reference, stat signature, geometry)
_arrays: dict[int, tuple[weakref.ref[Any], tuple[int, ...], tuple[Any, ...]]] = {}
# (stat signature, geometry, seed) -> the array's sub-digest
_digests: dict[tuple[Any, ...], bytes] = {}


def signature(st: os.stat_result) -> tuple[int, ...]:
    """What identifies a file's content without reading it: moves with any change of it.

    Parameters
    ----------
    st : os.stat_result
        The file's status.

    Returns
    -------
    tuple of int
        Device, inode, size, mtime and ctime (in nanoseconds).
    """
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _geometry(a: np.memmap) -> tuple[Any, ...]:
    return (a.filename, a.offset, a.shape, a.strides, a.dtype)


def _forget(ref: weakref.ref[Any], key: int) -> None:
    entry = _arrays.get(key)
    if entry is not None and entry[0] is ref:
        del _arrays[key]


def remember(a: Any, verified: tuple[int, ...] | None) -> bool:
    """Remember a read-only memory map whose file had the stat signature ``verified``.

    Parameters
    ----------
    a : object
        A value just restored (only a plain read-only :class:`numpy.memmap` is remembered).
    verified : tuple of int or None
        The :func:`signature` of its file when the store verified its content; None when
        it was not verified.

    Returns
    -------
    bool
        Whether it was remembered: only a plain :class:`numpy.memmap` that maps its file
        directly, read-only, whose file still has that signature.
    """
    if (
        verified is None
        or type(a) is not np.memmap
        or a.flags.writeable
        or not isinstance(a.base, mmap.mmap)
        or not a.filename
    ):
        return False
    try:
        if signature(os.stat(a.filename)) != verified:
            return False
    except OSError:
        return False
    if len(_arrays) >= _MAX:
        _arrays.clear()
    key = id(a)
    _arrays[key] = (weakref.ref(a, lambda ref: _forget(ref, key)), verified, _geometry(a))
    return True


def _entry(a: np.ndarray, seed: int) -> tuple[Any, ...] | None:
    """The digest-table key of ``a`` if it is remembered and provably unchanged."""
    entry = _arrays.get(id(a))
    if entry is None or entry[0]() is not a or a.flags.writeable:
        return None
    geometry = _geometry(a)
    if geometry != entry[2]:
        return None
    try:
        if signature(os.stat(geometry[0])) != entry[1]:
            return None
    except OSError:
        return None
    return (entry[1], geometry, seed)


def known_digest(a: np.ndarray, seed: int) -> bytes | None:
    """The sub-digest of a remembered, unchanged array if it was computed before.

    Parameters
    ----------
    a : numpy.ndarray
        The array being fingerprinted.
    seed : int
        The seed of the walk (digests of different hash schemes are kept apart).

    Returns
    -------
    bytes or None
        The 16-byte sub-digest kept by :func:`keep_digest`; None when ``a`` is not
        remembered, has changed (writeable, geometry, file signature) or was not hashed yet.
    """
    key = _entry(a, seed)
    return None if key is None else _digests.get(key)


def keep_digest(a: np.ndarray, seed: int, digest: bytes) -> None:
    """Keep the sub-digest just computed for ``a`` if it is remembered and unchanged.

    Parameters
    ----------
    a : numpy.ndarray
        The array just fingerprinted.
    seed : int
        The seed of the walk.
    digest : bytes
        Its 16-byte sub-digest.
    """
    key = _entry(a, seed)
    if key is not None:
        if len(_digests) >= _MAX:
            _digests.clear()
        _digests[key] = digest
