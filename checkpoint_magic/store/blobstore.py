"""The blobs of a store: written once by content, read back verified against their name.

Blobs are written once by content (deduplicated, create-if-absent) and read back verified
against their name (and, in signed stores, a cryptographic digest); a blob this process verified
is trusted again only while its file's stat signature is unchanged.

:class:`BlobStore` is the half of :class:`~checkpoint_magic.store.Store` that handles blobs;
it is not used on its own.
"""

from __future__ import annotations

import contextlib
import logging
import mmap
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import xxhash

from .. import config
from ..exceptions import SignatureError
from . import layout
from .backends import TICK_SECONDS, Staged, StoreBackend
from .blobs import (
    CorruptBlobError,
    MultiHasher,
    chunked_read_digest,
    hash_views,
    pipelined_read,
    readinto_full,
)
from .blobs import byte_view as _view
from .digests import STRONG_ALGORITHMS, new_strong_hasher, strong_hasher

__all__ = ["BlobStore", "address_hasher"]

logger = logging.getLogger("checkpoint_magic.store.core")

#: The hash blobs are addressed (named) by: fast, not collision resistant (see digests).
address_hasher = xxhash.xxh3_128
_OVERLAP_MIN = 24 << 20
#: Verified blobs remembered per store; a blob changed less than this long ago is not.
_VERIFIED_MAX = 4096


