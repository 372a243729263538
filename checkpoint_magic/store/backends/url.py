"""The URL store backend: a store in object storage (``s3://``, ``gs://``...) through fsspec.

Every name of the store (:mod:`checkpoint_magic.store.layout`) is an object under the URL's
prefix. The guarantees of the local backend hold here through the object store's own:

* **Atomic publish.** An object PUT is atomic (readers see the old object or the whole new
  one), so a blob or manifest is uploaded straight to its final name: no staging object,
  no server-side copy. Blobs up to :data:`SINGLE_PUT_MAX` go in one PUT streamed from the
  value's own buffers (no copy); larger ones through fsspec's file write, a multipart
  upload holding one part in memory at a time.
* **Create-if-absent** (leases) is a conditional write: ``If-None-Match: *`` on S3 (s3fs
  ``pipe_file(..., mode="create")``), which the server refuses with 412 when the object exists.
  Lease refreshes are conditional on the object's ETag, so a lease taken over is never revived.
* **Reads** of blobs go through a bounded local cache (:mod:`.cache`): content-addressed,
  so never stale.
* **Faults.** Every failure surfaces as :class:`OSError` (a connection failure as
  :class:`StoreUnreachableError`), which the store turns into a warning and an uncached run.
  After a connection failure the store is considered unreachable for
  :data:`OFFLINE_SECONDS`: calls then fail at once instead of waiting for the client's
  retries again, so an outage costs one warning and one timeout, not one per operation.

Credentials and endpoints come from the standard environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, ``GOOGLE_APPLICATION_CREDENTIALS``...), from
``CHECKPOINT_MAGIC_STORAGE_OPTIONS`` (JSON) or from ``storage_options``.

Examples
--------
>>> backend = FsspecBackend("memory://doc-fsspec-backend")
>>> backend.write("state/m.f/notes", b"hello")
True
>>> backend.read_bytes("state/m.f/notes")
b'hello'
>>> backend.create("leases/x", b"1"), backend.create("leases/x", b"2")
(True, False)
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import io
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO, TypeVar, cast

import xxhash

from ... import config
from ...exceptions import CheckpointError, InvalidArgumentError
from .. import layout
from .base import Staged, Stat, StoreBackend
from .cache import BlobCache
from .streams import TeeReader, ViewsReader

__all__ = ["OFFLINE_SECONDS", "SINGLE_PUT_MAX", "FsspecBackend", "StoreUnreachableError"]

logger = logging.getLogger(__name__)

#: Blobs up to this size are uploaded in one PUT (S3 accepts 5 GiB; s3fs's own limit is 100 MiB).
SINGLE_PUT_MAX = 96 << 20
#: Part size of larger uploads (multipart): the memory one upload holds at a time.
PART_SIZE = 32 << 20
#: Read block size (one ranged GET) of blobs streamed from the store.
READ_BLOCK = 16 << 20
#: Objects up to this size are refreshed by rewriting them (leases); larger ones by a server copy.
TOUCH_REWRITE_MAX = 64 << 10
#: Seconds a store seen to exist is not asked again.
EXISTS_SECONDS = 10.0
#: Seconds a store stays "unreachable" after a connection failure.
OFFLINE_SECONDS = 30.0

F = TypeVar("F", bound=Callable[..., Any])


class StoreUnreachableError(CheckpointError, ConnectionError):
    """The object store cannot be reached (network, endpoint or credentials); check
    ``AWS_ENDPOINT_URL`` / the URL and your network. The computation runs uncached meanwhile."""


def _io(method: F) -> F:
    """Run a backend method with the outage policy: fail fast while offline, and turn every
    client failure into an :class:`OSError`."""

    @functools.wraps(method)
    def wrapper(self: FsspecBackend, *args: Any, **kwargs: Any) -> Any:
        if time.monotonic() < self._offline_until:
            raise StoreUnreachableError(
                f"store {self.location} is unreachable (it failed {self._offline_reason}); "
                f"retrying after {OFFLINE_SECONDS:.0f} s"
            )
        try:
            return method(self, *args, **kwargs)
        except (FileNotFoundError, FileExistsError, IsADirectoryError, PermissionError):
            raise
        except (ConnectionError, TimeoutError) as exc:
            raise self._went_offline(exc) from exc
        except OSError:
            raise
        except Exception as exc:  # clients raise their own types (botocore, aiohttp, google...)
            if "connect" in type(exc).__name__.lower() or "timeout" in type(exc).__name__.lower():
                raise self._went_offline(exc) from exc
            raise OSError(f"store {self.location}: {type(exc).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


def _mtime(info: Mapping[str, Any]) -> float:
    """A modification time (seconds since the epoch) from an fsspec ``info`` dict."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, _dt.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def _stat(info: Mapping[str, Any]) -> Stat:
    mtime = _mtime(info)
    tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("generation")
    # With a tag, whole seconds: MinIO and Ceph list times to the ms, a HEAD tells seconds.
    return Stat(int(info.get("size") or 0), mtime, (tag, mtime if tag is None else int(mtime)))


