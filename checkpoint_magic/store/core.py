"""The content-addressed store on disk: blobs named by their hash, one manifest per entry.

Layout (``.Lutil-checkpoint/`` by default, see :func:`checkpoint_magic.config.resolve_store_path`)::

    FORMAT                      store format version (JSON)
    objects/ab/<digest>         immutable blobs, named by the xxh3-128 of their bytes
    entries/<namespace>/<key>   one small manifest per cached computation
    state/<namespace>/<key>.hits  usage record: its size is the hit count, its mtime the last use
    state/<namespace>/<key>.pin   present while the entry is pinned (never evicted)
    tmp/                        staging; anything left here after a crash is garbage

Guarantees:

* **Atomic commit.** Blobs are written to ``tmp/`` and renamed into ``objects/``; the
  manifest is renamed into ``entries/`` last, so a reader sees a whole entry or none,
  whatever process dies when. Several processes may commit the same entry at once: the
  last rename wins and every version is complete and valid.
* **Verified reads.** Every blob is hashed while it is read (the hash runs on another
  core, overlapping the read) and compared with its name; a manifest carries a checksum
  of its body. A mismatch raises :class:`CorruptBlobError` / :class:`CorruptManifestError`
  and removes the bad file, so the caller recomputes rather than returning a wrong value.
* **Deduplication.** A value equal by content to a stored blob is not written again.
* **Signed entries.** With ``CHECKPOINT_MAGIC_SECRET`` set, manifests carry an
  HMAC-SHA256 of their body (which lists every blob digest) and unsigned or tampered
  manifests are refused with :class:`~checkpoint_magic.exceptions.SignatureError` before
  anything is unpickled. Without it, loading a store someone else wrote runs their code.

Examples
--------
>>> import tempfile, numpy as np
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(np.arange(4))
>>> store.get_value(record)
array([0, 1, 2, 3])
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import logging
import mmap
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import xxhash

from .. import config
from ..exceptions import CheckpointError, SignatureError, StoreFormatError
from .blobs import CorruptBlobError, hash_views, pipelined_read, readinto_full
from .blobs import byte_view as _view
from .blobs import write_full as _write_full
from .codecs import serializers
from .manifest import decode_manifest, encode_manifest, manifest_body
from .usage import flush_usage, record_hit

__all__ = [
    "FORMAT_VERSION",
    "CorruptBlobError",
    "CorruptManifestError",
    "Store",
    "decode_manifest",
    "encode_manifest",
    "flush_usage",
    "get_store",
    "manifest_body",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Values whose single encoded blob is at most this size live inside the manifest itself.
INLINE_MAX_BYTES = 16 * 1024
_OVERLAP_MIN = 24 << 20
#: Verified hot manifest records remembered per store (see Store.read_entry).
_HOT_RECORDS_MAX = 4096
_RACY_NS = 100_000_000  # 0.1 s: well above a coarse timestamp tick (one jiffy, <= 10 ms)


class CorruptManifestError(CheckpointError, ValueError):
    """An entry manifest is unreadable or fails its checksum."""


@functools.lru_cache(maxsize=4096)
def namespace_dir(namespace: str) -> str:
    """A directory name for ``namespace``: readable, unique, safe on every filesystem."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", namespace)[:96].lstrip(".") or "_"
    if safe != namespace:
        safe = f"{safe}-{xxhash.xxh3_64_hexdigest(namespace.encode('utf-8'))[:8]}"
    return safe


class _BlobReader:
    """The :class:`~checkpoint_magic.store.codecs.serializers.BlobSource` handed to a codec while decoding."""

    def __init__(self, store: Store, refs: Sequence[Mapping[str, Any]]):
        self._store = store
        self._refs = refs

    def size(self, index: int) -> int:
        return int(self._refs[index]["size"])

    def read_bytes(self, index: int) -> bytes | bytearray:
        buf = bytearray(self.size(index))  # returned as is: pickle.loads takes it without a copy
        self.read_into(index, [memoryview(buf)])
        return buf

    def read_into(self, index: int, buffers: Sequence[memoryview]) -> None:
        ref = self._refs[index]
        self._store.read_blob_into(ref["digest"], int(ref["size"]), buffers)

    def path(self, index: int) -> str:
        ref = self._refs[index]
        return self._store.verified_blob_path(ref["digest"], int(ref["size"]))