def _fstat(f: Any) -> os.stat_result | None:
    """The stat of an open local file; ``None`` for a stream without a descriptor (URL stores)."""
    try:
        return os.fstat(f.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None


def _stat_signature(st: os.stat_result) -> tuple[int, ...]:
    """What identifies a file's content without reading it: moves with any change of it."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class BlobStore:
    """Blob writing and verified reading, for :class:`~checkpoint_magic.store.Store`."""

    backend: StoreBackend
    location: str
    root: Path
    _local: threading.local
    prepare_write: Callable[[], None]
    _verified_blobs: dict[str, tuple[tuple[str, str], tuple[int, ...]]]

    def blob_path(self, digest: str) -> Path:
        """The local path of the blob named ``digest`` (it may not exist).

        Parameters
        ----------
        digest : str
            The blob's xxh3-128 address.

        Returns
        -------
        pathlib.Path
            Its path under the store root (local stores).
        """
        return self.root / layout.blob(digest)

    def _claim(self, digest: str) -> None:
        lease = getattr(self._local, "commit", None)
        if lease is not None:
            lease.claim(digest)

    def _existing_blob(self, digest: str, size: int) -> bool:
        """Whether the blob is already stored (then its mtime is refreshed)."""
        name = layout.blob(digest)
        st = self.backend.stat(name)
        if st is None or st.size != size:
            return False
        # A gc with a grace period spares blobs touched recently.
        with contextlib.suppress(OSError):
            self.backend.touch(name)
        return True

    def put_blob(self, buffers: Sequence[Any]) -> dict[str, Any]:
        """Store the concatenation of ``buffers`` as one blob; return its reference.

        The reference is ``{"digest", "size"}``, plus the cryptographic digest
        (``"blake3-chunks"``, else ``"sha256"``) when signing is on. The buffers are hashed and written
        in place (no copy); a blob that already exists is not written again. A large blob
        is hashed on a second core while it is staged (a miss costs about one write).

        Parameters
        ----------
        buffers : sequence of buffers
            The bytes of the value, written back to back as one blob (never copied).

        Returns
        -------
        dict
            The blob's reference: ``digest``, ``size`` (and the strong digest in signed stores).
        """
        self.prepare_write()
        views = [_view(b) for b in buffers]
        size = sum(view.nbytes for view in views)
        hasher = address_hasher()
        strong_name, strong = (
            new_strong_hasher() if config.secret_key() is not None else (None, None)
        )
        both = MultiHasher(hasher, strong)
        ref: dict[str, Any] = {"size": size}
        if size < _OVERLAP_MIN:
            hash_views(both, views)
            digest = ref["digest"] = hasher.hexdigest()
            if strong is not None and strong_name is not None:
                ref[strong_name] = strong.hexdigest()
            self._claim(digest)
            if not self._existing_blob(digest, size):
                self._publish_blob(digest, views)
            return ref
        worker = threading.Thread(
            target=hash_views, args=(both, views), name="checkpoint-magic-hash"
        )
        worker.start()
        try:
            staged = self.backend.stage(layout.staging(), views, fsync=config.fsync_enabled())
        finally:
            worker.join()
        digest = ref["digest"] = hasher.hexdigest()
        if strong is not None and strong_name is not None:
            ref[strong_name] = strong.hexdigest()
        self._claim(digest)
        if self._existing_blob(digest, size):
            self.backend.discard(staged)
        else:
            self._publish_blob(digest, views, staged)
        return ref

    def _publish_blob(
        self, digest: str, views: Sequence[memoryview], staged: Staged | None = None
    ) -> None:
        """Publish a blob (create-if-absent); a squatter at its name that is no blob is removed.

        A link, a FIFO or a device planted under a blob's name is never read (reads refuse
        anything but a regular file), but it would make every commit of that blob a no-op:
        it is removed, once, and the blob published.
        """
        name = layout.blob(digest)
        for _ in range(2):
            if staged is None:
                staged = self.backend.stage(layout.staging(), views, fsync=config.fsync_enabled())
            if self.backend.publish(staged, name, replace=False) or self.backend.stat(name):
                return
            staged = None
            logger.warning("removed %s/%s: it is not a blob the store wrote", self.location, name)
            with contextlib.suppress(OSError):
                self.backend.delete(name)

    def _discard_corrupt(self, digest: str, why: str) -> CorruptBlobError:
        with contextlib.suppress(OSError):
            self.backend.delete(layout.blob(digest))
        logger.warning("removed corrupt blob %s (%s)", digest, why)
        return CorruptBlobError(f"blob {digest} is corrupt ({why})")

    def _hashers(self, ref: Mapping[str, Any]) -> tuple[Any, Any, str]:
        """``(hasher, expected hexdigest, name)`` a read is checked with.

        Unsigned stores check the xxh3 name; signed ones the cryptographic digest the
        signed manifest recorded (a blob without one is refused).
        """
        if config.secret_key() is None:
            return address_hasher(), str(ref["digest"]), "xxh3"
        for name in STRONG_ALGORITHMS:
            if name in ref:
                hasher = strong_hasher(name)
                if hasher is None:
                    raise SignatureError(
                        f"blob {ref['digest']} is signed with {name}, unavailable here; "
                        f"install it (pip install {name.split('-')[0]}) to read it"
                    )
                return hasher, str(ref[name]), name
        raise SignatureError(
            f"blob {ref['digest']} has no cryptographic digest, and CHECKPOINT_MAGIC_SECRET "
            "requires one; the entry was not loaded"
        )

    def read_blob_into(self, ref: Mapping[str, Any], buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` with the bytes of the blob ``ref`` names, verifying them.

        Large blobs are hashed on a second thread while the next chunk is read, so
        verification costs little more than the read itself.

        Parameters
        ----------
        ref : mapping
            The blob's reference in a record (``digest``, ``size``, and in signed stores its
            cryptographic digest).
        buffers : sequence of buffers
            The bytes of the value, written back to back as one blob (never copied).

        Raises
        ------
        CorruptBlobError
            When the blob is missing, or its size or content does not match its reference
            (a corrupt blob is removed from the store).
        """
        digest, size = str(ref["digest"]), int(ref["size"])
        hasher, expected, algorithm = self._hashers(ref)
        try:
            f, st = self.backend.open_read(layout.blob(digest))
        except FileNotFoundError:
            raise CorruptBlobError(f"blob {digest} is missing") from None
        with f:
            if st.size != size:
                raise self._discard_corrupt(digest, f"size {st.size}, expected {size}")
            views = [v for v in buffers if v.nbytes]
            # Only the store's own local files can be trusted by their stat signature.
            before = _fstat(f) if self.backend.files_are_local else None
            path = self.backend.local_path(layout.blob(digest)) if before is not None else None
            known = None if path is None else self._trusted_signature(path, algorithm, expected)
            if known is not None and before is not None and _stat_signature(before) == known:
                # Verified by this process and unchanged since: read without hashing, and
                # check the file did not change while it was read (ctime would move).
                for view in views:
                    readinto_full(f, view)
                if _stat_signature(os.fstat(f.fileno())) == known:
                    return
                hasher = self._hashers(ref)[0]
                f.seek(0)
                views = [v for v in buffers if v.nbytes]
            if size < _OVERLAP_MIN:
                for view in views:
                    readinto_full(f, view)
                    hasher.update(view)
                actual = hasher.hexdigest()
            elif algorithm == "blake3-chunks" and self.backend.files_are_local:
                actual = chunked_read_digest(f, views)  # copied and hashed in parallel
            else:
                pipelined_read(f, views, hasher)
                actual = hasher.hexdigest()
        if actual != expected:
            raise self._discard_corrupt(digest, "content does not match its hash")
        if path is not None and before is not None:
            self._remember_verified(path, (algorithm, expected), before)

    def _trusted_signature(
        self, path: str, algorithm: str, expected: str
    ) -> tuple[int, ...] | None:
        """The stat signature at which this process verified the blob at ``path``."""
        known = self._verified_blobs.get(path)
        return known[1] if known is not None and known[0] == (algorithm, expected) else None

    def verified_blob_path(self, ref: Mapping[str, Any]) -> str:
        """A local path of the blob ``ref`` names, after checking its whole content.

        Parameters
        ----------
        ref : mapping
            The blob's reference in a record (``digest``, ``size``, and in signed stores its
            cryptographic digest).

        Returns
        -------
        str
            A local path of the blob, its content checked against its name.

        Raises
        ------
        CorruptBlobError
            When the blob has no local file (a URL store), is missing, or its size or content
            does not match its reference (a corrupt blob is removed from the store).
        """
        digest, size = str(ref["digest"]), int(ref["size"])
        path = self.backend.local_path(layout.blob(digest))
        if path is None:
            raise CorruptBlobError(f"blob {digest} has no local file to memory-map")
        hasher, expected, algorithm = self._hashers(ref)
        # A blob this process verified is not hashed again while its file is provably the
        # same: device, inode, size, mtime and ctime (which any in-place change or utime
        # call moves, and which cannot be set back) all unchanged.
        known = self._verified_blobs.get(path)
        if known is not None and known[0] == (algorithm, expected):
            try:
                if _stat_signature(os.stat(path, follow_symlinks=False)) == known[1]:
                    return path
            except OSError:
                pass
        try:
            f, st = self.backend.open_read(layout.blob(digest))
        except FileNotFoundError:
            raise CorruptBlobError(f"blob {digest} is missing") from None
        with f:
            if st.size != size:
                raise self._discard_corrupt(digest, f"size {st.size}, expected {size}")
            before = os.fstat(f.fileno())  # taken before hashing: a change during it moves ctime
            if size:
                with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    hasher.update(mapped)
        if hasher.hexdigest() != expected:
            raise self._discard_corrupt(digest, "content does not match its hash")
        self._remember_verified(path, (algorithm, expected), before)
        return path

    def _remember_verified(
        self, path: str, digest: tuple[str, str], before: os.stat_result
    ) -> None:
        """Remember that the blob file ``path`` (stat'ed ``before`` hashing) matched ``digest``."""
        if time.time() - before.st_ctime > TICK_SECONDS:  # not changed within a timestamp tick
            if len(self._verified_blobs) >= _VERIFIED_MAX:
                self._verified_blobs.clear()
            self._verified_blobs[path] = (digest, _stat_signature(before))

    def verified_signature(self, path: str) -> tuple[int, ...] | None:
        """The stat signature (dev, ino, size, mtime_ns, ctime_ns) at which this process last
        verified the blob file ``path`` (see :meth:`verified_blob_path`), or ``None``.

        Parameters
        ----------
        path : str
            A local blob file.

        Returns
        -------
        tuple of int or None
            The stat signature at which this process verified the file, if it did.
        """
        known = self._verified_blobs.get(path)
        return None if known is None else known[1]

    # ------------------------------------------------------------------ values
