"""The content-addressed store: :class:`Store`, written once over a backend's I/O primitives.

:class:`Store` owns what every backend shares: deduplication (blobs named by their xxh3-128),
verification on read, signing, manifests bound to their key, pins, usage, the hot-manifest
cache and the commit leases gc respects. A backend (:mod:`.backends`) only moves bytes under
names from :mod:`.layout`.

Guarantees: *atomic commit* (blobs published create-if-absent, the manifest last);
*verified reads* (blobs hashed while read; a manifest checksummed and bound to its key);
*signed entries* with ``CHECKPOINT_MAGIC_SECRET`` (an HMAC over a body naming every blob by
BLAKE3/SHA-256 too; a wrong one is refused before parsing).

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
import binascii
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from .. import config
from ..exceptions import CheckpointError, SignatureError, StoreFormatError
from . import layout
from .backends import TICK_SECONDS, StoreBackend, UnsafeStoreError, open_backend, scheme_of
from .blobs import (
    CorruptBlobError,
    InlineBlobSource,
    StoredBlobSource,
)
from .blobs import byte_view as _view
from .blobstore import BlobStore
from .codecs import serializers
from .codecs.base import BlobSource
from .layout import namespace_dir
from .leases import CommitLease
from .manifest import MANIFEST_MAX_BYTES, decode_manifest, encode_manifest, manifest_body
from .records import EntryRecords
from .usage import flush_usage

__all__ = [
    "FORMAT_VERSION",
    "CorruptBlobError",
    "CorruptManifestError",
    "ForeignStoreError",
    "Store",
    "decode_manifest",
    "encode_manifest",
    "flush_usage",
    "get_store",
    "manifest_body",
    "namespace_dir",
]

logger = logging.getLogger(__name__)

#: The store format this version writes. Format 2 keeps entries and their records in shard
#: folders (see :mod:`.layout`); a store of format 1 is read and written as it is, flat,
#: until ``checkpoint-magic upgrade`` moves it to format 2.
FORMAT_VERSION = 2
#: The first format with shard folders.
SHARDED_FORMAT = 2
#: What ``FORMAT`` says of the layout (for people; the number is what is checked).
FORMAT_LAYOUT = "objects+sharded-entries"
#: Values whose single encoded blob is at most this size live inside the manifest itself.
INLINE_MAX_BYTES = 16 * 1024
#: Verified hot manifest records remembered per store (see Store.read_entry).
_HOT_RECORDS_MAX = 4096


def _with_payloads(outputs: Any) -> Any:
    """Decode the inline values of freshly parsed output records in place (``payload``).

    A malformed record is left for :meth:`Store.get_value` to refuse (a miss with a warning).
    """
    if type(outputs) is not dict:  # JSON objects parse to exact dicts
        return outputs
    for record in outputs.values():  # parsed for this read only: changed in place
        if type(record) is dict:
            text = record.get("inline")
            if type(text) is str:
                try:  # what base64.b64decode(text) does, without its argument checks
                    payload = binascii.a2b_base64(text)
                except ValueError:  # binascii.Error: damaged base64, refused when it is read
                    continue
                record["payload"] = payload  # the text is not kept: payload replaces it
                del record["inline"]
    return outputs


#: Decoded values of these exact types, which nothing can change in place, are handed out
#: again by the next hits of the same remembered record (see Store.get_value).
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})

_GITIGNORE = b"# written by checkpoint_magic: a checkpoint store is never committed\n*\n"


class CorruptManifestError(CheckpointError, ValueError):
    """An entry manifest is unreadable, fails its checksum, or belongs to another key."""


class ForeignStoreError(StoreFormatError):
    """The store location holds a ``FORMAT`` file that checkpoint_magic did not write.

    A front end warns once and runs uncached; the command-line tools refuse the location.
    """


class Store(EntryRecords, BlobStore):
    """A content-addressed store of checkpoint entries, over one backend.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The store directory or URL; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
        Nothing is created until the first write (and a deleted store is recreated then).
    storage_options : mapping, optional
        Options of a URL store's fsspec filesystem (credentials, ``endpoint_url``...); by
        default they come from the standard environment (``AWS_ENDPOINT_URL``...).

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

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        storage_options: Mapping[str, Any] | None = None,
    ):
        location = config.resolve_store_location(path)
        self.backend: StoreBackend = open_backend(location, **(storage_options or {}))
        self.location = self.backend.location
        #: The local directory (for a local store; a URL-like path otherwise).
        self.root = Path(self.location)
        self.objects = self.root / layout.OBJECTS
        self.entries = self.root / layout.ENTRIES
        self.tmp = self.root / layout.TMP
        self.state = self.root / layout.STATE
        self.is_local = scheme_of(location) == "local"
        self._write_ready = False
        self._format_checked = False
        #: The format ``FORMAT`` names, as :meth:`check_format` last read it (``None``: none).
        self.format_version: int | None = None
        self._sharded = True  # as FORMAT says (check_format); a new store is sharded
        # entry name -> (stat version, secret, verified hot record); see read_entry
        self._hot_records: dict[str, tuple[Any, bytes | None, dict[str, Any]]] = {}
        # id(output record) -> (that record, its decoded immutable value): see get_value
        self._decoded: dict[int, tuple[Mapping[str, Any], Any]] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        # entry folder -> (folder stat version, a file in it or None); see has_entries
        self._has_entries: dict[str, tuple[Any, str | None]] = {}
        # local blob path -> ((algorithm, digest), stat signature) verified by this process
        self._verified_blobs: dict[str, tuple[tuple[str, str], tuple[int, ...]]] = {}

    def __repr__(self) -> str:
        return f"Store({self.location!r})"

    # ------------------------------------------------------------------ format
    def is_store(self) -> bool:
        """Whether the location holds a checkpoint store (a readable ``FORMAT`` record).

        Returns
        -------
        bool
            ``True`` when a ``FORMAT`` record can be read.
        """
        try:
            self.backend.read_bytes(layout.FORMAT, limit=4096)
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def check_format(self) -> None:
        """Raise :class:`StoreFormatError` if the store was written by a newer, unknown format.

        Checked once per instance; an empty or new store (no ``FORMAT``) passes.

        Raises
        ------
        ForeignStoreError
            When ``FORMAT`` is not a checkpoint_magic format record.
        StoreFormatError
            When ``FORMAT`` names a newer format than this version reads.
        """
        if self._format_checked:
            return
        try:
            text = self.backend.read_bytes(layout.FORMAT, limit=4096)
        except (FileNotFoundError, NotADirectoryError):
            self.format_version = None
            self._sharded = True  # an empty or new store: it will be written in this format
            return
        try:
            version = int(json.loads(text)["format"])
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ForeignStoreError(
                f"{self.location}/FORMAT is not a checkpoint_magic FORMAT file ({exc}); point the "
                "store at another directory (store=... or CHECKPOINT_MAGIC_DIR) or remove this one"
            ) from exc
        if version > FORMAT_VERSION:
            raise StoreFormatError(
                f"the store {self.location} uses format {version}, written by a newer "
                f"checkpoint_magic; this version reads format {FORMAT_VERSION}. Upgrade "
                "checkpoint_magic, or use another store directory; nothing was read or overwritten"
            )
        self.format_version = version
        self._sharded = version >= SHARDED_FORMAT
        self._format_checked = True

    def refresh_format(self) -> None:
        """Read ``FORMAT`` again, and forget what was remembered of the store's old layout.

        For :func:`~checkpoint_magic.store.upgrade.upgrade_store`, which changes it.

        Raises
        ------
        StoreFormatError
            When ``FORMAT`` names a newer format than this version reads, or is foreign.
        """
        with self._lock:
            self._format_checked = False
            self._hot_records.clear()
            self._has_entries.clear()
            self.check_format()

    def _upgraded(self, sharded: bool) -> bool:
        """Whether a store this instance reads flat (format 1) was upgraded meanwhile; then
        it reads and writes shards from now on. Only a miss or a commit in a format-1 store
        looks (one small read): a process started before ``checkpoint-magic upgrade``
        follows it at its next miss instead of writing entries nobody sees. ``sharded`` is
        the layout the caller looked in: another thread may have followed it meanwhile."""
        if self._sharded:
            return not sharded
        if not self._format_checked:
            return False
        try:
            text = self.backend.read_bytes(layout.FORMAT, limit=4096)
            upgraded = int(json.loads(text)["format"]) >= SHARDED_FORMAT
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return False  # as unreadable as before: the next check_format says why
        if upgraded:
            logger.info("%s was upgraded to shard folders: following it", self.location)
            self.refresh_format()
        return upgraded

    def prepare_write(self) -> None:
        """Create the store's folders, ``FORMAT`` and ``.gitignore`` if missing (again if deleted).

        Raises
        ------
        UnsafeStoreError
            A folder of the store is a link the store did not create.
        OSError
            The store cannot be created (a file is in the way, permission denied...).
        """
        if self._write_ready and self.backend.exists():
            return
        with self._lock:
            self.check_format()
            self.backend.ensure(layout.TOP_FOLDERS)
            if self.backend.stat(layout.FORMAT) is None:
                body = json.dumps({"format": FORMAT_VERSION, "layout": FORMAT_LAYOUT}) + "\n"
                self.backend.create(layout.FORMAT, body.encode("utf-8"))
            if self.backend.stat(layout.GITIGNORE) is None:
                self.backend.create(layout.GITIGNORE, _GITIGNORE)
            self._format_checked = False
            self.check_format()
            self._hot_records.clear()
            self._write_ready = True

    # ------------------------------------------------------------------ blobs
    def put_value(self, obj: Any) -> dict[str, Any]:
        """Encode ``obj`` with its codec and store it; return the record kept in a manifest.

        Parameters
        ----------
        obj : object
            The value to store.

        Returns
        -------
        dict
            The record a manifest keeps: codec, meta and blob references (or the inline bytes).
        """
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

        Parameters
        ----------
        record : mapping
            The value's record, as :meth:`put_value` returned it.
        mmap_mode : {None, 'r'}
            ``'r'``: arrays come back as read-only memory maps of their verified blobs.

        Returns
        -------
        object
            The value, equal to the one stored.

        Raises
        ------
        CorruptBlobError
            A blob is missing or corrupt.
        KeyError
            The codec that wrote the value is not registered in this process.
        """
        payload = record.get("payload")  # decoded already by read_entry(hot_only=True)
        if type(payload) is not bytes:  # never from a file: JSON has no bytes
            payload = None
        else:
            kept = self._decoded.get(id(record))
            if kept is not None and kept[0] is record:
                return kept[1]
        codec = serializers.codec_by_name(record["codec"])
        remembered = payload is not None  # a record read_entry remembers: kept for next hits
        if payload is None and "inline" in record:
            payload = base64.b64decode(record["inline"])
        if payload is not None:
            source: BlobSource = InlineBlobSource(payload)
            mmap_mode = None
        else:
            source = StoredBlobSource(self, record["blobs"])
            if mmap_mode is not None and not self.is_local:
                mmap_mode = None
        value = codec.decode(dict(record.get("meta", {})), source, mmap_mode=mmap_mode)
        if remembered and type(value) in _IMMUTABLE:  # for the next hits
            if len(self._decoded) >= _HOT_RECORDS_MAX:
                self._decoded.clear()
            self._decoded[id(record)] = (record, value)  # the record kept: its id stays its own
        return value

    # ------------------------------------------------------------------ commits
    @contextlib.contextmanager
    def commit(self) -> Iterator[None]:
        """Hold a commit lease while blobs and a manifest are written (gc spares its blobs).

        The lease lists every blob the commit stores or reuses, before it checks whether the
        blob exists; a crashed process leaves it stale (detected by pid and age). A commit
        nested in another one of the same thread shares its lease.

        Yields
        ------
        None
            Write the blobs and the manifest inside the ``with`` block.
        """
        if getattr(self._local, "commit", None) is not None:
            yield
            return
        lease = CommitLease(self.backend)
        self._local.commit = lease
        try:
            yield
        finally:
            self._local.commit = None
            lease.release()

    # ------------------------------------------------------------------ manifests
    def entry_path(self, namespace: str, key: str) -> Path:
        """The local path of the manifest of entry ``key`` in ``namespace``.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.

        Returns
        -------
        pathlib.Path
            Where the manifest is under the store root (local stores).
        """
        return self.root / layout.entry(namespace, key, sharded=self.sharded)

    def write_entry(self, namespace: str, key: str, manifest: Mapping[str, Any]) -> None:
        """Publish a manifest atomically (after its blobs); it names its key and namespace.

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.
        manifest : mapping
            The entry's manifest (its code and input fingerprints, output records).
        """
        self.prepare_write()
        self._upgraded(self._sharded)
        bound = {**manifest, "namespace": namespace, "key": key}
        data = encode_manifest(bound, config.secret_key())
        staged = self.backend.stage(
            layout.staging(), [memoryview(data)], fsync=config.fsync_enabled()
        )
        self.backend.publish(staged, layout.entry(namespace, key, sharded=self.sharded))

    def read_entry(
        self, namespace: str, key: str, *, hot_only: bool = False
    ) -> dict[str, Any] | None:
        """Return the manifest of an entry, ``None`` if there is none.

        ``hot_only`` parses only what a hit needs (outputs, created, duration, meta), and
        reuses a record this process already read and verified while the stored object is
        the same one (a commit always publishes a new one). Do not mutate the result.

        Raises
        ------
        CorruptManifestError
            The manifest exists but is damaged, oversized, or names another key or
            namespace; it is removed so the entry can be rewritten.
        SignatureError
            Signing is required (``CHECKPOINT_MAGIC_SECRET``) and the entry is unsigned or
            its signature is wrong; the entry is left in place and nothing of it is parsed.
        OSError
            The store cannot be read (permissions, a link refused...).

        Parameters
        ----------
        namespace : str
            The function, block or cell the entry belongs to.
        key : str
            The entry's key.
        hot_only : bool, default False
            Only the part a hit needs (outputs, times), not the code parts and inputs.

        Returns
        -------
        dict or None
            The manifest, checked against its key and (when required) its signature.
        """
        if not self._format_checked:
            self.check_format()
        sharded = self._sharded
        name = layout.entry(namespace, key, sharded=sharded)
        secret = config.secret_key()
        cached = self._hot_records.get(name) if hot_only else None
        if cached is not None:  # one stat tells whether the manifest is still the same object
            version = self.backend.version(name)
            if version is None:
                return (
                    self.read_entry(namespace, key, hot_only=True)
                    if self._upgraded(sharded)
                    else None
                )
            if cached[0] == version and cached[1] == secret:
                return cached[2]
        try:
            # Sized by the stat: reading MANIFEST_MAX_BYTES + 1 allocates 16 MiB per read.
            data, st = self.backend.read_small(name, MANIFEST_MAX_BYTES)
        except FileNotFoundError:
            if self._upgraded(sharded):
                return self.read_entry(namespace, key, hot_only=hot_only)
            return None
        except UnsafeStoreError:
            # A link where the manifest should be: for a hit, nothing is stored there, as lstat
            # says (the commit replaces the link itself, never its target), not a store fault.
            if hot_only and self.backend.version(name) is None:
                return None
            raise
        manifest = self._parse_manifest(name, data, namespace, key, secret, hot_only=hot_only)
        if hot_only:  # decode inline values once: a remembered record serves many hits
            manifest["outputs"] = _with_payloads(manifest.get("outputs"))
        # An object modified within a timestamp tick could be replaced again unseen: it is
        # not remembered yet (see TICK_SECONDS).
        if hot_only and st.version is not None and time.time() - st.mtime > TICK_SECONDS:
            if len(self._hot_records) >= _HOT_RECORDS_MAX:
                self._hot_records.clear()
            self._hot_records[name] = (st.version, secret, manifest)
        return manifest

    def _parse_manifest(
        self,
        name: str,
        data: bytes,
        namespace: str,
        key: str,
        secret: bytes | None,
        *,
        hot_only: bool = False,
    ) -> dict[str, Any]:
        # The secret the caller read once: the record it remembers is keyed on that one.
        manifest, damage, problem = decode_manifest(
            data, secret, hot_only=hot_only, namespace=namespace, key=key
        )
        if problem is not None:
            raise SignatureError(f"entry {key}: {problem}; it was not loaded")
        if manifest is None:
            with contextlib.suppress(OSError):
                self.backend.delete(name)
            raise CorruptManifestError(f"manifest {name} is damaged ({damage}); it was removed")
        return manifest

    def clear(self, namespace: str | None = None, *, force: bool = False) -> int:
        """Delete the entries of ``namespace`` (every entry if ``None``); return how many.

        Pinned entries are kept unless ``force``. Their blobs are freed later by garbage
        collection (``checkpoint-magic gc``), which also removes their usage records.

        Parameters
        ----------
        namespace : str, optional
            Only this namespace; every namespace when ``None``.
        force : bool, default False
            Also delete pinned entries.

        Returns
        -------
        int
            How many entries were deleted.
        """
        removed = 0
        sharded = self.sharded
        for folder, key in list(self.iter_entry_keys(namespace)):
            if not force and self.backend.stat(
                layout.state_in(folder, key, layout.PIN, sharded=sharded)
            ):
                continue
            removed += self.backend.delete(layout.entry_in(folder, key, sharded=sharded))
        return removed


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


def get_store(store: Store | str | os.PathLike[str] | None = None) -> Store:
    """The :class:`Store` of ``store``, shared per location in a process (checked once).

    Parameters
    ----------
    store : Store, str, os.PathLike or None
        A store (returned as is), a path or URL, or ``None`` for the configured default.

    Returns
    -------
    Store
        The same instance for every call with the same location in this process.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> get_store(d) is get_store(d)
    True
    """
    if isinstance(store, Store):
        return store
    root = config.resolve_store_location(store)
    with _stores_lock:
        found = _stores.get(root)
        if found is None:
            found = _stores[root] = Store(root)
        return found
