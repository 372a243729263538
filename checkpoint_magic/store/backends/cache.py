"""The local read cache of URL stores: verified copies of remote blobs, bounded, LRU-trimmed.

Blobs are named by the hash of their content, so a cached copy is never stale: the cache
needs no invalidation, only a bound. Each store location gets its own folder (a blob planted
in one store cannot be served to another), and the whole cache is trimmed, least recently
used first (a file's mtime is its last use), to stay under ``CHECKPOINT_MAGIC_CACHE_SIZE``
bytes (default 1 GiB) under ``CHECKPOINT_MAGIC_CACHE`` (default
``~/.cache/checkpoint_magic/blobs``).

A copy is only added once its bytes hash to its name, and the store verifies every blob it
reads again, so a damaged cache file is a miss (and is dropped), never a wrong value. A copy
also remembers the version of the object it came from (its ETag): if the object in the store
is replaced or damaged, the copy is not served, so ``verify`` sees what the store holds.

Examples
--------
>>> import tempfile, xxhash
>>> cache = BlobCache(tempfile.mkdtemp(), max_bytes=1 << 20, location="memory://demo")
>>> data = b"hello"
>>> digest = xxhash.xxh3_128_hexdigest(data)
>>> cache.get(digest, 5) is None
True
>>> def fetch(path):
...     with open(path, "wb") as f:
...         f.write(data)  # returns None: the cache hashes the file itself
>>> cache.fill(digest, 5, fetch, tag="etag-1") == cache.get(digest, 5, tag="etag-1")
True
>>> cache.get(digest, 5, tag="etag-2") is None  # the object was replaced in the store
True
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import xxhash

__all__ = ["BlobCache"]

logger = logging.getLogger(__name__)

_CHUNK = 8 << 20


def _hash_file(path: str) -> str:
    hasher = xxhash.xxh3_128()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            hasher.update(view[:n])
    return hasher.hexdigest()


class BlobCache:
    """Verified local copies of a URL store's blobs, at most ``max_bytes`` in total.

    Parameters
    ----------
    root : str or os.PathLike
        The cache directory (shared by every store; each location has a folder in it).
    max_bytes : int
        The bound of the whole cache; blobs larger than half of it are never cached.
    location : str
        The store this cache serves.
    """

    def __init__(self, root: str | os.PathLike[str], max_bytes: int, location: str):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.folder = self.root / xxhash.xxh3_64_hexdigest(location.encode("utf-8"))
        self._lock = threading.Lock()
        self._approx_total: int | None = None

    def __repr__(self) -> str:
        return f"BlobCache({str(self.folder)!r}, max_bytes={self.max_bytes})"

    def accepts(self, size: int) -> bool:
        """Whether a blob of ``size`` bytes is worth caching (at most half the bound).

        Parameters
        ----------
        size : int
            The blob's size in bytes.

        Returns
        -------
        bool
            ``True`` if ``0 < size <= max_bytes // 2``.
        """
        return 0 < size <= self.max_bytes // 2

    def path(self, digest: str, tag: str = "") -> Path:
        """Where the copy of blob ``digest`` taken from object version ``tag`` lives.

        Parameters
        ----------
        digest : str
            The blob's content hash (its name in the store).
        tag : str, default ""
            The version (ETag) of the store object the copy comes from.

        Returns
        -------
        pathlib.Path
            The copy's path in this location's folder; the file may not exist.
        """
        suffix = xxhash.xxh3_64_hexdigest(tag.encode("utf-8")) if tag else "0"
        return self.folder / f"{digest}.{suffix}"

    def get(self, digest: str, size: int, tag: str = "") -> str | None:
        """The path of the cached copy of ``digest``, recording its use (for LRU trimming).

        Parameters
        ----------
        digest : str
            The blob's content hash.
        size : int
            Its expected size in bytes; a copy of another size is a miss.
        tag : str, default ""
            The version (ETag) of the store object; a copy of another version is a miss.

        Returns
        -------
        str or None
            The copy's path, or ``None`` on a miss.
        """
        path = self.path(digest, tag)
        try:
            if os.stat(path).st_size != size:
                return None
            os.utime(path)
        except OSError:
            return None
        return str(path)

    def fill(
        self, digest: str, size: int, fetch: Callable[[str], str | None], tag: str = ""
    ) -> str | None:
        """Add blob ``digest``, published only if the fetched bytes hash to ``digest``.

        Parameters
        ----------
        digest : str
            The blob's content hash.
        size : int
            Its size in bytes.
        fetch : callable
            ``fetch(path)`` writes the blob's bytes to the staging file ``path``; it may
            return the xxh3-128 it computed while writing (saving a second read), or
            ``None`` to have the file hashed here.
        tag : str, default ""
            The version (ETag) of the store object fetched.

        Returns
        -------
        str or None
            The copy's path, ``None`` if it was not cached (a local fault is logged).

        Raises
        ------
        Exception
            Whatever ``fetch`` raises (a download fault) propagates; the staging file is removed.
        """
        tmp = self.staging()
        if tmp is None:
            return None
        try:
            computed = fetch(tmp)
            return self.publish(tmp, digest, size, computed or _hash_file(tmp), tag)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def staging(self) -> str | None:
        """A new staging file name in the cache, creating this location's folder.

        Returns
        -------
        str or None
            A fresh path (the file is not created), or ``None`` if the folder cannot be made.
        """
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            logger.debug("blob cache %s unavailable: %s", self.folder, exc)
            return None
        return str(self.folder / f".{os.getpid()}-{uuid.uuid4().hex}.part")

    def publish(self, tmp: str, digest: str, size: int, computed: str, tag: str = "") -> str | None:
        """Move the staging file ``tmp`` in as the copy of ``digest`` if it matches that name.

        Parameters
        ----------
        tmp : str
            A staging file from :meth:`staging`.
        digest : str
            The blob's content hash.
        size : int
            Its expected size; a file of another size is refused.
        computed : str
            The xxh3-128 of ``tmp``'s bytes; it must equal ``digest``.
        tag : str, default ""
            The version (ETag) of the store object.

        Returns
        -------
        str or None
            The copy's path, or ``None`` if refused or failed (``tmp`` is then left in place).
        """
        try:
            if os.path.getsize(tmp) != size or computed != digest:
                logger.info("downloaded blob %s does not match its name; not cached", digest)
                return None
            self.drop(digest)  # copies of other versions of the object
            os.replace(tmp, self.path(digest, tag))
        except OSError as exc:
            logger.debug("could not cache blob %s: %s", digest, exc)
            return None
        self._grow(size)
        return str(self.path(digest, tag))

    def drop(self, digest: str) -> None:
        """Forget every copy of ``digest`` (a blob found damaged, or deleted from the store).

        Parameters
        ----------
        digest : str
            The blob's content hash.
        """
        for path in self.folder.glob(f"{digest}.*"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _grow(self, size: int) -> None:
        with self._lock:
            if self._approx_total is None:
                self._approx_total = self.total()
            else:
                self._approx_total += size
            over = self._approx_total > self.max_bytes
        if over:
            self.trim()

    def total(self) -> int:
        """Bytes held by the whole cache (every store's folder).

        Returns
        -------
        int
            The sum of the sizes of the cached copies (staging files excluded).
        """
        return sum(size for _, _, size in self._files())

    def _files(self) -> list[tuple[float, str, int]]:
        found: list[tuple[float, str, int]] = []
        if not self.root.is_dir():
            return found
        for folder in self.root.iterdir():
            if not folder.is_dir() or folder.is_symlink():
                continue
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                    st = entry.stat(follow_symlinks=False)
                    found.append((st.st_mtime, entry.path, st.st_size))
        return found

    def trim(self, target: int | None = None) -> int:
        """Remove least recently used copies until the cache holds at most ``target`` bytes.

        Parameters
        ----------
        target : int, optional
            The size to trim to; default 90% of ``max_bytes``.

        Returns
        -------
        int
            How many bytes were freed.
        """
        goal = int(self.max_bytes * 0.9) if target is None else target
        files = sorted(self._files())
        total = sum(size for _, _, size in files)
        freed = 0
        for _, path, size in files:
            if total - freed <= goal:
                break
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                freed += size
        with self._lock:
            self._approx_total = total - freed
        if freed:
            logger.debug("blob cache trimmed by %d bytes", freed)
        return freed
