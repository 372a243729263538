"""File objects over object-store transfers: upload bodies over buffers, cached downloads.

:class:`ViewsReader` hands buffers to an upload without joining them; :class:`TeeReader`
copies a blob into the local blob cache while the caller reads it (see
:mod:`checkpoint_magic.store.backends.url`).
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Sequence
from typing import Any

import xxhash

from .cache import BlobCache

__all__ = ["TeeReader", "ViewsReader"]


class ViewsReader(io.RawIOBase):
    """A seekable binary file over buffers laid end to end: an upload body that copies nothing.

    Parameters
    ----------
    views : sequence of memoryview
        The buffers, in order (empty ones are skipped).

    Examples
    --------
    >>> reader = ViewsReader([memoryview(b"ab"), memoryview(b"cd")])
    >>> len(reader), reader.read(3), reader.read()
    (4, b'abc', b'd')
    """

    def __init__(self, views: Sequence[memoryview]):
        self._views = [v for v in views if v.nbytes]
        self._size = sum(v.nbytes for v in self._views)
        self._pos = 0

    def __len__(self) -> int:
        return self._size

    def readable(self) -> bool:
        """Whether it can be read (always).

        Returns
        -------
        bool
            True.
        """
        return True

    def seekable(self) -> bool:
        """Whether it can seek (always: an upload may be retried from the start).

        Returns
        -------
        bool
            True.
        """
        return True

    def tell(self) -> int:
        """The position.

        Returns
        -------
        int
            Bytes from the start.
        """
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the position (never before the start).

        Parameters
        ----------
        offset : int
            Bytes from ``whence``.
        whence : int, default io.SEEK_SET
            ``io.SEEK_SET``, ``io.SEEK_CUR`` or ``io.SEEK_END``.

        Returns
        -------
        int
            The new position.
        """
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        """Copy the next bytes into ``buffer``.

        Parameters
        ----------
        buffer : writable buffer
            Where the bytes go.

        Returns
        -------
        int
            How many bytes were copied (0 at the end).
        """
        out = memoryview(buffer).cast("B")
        done, start = 0, 0
        for view in self._views:
            end = start + view.nbytes
            if self._pos < end and done < out.nbytes:
                lo = self._pos - start
                n = min(view.nbytes - lo, out.nbytes - done)
                out[done : done + n] = view[lo : lo + n]
                done += n
                self._pos += n
            start = end
        return done


class TeeReader(io.RawIOBase):
    """Reads a blob from the store into the caller's buffers and a cache staging file at once.

    When every byte was read, the copy joins the cache if it hashes to the blob's name; a
    partial read (an error, a closed file) leaves nothing in the cache.

    Parameters
    ----------
    remote : file-like
        The blob's remote file (read with ``readinto``; closed with this reader).
    tmp : str
        A new local staging file for the cached copy (removed on close).
    cache : BlobCache
        The local cache the copy joins.
    digest : str
        The blob's name (its content hash).
    size : int
        The blob's size in bytes.
    tag : str
        The remote object's version tag, recorded with the cached copy.
    """

    def __init__(
        self, remote: Any, tmp: str, cache: BlobCache, digest: str, size: int, tag: str
    ) -> None:
        self._remote = remote
        self._tmp = tmp
        self._copy = open(tmp, "wb")  # noqa: SIM115 - closed in close()
        self._cache, self._digest, self._size, self._tag = cache, digest, size, tag
        self._hasher = xxhash.xxh3_128()
        self._done = 0
        self.name = f"{digest} (remote)"

    def readable(self) -> bool:
        """Whether it can be read (always).

        Returns
        -------
        bool
            True.
        """
        return True

    def readinto(self, buffer: Any) -> int:
        """Read the next bytes of the blob into ``buffer`` (and into the cached copy).

        Parameters
        ----------
        buffer : writable buffer
            Where the bytes go.

        Returns
        -------
        int
            How many bytes were read (0 at the end).
        """
        view = memoryview(buffer).cast("B")
        n = self._remote.readinto(view)
        if n:
            self._hasher.update(view[:n])
            self._copy.write(view[:n])
            self._done += n
        return n

    def close(self) -> None:
        """Close both files; the copy joins the cache only if the whole blob was read."""
        if self.closed:
            return
        try:
            self._remote.close()
            self._copy.close()
            if self._done == self._size:
                self._cache.publish(
                    self._tmp, self._digest, self._size, self._hasher.hexdigest(), self._tag
                )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self._tmp)
            super().close()