class _InlineReader(_BlobReader):
    def __init__(self, payload: bytes):
        self._payload = payload

    def size(self, index: int) -> int:
        return len(self._payload)

    def read_bytes(self, index: int) -> bytes | bytearray:
        return self._payload

    def read_into(self, index: int, buffers: Sequence[memoryview]) -> None:
        offset = 0
        for view in buffers:
            view[:] = self._payload[offset : offset + view.nbytes]
            offset += view.nbytes

    def path(self, index: int) -> str:  # pragma: no cover - inline values are never memory-mapped
        raise CorruptBlobError("an inline value has no file")


class Store:
    """A content-addressed store of checkpoint entries in one directory.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The store directory; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
        Nothing is created until the first write.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("demo.f", "k1", {"outputs": {}})
    >>> store.read_entry("demo.f", "k1")["outputs"]
    {}
    >>> [key for _, key in store.iter_entry_keys()]
    ['k1']
    """

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.root = config.resolve_store_path(path)
        self.objects = self.root / "objects"
        self.entries = self.root / "entries"
        self.tmp = self.root / "tmp"
        self.state = self.root / "state"
        self._entries_str = str(self.entries)
        self._state_str = str(self.state)
        self._write_ready = False
        self._format_checked = False
        # path -> ((inode, size, mtime_ns, secret), verified hot record); see read_entry
        self._hot_records: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    def _repr_html_(self) -> str:
        """The ``checkpoint-magic ls`` table, shown when a store is displayed in a notebook."""
        from ..notebook.inspection import store_html

        return store_html(self)

    # ------------------------------------------------------------------ format
    def check_format(self) -> None:
        """Raise :class:`StoreFormatError` if the store was written by a newer, unknown format."""
        if self._format_checked:
            return
        fmt = self.root / "FORMAT"
        try:
            text = fmt.read_text(encoding="utf-8")
        except FileNotFoundError:
            return  # an empty or new store
        try:
            version = int(json.loads(text)["format"])
        except (ValueError, KeyError, TypeError) as exc:
            raise StoreFormatError(
                f"{fmt} is not a checkpoint_magic FORMAT file ({exc}); point the store at another "
                "directory (store=... or CHECKPOINT_MAGIC_DIR) or remove this one"
            ) from exc
        if version > FORMAT_VERSION:
            raise StoreFormatError(
                f"the store {self.root} uses format {version}, written by a newer checkpoint_magic; "
                f"this version reads format {FORMAT_VERSION}. Upgrade checkpoint_magic, or use another "
                "store directory; nothing was read or overwritten"
            )
        self._format_checked = True

    def _prepare_write(self) -> None:
        if self._write_ready:
            return
        with self._lock:
            if self._write_ready:
                return
            self.check_format()
            for d in (self.objects, self.entries, self.tmp):
                d.mkdir(parents=True, exist_ok=True)
            fmt = self.root / "FORMAT"
            if not fmt.exists():
                body = json.dumps({"format": FORMAT_VERSION, "layout": "objects+entries"}) + "\n"
                self._atomic_write(fmt, body.encode("utf-8"))
            self._format_checked = False
            self.check_format()
            self._write_ready = True

    # ------------------------------------------------------------------ blobs
    def blob_path(self, digest: str) -> Path:
        """Where the blob named ``digest`` lives (it may not exist)."""
        return self.objects / digest[:2] / digest

    def _tmp_path(self) -> str:
        return os.path.join(self.tmp, f"{os.getpid()}-{uuid.uuid4().hex}")

    def _write_tmp(self, views: Sequence[memoryview]) -> str:
        """Write ``views`` back to back into a new staging file; return its path."""
        tmp = self._tmp_path()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            with open(fd, "wb") as f:
                for view in views:
                    _write_full(f, view)
                if config.fsync_enabled():
                    f.flush()
                    os.fsync(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return tmp

    def _publish(self, tmp: str, final: Path) -> None:
        """Rename a staging file into place (atomic), removing it if that fails."""
        try:
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _atomic_write(self, final: Path, data: bytes | Sequence[Any]) -> None:
        views = (
            [_view(data)]
            if isinstance(data, (bytes, bytearray, memoryview))
            else [_view(b) for b in data]
        )
        self._publish(self._write_tmp(views), final)

    def _existing_blob(self, digest: str, size: int) -> bool:
        """Whether the blob is already stored (then its mtime is refreshed)."""
        final = self.blob_path(digest)
        try:
            if final.stat().st_size != size:
                return False
        except FileNotFoundError:
            return False
        # Refresh its mtime: garbage collection spares blobs touched recently, which closes
        # the race with a commit that reuses a blob no manifest refers to yet.
        with contextlib.suppress(OSError):
            os.utime(final)
        return True

    def put_blob(self, buffers: Sequence[Any]) -> dict[str, Any]:
        """Store the concatenation of ``buffers`` as one blob; return ``{"digest", "size"}``.

        The buffers are hashed and written in place (no copy). A blob that already exists
        with the same size is not written again. A large blob is hashed on a second core
        while it is written to staging (a miss then costs about one write), and the
        staging file is dropped if the blob turns out to exist already.
        """
        self._prepare_write()
        views = [_view(b) for b in buffers]
        size = sum(view.nbytes for view in views)
        hasher = xxhash.xxh3_128()
        if size < _OVERLAP_MIN:
            for view in views:
                hasher.update(view)
            digest = hasher.hexdigest()
            if not self._existing_blob(digest, size):
                final = self.blob_path(digest)
                final.parent.mkdir(exist_ok=True)
                self._atomic_write(final, views)
            return {"digest": digest, "size": size}
        worker = threading.Thread(
            target=hash_views, args=(hasher, views), name="checkpoint-magic-hash"
        )
        worker.start()
        try:
            tmp = self._write_tmp(views)
        finally:
            worker.join()
        digest = hasher.hexdigest()
        if self._existing_blob(digest, size):
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        else:
            final = self.blob_path(digest)
            final.parent.mkdir(exist_ok=True)
            self._publish(tmp, final)
        return {"digest": digest, "size": size}

    def _discard_corrupt(self, path: Path, why: str) -> CorruptBlobError:
        with contextlib.suppress(OSError):
            os.unlink(path)
        logger.warning("removed corrupt blob %s (%s)", path, why)
        return CorruptBlobError(f"blob {path.name} is corrupt ({why})")

    def read_blob_into(self, digest: str, size: int, buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` with the blob's bytes, verifying them against ``digest``.

        Large blobs are hashed on a second thread while the next chunk is read, so
        verification costs little more than the read itself.
        """
        path = self.blob_path(digest)
        hasher = xxhash.xxh3_128()
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            raise CorruptBlobError(f"blob {digest} is missing") from None
        with f:
            actual = os.fstat(f.fileno()).st_size
            if actual != size:
                raise self._discard_corrupt(path, f"size {actual}, expected {size}")
            views = [v for v in buffers if v.nbytes]
            if size < _OVERLAP_MIN:
                for view in views:
                    readinto_full(f, view)
                    hasher.update(view)
            else:
                pipelined_read(f, views, hasher)
        if hasher.hexdigest() != digest:
            raise self._discard_corrupt(path, "content does not match its hash")

    def verified_blob_path(self, digest: str, size: int) -> str:
        """Return the path of a blob after checking its whole content against ``digest``."""
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                actual = os.fstat(f.fileno()).st_size
                if actual != size:
                    raise self._discard_corrupt(path, f"size {actual}, expected {size}")
                hasher = xxhash.xxh3_128()
                if size:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                        hasher.update(mapped)
        except FileNotFoundError:
            raise CorruptBlobError(f"blob {digest} is missing") from None
        if hasher.hexdigest() != digest:
            raise self._discard_corrupt(path, "content does not match its hash")
        return str(path)

    # ------------------------------------------------------------------ values
    def put_value(self, obj: Any) -> dict[str, Any]:
        """Encode ``obj`` with its codec and store it; return the record kept in a manifest."""
        codec = serializers.codec_for(obj)
        encoded = codec.encode(obj)
        record: dict[str, Any] = {"codec": codec.name, "meta": encoded.meta}
        if (
            len(encoded.blobs) == 1
            and sum(_view(b).nbytes for b in encoded.blobs[0]) <= INLINE_MAX_BYTES
        ):
            payload = b"".join(_view(b) for b in encoded.blobs[0])
            record["inline"] = base64.b64encode(payload).decode("ascii")
            record["size"] = len(payload)
            return record
        refs = [self.put_blob(blob) for blob in encoded.blobs]
        record["blobs"] = refs
        record["size"] = sum(r["size"] for r in refs)
        return record

    def get_value(self, record: Mapping[str, Any], *, mmap_mode: str | None = None) -> Any:
        """Decode a value from its manifest record, verifying every blob it reads.

        Raises
        ------
        CorruptBlobError
            A blob is missing or corrupt.
        KeyError
            The codec that wrote the value is not registered in this process.
        """
        codec = serializers.codec_by_name(record["codec"])
        if "inline" in record:
            source: _BlobReader = _InlineReader(base64.b64decode(record["inline"]))
            mmap_mode = None
        else:
            source = _BlobReader(self, record["blobs"])
        return codec.decode(dict(record.get("meta", {})), source, mmap_mode=mmap_mode)

    # ------------------------------------------------------------------ manifests
    def entry_path(self, namespace: str, key: str) -> Path:
        """Where the manifest of entry ``key`` in ``namespace`` lives."""
        return Path(self._entry_file(namespace, key))

    def _entry_file(self, namespace: str, key: str) -> str:
        # Plain strings: this runs on every lookup, and pathlib costs more than the read itself.
        return f"{self._entries_str}/{namespace_dir(namespace)}/{key}"

    def write_entry(self, namespace: str, key: str, manifest: Mapping[str, Any]) -> None:
        """Publish a manifest atomically (after its blobs are in place)."""
        self._prepare_write()
        path = self.entry_path(namespace, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(path, encode_manifest(manifest, config.secret_key()))

    def read_entry(
        self, namespace: str, key: str, *, hot_only: bool = False
    ) -> dict[str, Any] | None:
        """Return the manifest of an entry, ``None`` if there is none.

        ``hot_only`` parses only what a hit needs (outputs, created, duration, meta), and
        reuses a record this process already read and verified while the file is the same
        one (same inode, size and modification time; a commit always publishes a new file).
        The record is the stored, verified answer for that key, so reusing it can never give
        a wrong value; it only spares re-reading an unchanged file. Do not mutate the result.

        Raises
        ------
        CorruptManifestError
            The manifest exists but is damaged; it is removed so the entry can be rewritten.
        SignatureError
            Signing is required (``CHECKPOINT_MAGIC_SECRET``) and the entry is unsigned or
            its signature is wrong; the entry is left in place and nothing of it is loaded.
        """
        self.check_format()
        path = self._entry_file(namespace, key)
        secret = config.secret_key() if hot_only else None
        if hot_only:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                return None
            cached = self._hot_records.get(path)
            if cached is not None and cached[0] == (st.st_ino, st.st_size, st.st_mtime_ns, secret):
                return cached[1]
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            st = os.fstat(fd)
            chunks = []
            while chunk := os.read(fd, 1 << 16):
                chunks.append(chunk)
        finally:
            os.close(fd)
        manifest = self._parse_manifest(path, b"".join(chunks), hot_only=hot_only)
        # Like git's "racily clean" rule: a file modified in the last 0.1 s could be
        # modified again within one timestamp tick (coarse on some filesystems), so it is
        # not remembered yet.
        if hot_only and time.time_ns() - st.st_mtime_ns > _RACY_NS:
            if len(self._hot_records) >= _HOT_RECORDS_MAX:
                self._hot_records.clear()
            self._hot_records[path] = ((st.st_ino, st.st_size, st.st_mtime_ns, secret), manifest)
        return manifest

    def _parse_manifest(
        self, path: str | Path, data: bytes, *, hot_only: bool = False
    ) -> dict[str, Any]:
        manifest, damage, problem = decode_manifest(data, config.secret_key(), hot_only=hot_only)
        if manifest is None:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise CorruptManifestError(f"manifest {path} is damaged ({damage}); it was removed")
        if problem is not None:
            raise SignatureError(f"entry {os.path.basename(path)}: {problem}; it was not loaded")
        return manifest

    def delete_entry(self, namespace: str, key: str) -> bool:
        """Remove an entry's manifest (its blobs are freed by garbage collection)."""
        try:
            os.unlink(self.entry_path(namespace, key))
            return True
        except FileNotFoundError:
            return False

    def iter_entry_keys(self, namespace: str | None = None) -> Iterator[tuple[str, str]]:
        """Yield ``(namespace directory, key)`` of every entry (of one namespace if given)."""
        if not self.entries.is_dir():
            return
        dirs = (
            [self.entries / namespace_dir(namespace)]
            if namespace is not None
            else sorted(self.entries.iterdir())
        )
        for d in dirs:
            if not d.is_dir():
                continue
            for p in sorted(d.iterdir()):
                if p.is_file() and not p.name.startswith("."):
                    yield d.name, p.name

    def iter_manifests(self, namespace: str | None = None) -> Iterator[dict[str, Any]]:
        """Yield every readable manifest.

        Damaged ones, and ones refused because signing is required and they are unsigned or
        wrongly signed, are skipped with a log line.
        """
        for ns_dir, key in self.iter_entry_keys(namespace):
            path = self.entries / ns_dir / key
            try:
                data = path.read_bytes()
                yield self._parse_manifest(path, data)
            except FileNotFoundError:
                continue
            except (CorruptManifestError, SignatureError) as exc:
                logger.warning("%s", exc)

    # ------------------------------------------------------------------ usage and pins
    def _state_path(self, namespace: str, key: str, suffix: str) -> Path:
        return Path(self._state_file(namespace, key, suffix))

    def _state_file(self, namespace: str, key: str, suffix: str) -> str:
        return f"{self._state_str}/{namespace_dir(namespace)}/{key}{suffix}"

    def record_use(self, namespace: str, key: str) -> None:
        """Count a hit of an entry (its ``.hits`` file grows by one byte; its mtime is the last use).

        Counts are kept in memory and written at most once a second, at interpreter exit
        and by :func:`flush_usage`, so a hit does not wait for a write.
        """
        record_hit(self._state_file(namespace, key, ".hits"))

    def usage(self, namespace: str, key: str) -> tuple[int, float | None]:
        """``(hits, last used)`` of an entry; last used is ``None`` if it was never hit."""
        flush_usage()
        try:
            st = self._state_path(namespace, key, ".hits").stat()
        except FileNotFoundError:
            return 0, None
        return st.st_size, st.st_mtime

    def set_pinned(self, namespace: str, key: str, pinned: bool = True) -> None:
        """Pin (or unpin) an entry: pinned entries are never evicted by garbage collection."""
        path = self._state_path(namespace, key, ".pin")
        if pinned:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def is_pinned(self, namespace: str, key: str) -> bool:
        """Whether the entry is pinned."""
        return self._state_path(namespace, key, ".pin").exists()

    def clear(self, namespace: str | None = None, *, force: bool = False) -> int:
        """Delete the entries of ``namespace`` (every entry if ``None``); return how many.

        Pinned entries are kept unless ``force``. Their blobs are freed later by garbage
        collection (``checkpoint-magic gc``), which also removes their usage records.
        """
        removed = 0
        for ns_dir, key in list(self.iter_entry_keys(namespace)):
            if not force and (self.state / ns_dir / f"{key}.pin").exists():
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.entries / ns_dir / key)
                removed += 1
        return removed


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """Return a :class:`Store` for ``store`` (a Store, a path, or ``None`` for the default).

    Store objects are shared per directory within a process, so the format check runs once.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> get_store(d) is get_store(d)
    True
    """
    if isinstance(store, Store):
        return store
    root = str(config.resolve_store_path(store))
    with _stores_lock:
        found = _stores.get(root)
        if found is None:
            found = _stores[root] = Store(root)
        return found