#: Objects read in one concurrent batch by :meth:`FsspecBackend.read_many`.
_MANY = 1000


class _Pending(Staged):
    """Data handed to :meth:`FsspecBackend.stage`: uploaded by :meth:`~FsspecBackend.publish`."""

    def __init__(self, name: str, views: Sequence[memoryview]):
        super().__init__(name=name, size=sum(v.nbytes for v in views))
        self.views = list(views)


class FsspecBackend(StoreBackend):
    """A store under a URL, through fsspec (``s3://`` needs ``pip install checkpoint_magic[s3]``).

    Parameters
    ----------
    location : str
        The store URL, e.g. ``s3://bucket/prefix`` or ``memory://name``.
    storage_options : mapping, optional
        Options of the fsspec filesystem (``key``, ``secret``, ``endpoint_url``, ``anon``...),
        on top of ``CHECKPOINT_MAGIC_STORAGE_OPTIONS``.
    """

    def __init__(self, location: str, storage_options: Mapping[str, Any] | None = None):
        self.location = location.rstrip("/")
        self.storage_options = {**config.storage_options(), **dict(storage_options or {})}
        self._fs: Any = None
        self._fs_pid = -1
        self._root = ""
        self._offline_until = 0.0
        self._offline_reason = ""
        self._exists_until = 0.0
        self._lock = threading.Lock()
        max_bytes = config.blob_cache_max_bytes()
        self.cache = (
            BlobCache(config.blob_cache_dir(), max_bytes, self.location) if max_bytes else None
        )
        self.fs  # noqa: B018 - fail now on an unknown protocol or a missing client library

    def __repr__(self) -> str:
        return f"FsspecBackend({self.location!r})"

    def __getstate__(self) -> dict[str, Any]:
        # Sent to Dask workers: the client, its event loop and the lock are rebuilt there.
        return {"location": self.location, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["location"], state["storage_options"])  # type: ignore[misc]

    # ------------------------------------------------------------------ plumbing
    @property
    def fs(self) -> Any:
        """The fsspec filesystem (re-created in a forked child: its event loop does not survive)."""
        if self._fs is None or self._fs_pid != os.getpid():
            with self._lock:
                if self._fs is None or self._fs_pid != os.getpid():
                    try:
                        import fsspec
                    except ImportError as exc:
                        raise ImportError(
                            f"the store {self.location} needs fsspec: pip install "
                            "'checkpoint_magic[s3]' (s3fs) or fsspec and the filesystem's package"
                        ) from exc
                    fs, root = fsspec.core.url_to_fs(self.location, **self.storage_options)
                    self._fs, self._root, self._fs_pid = fs, root.rstrip("/"), os.getpid()
        return self._fs

    def path(self, name: str) -> str:
        """The fsspec path of store name ``name`` (resolving the filesystem on first use).

        Parameters
        ----------
        name : str
            A relative store name (``""`` for the root).

        Returns
        -------
        str
            ``<root>/<name>`` in the filesystem's own spelling (no protocol).

        Raises
        ------
        InvalidArgumentError
            ``name`` is absolute or contains ``..``.
        """
        if name.startswith("/") or ".." in name.split("/"):
            raise InvalidArgumentError(f"not a store name: {name!r} (names are relative, no '..')")
        self.fs  # noqa: B018 - resolves the root
        return f"{self._root}/{name}" if name else self._root

    def _went_offline(self, exc: BaseException) -> StoreUnreachableError:
        self._offline_until = time.monotonic() + OFFLINE_SECONDS
        self._offline_reason = f"{time.strftime('%H:%M:%S')}: {type(exc).__name__}: {exc}"
        logger.info("store %s unreachable: %s", self.location, exc)
        return StoreUnreachableError(
            f"store {self.location} is unreachable ({type(exc).__name__}: {exc}); check the URL, "
            "AWS_ENDPOINT_URL / credentials and the network"
        )

    @property
    def _is_s3(self) -> bool:
        protocol = self.fs.protocol
        return "s3" in (protocol if isinstance(protocol, (tuple, list)) else (protocol,))

    def _info(self, path: str) -> dict[str, Any] | None:
        self.fs.invalidate_cache(path)
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return None
        return info if info.get("type", "file") == "file" else None

    @staticmethod
    def _blob_digest(name: str) -> str | None:
        prefix = layout.OBJECTS + "/"
        return layout.digest_of(name[len(prefix) :]) if name.startswith(prefix) else None

    # ------------------------------------------------------------------ the store itself
    @_io
    def exists(self) -> bool:
        # Asked before every commit: a store seen in the last seconds is taken to exist
        # (one LIST request less per commit; a store deleted meanwhile is recreated on the
        # next commit after that).
        if time.monotonic() < self._exists_until:
            return True
        self.fs.invalidate_cache(self.path(""))
        found = bool(self.fs.exists(self.path("")))
        if found:
            self._exists_until = time.monotonic() + EXISTS_SECONDS
        return found

    @_io
    def ensure(self, folders: Sequence[str]) -> None:
        # Object stores have no folders; a missing bucket is the user's to create.
        if self._is_s3:
            bucket = self.path("").split("/", 1)[0]
            if not self.fs.exists(bucket):
                raise FileNotFoundError(
                    f"the bucket of store {self.location} does not exist; create it first "
                    f"(e.g. `aws s3 mb s3://{bucket}`)"
                )
            return
        for folder in folders:
            self.fs.makedirs(self.path(folder), exist_ok=True)

    # ------------------------------------------------------------------ reading
    @_io
    def open_read(self, name: str) -> tuple[BinaryIO, Stat]:
        path = self.path(name)
        digest = self._blob_digest(name)
        info = self._info(path)
        if info is None:
            if digest is not None and self.cache is not None:
                self.cache.drop(digest)  # gone from the store: never serve a stale copy of it
            raise FileNotFoundError(f"{self.location}/{name}")
        size = int(info.get("size") or 0)
        if digest is not None and self.cache is not None:
            tag = self._tag(info)
            local = self.cache.get(digest, size, tag)
            if local is not None:
                return open(local, "rb", buffering=0), _stat(info)  # noqa: SIM115
            tmp = self.cache.staging() if self.cache.accepts(size) else None
            if tmp is not None:
                # Read from the store straight into the caller's buffers, keeping a copy.
                # (read-ahead: the store reads 8 MiB chunks, each a request without it)
                remote = self.fs.open(
                    path, "rb", block_size=READ_BLOCK, cache_type="readahead", size=size
                )
                tee = TeeReader(remote, tmp, self.cache, digest, size, tag)
                return cast(BinaryIO, tee), _stat(info)
        if size > READ_BLOCK:
            return self.fs.open(path, "rb", block_size=READ_BLOCK, cache_type="none"), _stat(info)
        return io.BytesIO(self.fs.cat_file(path)), _stat(info)

    @staticmethod
    def _tag(info: Mapping[str, Any]) -> str:
        """The version of an object a cached copy is tied to (its ETag, else its mtime)."""
        return str(info.get("ETag") or info.get("etag") or _mtime(info))

    def _cached_blob(self, digest: str, path: str) -> str | None:
        """The local copy of a blob, downloaded into the cache if needed (``None`` if uncacheable).

        The copy is served only while the object is the one it was taken from (same ETag):
        a blob collected or damaged in the store is never hidden by an older local copy.
        """
        assert self.cache is not None
        info = self._info(path)
        if info is None:
            self.cache.drop(digest)
            raise FileNotFoundError(path)
        size = int(info.get("size") or 0)
        tag = self._tag(info)
        found = self.cache.get(digest, size, tag)
        if found is not None or not self.cache.accepts(size):
            return found
        return self.cache.fill(digest, size, lambda tmp: self._download(path, tmp, size), tag)

    def _download(self, path: str, local: str, size: int) -> str:
        """Stream an object into a local file through one reused buffer (ranged reads);
        return the xxh3-128 of its bytes, hashed on the way.

        ``fs.get_file`` lets the HTTP client buffer ahead of the disk (a 64 MiB object
        peaked at ~114 MiB of Python memory here); this holds one block.
        """
        hasher = xxhash.xxh3_128()
        buf = bytearray(min(READ_BLOCK, max(1, size)))
        view = memoryview(buf)
        with (
            self.fs.open(path, "rb", block_size=READ_BLOCK, cache_type="none", size=size) as src,
            open(local, "wb") as dst,
        ):
            while n := src.readinto(view):
                hasher.update(view[:n])
                dst.write(view[:n])
        return hasher.hexdigest()

    def local_path(self, name: str) -> str | None:
        digest = self._blob_digest(name)
        if digest is None or self.cache is None:
            return None
        try:
            return _io(FsspecBackend._cached_blob)(self, digest, self.path(name))
        except FileNotFoundError:
            return None

    @_io
    def read_bytes(self, name: str, limit: int | None = None) -> bytes:
        if self._blob_digest(name) is not None:
            return super().read_bytes(name, limit)
        if limit is not None:  # never more: an object planted there may be huge
            return self._first_bytes(name, limit)
        return bytes(self.fs.cat_file(self.path(name)))

    def _first_bytes(self, name: str, limit: int) -> bytes:
        """The first ``limit + 1`` bytes of an object, in one ranged GET."""
        try:
            return bytes(self.fs.cat_file(self.path(name), start=0, end=limit + 1))
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
        # S3 refuses any range of an empty object (416 InvalidRange): a stat, then a read.
        return StoreBackend.read_bytes(self, name, limit)

    @_io
    def read_small(self, name: str, limit: int) -> tuple[bytes, Stat]:
        if self._blob_digest(name) is not None:
            return super().read_small(name, limit)
        # One ranged GET, no HEAD first: a hit's manifest costs one round trip. Its version
        # is then unknown: later hits read it again (one GET, as the HEAD would have been).
        data = self._first_bytes(name, limit)
        return data, Stat(size=len(data), mtime=0.0, version=None)

    @_io
    def read_many(self, names: Sequence[str], limit: int) -> list[bytes | None]:
        # One concurrent batch of GETs per _MANY names (fsspec's cat of a list), not a round
        # trip each; what the batch does not return is read on its own.
        found: list[bytes | None] = []
        for start in range(0, len(names), _MANY):
            batch = names[start : start + _MANY]
            paths = [self.path(name) for name in batch]
            # Ranged GETs: at most limit + 1 bytes of each, and no HEAD first (s3fs makes
            # one before an unranged GET).
            got = self.fs.cat(paths, on_error="return", start=0, end=limit + 1) if paths else {}
            got = got if isinstance(got, dict) else {paths[0]: got}
            for name, path in zip(batch, paths, strict=True):
                data = got.get(path)
                if isinstance(data, FileNotFoundError):
                    found.append(None)
                    continue
                if isinstance(data, BaseException) and not (
                    isinstance(data, OSError) and data.errno == errno.EINVAL
                ):
                    raise data
                if data is None or isinstance(data, BaseException):
                    # A key spelled otherwise by the filesystem, or an empty object (a range
                    # of it is refused): one request of its own.
                    try:
                        data = self._first_bytes(name, limit)
                    except FileNotFoundError:
                        found.append(None)
                        continue
                found.append(bytes(data[: limit + 1]))
        return found

    def index_file(self) -> str | None:
        if self.cache is None:  # no local cache (CHECKPOINT_MAGIC_CACHE_SIZE=0): no index
            return None
        # In the store's folder of the read cache, whose trimming leaves dot files alone.
        return str(self.cache.folder / layout.INDEX.rpartition("/")[2])

    @_io
    def stat(self, name: str) -> Stat | None:
        info = self._info(self.path(name))
        return None if info is None else _stat(info)

    def _listing(self, folder: str) -> list[dict[str, Any]]:
        path = self.path(folder)
        self.fs.invalidate_cache(path)
        try:
            return list(self.fs.ls(path, detail=True))
        except FileNotFoundError:
            return []

    @_io
    def list_files(self, folder: str) -> list[tuple[str, Stat]]:
        found = [
            (info["name"].rstrip("/").rsplit("/", 1)[-1], _stat(info))
            for info in self._listing(folder)
            if info.get("type") == "file"
        ]
        return sorted(found)

    @_io
    def list_tree(self, folder: str) -> list[tuple[str, Stat]]:
        path = self.path(folder).rstrip("/")
        self.fs.invalidate_cache(path)
        try:
            found = self.fs.find(path, detail=True)  # one paginated listing of the prefix
        except FileNotFoundError:
            return []
        prefix = path + "/"
        return sorted(
            (str(name)[len(prefix) :], _stat(info))
            for name, info in found.items()
            if info.get("type") == "file" and str(name).startswith(prefix)
        )

    @_io
    def list_folders(self, folder: str) -> list[str]:
        return sorted(
            info["name"].rstrip("/").rsplit("/", 1)[-1]
            for info in self._listing(folder)
            if info.get("type") == "directory"
        )

    # ------------------------------------------------------------------ writing
    def stage(self, name: str, views: Sequence[memoryview], *, fsync: bool = False) -> Staged:
        # Nothing is written yet: an object PUT is atomic, so publish uploads straight to the
        # final name (a staging object would cost a server-side copy of every blob).
        return _Pending(name, views)

    @_io
    def publish(self, staged: Staged, name: str, *, replace: bool = True) -> bool:
        if not isinstance(staged, _Pending):
            raise TypeError(f"{staged!r} was not staged by {self!r}")
        path = self.path(name)
        views, staged.views = staged.views, []
        # Create-if-absent is the conditional PUT itself (the store checked the blob is
        # missing just before; asking again would cost a request per blob).
        mode = "overwrite" if replace else "create"
        try:
            self._upload(path, views, staged.size, mode)
        except FileExistsError:
            return False
        return True

    def _upload(self, path: str, views: Sequence[memoryview], size: int, mode: str) -> None:
        if self._is_s3 and size <= SINGLE_PUT_MAX:
            self.fs.pipe_file(path, ViewsReader(views), mode=mode)
            return
        if mode == "create" and self.fs.exists(path):
            raise FileExistsError(path)
        with self.fs.open(path, "wb", block_size=PART_SIZE) as f:
            for view in views:
                for start in range(0, view.nbytes, PART_SIZE):
                    f.write(view[start : start + PART_SIZE])

    def discard(self, staged: Staged) -> None:
        if isinstance(staged, _Pending):
            staged.views = []

    @_io
    def write(self, name: str, data: bytes, *, staging: str | None = None) -> bool:
        self.fs.pipe_file(self.path(name), bytes(data))
        return True

    @_io
    def write_many(self, items: Mapping[str, bytes]) -> None:
        # Concurrent PUTs (fsspec's pipe of a dict), each atomic as write's; in batches.
        names = list(items)
        for start in range(0, len(names), _MANY):
            batch = names[start : start + _MANY]
            self.fs.pipe({self.path(name): bytes(items[name]) for name in batch})

    @_io
    def create(self, name: str, data: bytes, *, whole: bool = True) -> bool:
        try:  # a conditional PUT: whole either way
            self.fs.pipe_file(self.path(name), bytes(data), mode="create")
        except FileExistsError:
            return False
        return True

    @_io
    def touch(self, name: str) -> bool:
        path = self.path(name)
        info = self._info(path)
        if info is None:
            return False
        etag = info.get("ETag")
        try:
            if self._is_s3 and int(info.get("size") or 0) > TOUCH_REWRITE_MAX:
                # A server-side copy onto itself with new metadata moves LastModified; no
                # bytes travel (a blob reused by a commit is touched so gc spares it).
                self.fs.setxattr(path, checkpoint_magic_touched=f"{time.time():.3f}")
            elif self._is_s3 and etag:
                # Conditional on the object seen: a lease deleted or replaced meanwhile stays so.
                self.fs.pipe_file(path, self.fs.cat_file(path), IfMatch=etag)
            else:
                self.fs.pipe_file(path, self.fs.cat_file(path))
        except (FileNotFoundError, FileExistsError):
            return False
        except OSError as exc:
            if "412" in str(exc) or "Precondition" in str(exc):
                return False
            raise
        return True

    @_io
    def move(self, name: str, new_name: str) -> bool:
        src = self.path(name)
        if self._info(src) is None:
            return False
        try:
            self.fs.mv(src, self.path(new_name))
        except FileNotFoundError:
            return False
        self._forget(name)
        return True

    @_io
    def delete(self, name: str) -> bool:
        path = self.path(name)
        self._forget(name)
        # An object store's DELETE succeeds whether or not the object exists; ask first
        # (except for leases, removed on every commit, whose callers need no answer).
        if not name.startswith(layout.LEASES + "/") and self._info(path) is None:
            return False
        try:
            self.fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def _forget(self, name: str) -> None:
        digest = self._blob_digest(name)
        if digest is not None and self.cache is not None:
            self.cache.drop(digest)

    @_io
    def delete_folder(self, folder: str) -> bool:
        if self._listing(folder):
            return False
        if not self._is_s3:
            try:
                self.fs.rmdir(self.path(folder))
            except (FileNotFoundError, OSError):
                return False
        return True

    def clear_cache(self) -> None:
        """Drop this store's local read cache."""
        if self.cache is not None:
            shutil.rmtree(self.cache.folder, ignore_errors=True)
