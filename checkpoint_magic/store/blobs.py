"""Low-level blob I/O: zero-copy byte views, full reads and writes, pipelined verified reads.

It also owns the blob sources a codec decodes from.

These helpers never allocate a copy of the data they move: a value's buffers are written
as they are, and reads fill buffers the caller allocated (numpy-allocated, so large reads
do not pay for a fresh ``bytearray``'s page faults twice).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn, Protocol

import numpy as np

from ..exceptions import CheckpointError
from .digests import CHUNK_BYTES, chunk_digest, combine

__all__ = [
    "CorruptBlobError",
    "InlineBlobSource",
    "MultiHasher",
    "StoredBlobSource",
    "byte_view",
    "chunked_read_digest",
    "hash_views",
    "pipelined_read",
    "readinto_full",
    "write_full",
    "write_to_fd",
]

#: Chunk size of a pipelined (read while hashing) blob read.
CHUNK = 8 << 20
#: Views at least this large are written through numpy's ``tofile``.
TOFILE_MIN = 1 << 20


class CorruptBlobError(CheckpointError, OSError):
    """A blob is missing, truncated, or its bytes do not hash to its name."""


class BlobReads(Protocol):
    """What :class:`StoredBlobSource` asks of the store: verified reads of a blob reference."""

    def read_blob_into(self, ref: Mapping[str, Any], buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` with the verified bytes of blob ``ref``.

        Parameters
        ----------
        ref : mapping
            A blob reference (``digest``, ``size``...).
        buffers : sequence of memoryview
            Writable buffers whose sizes add up to the blob's.
        """

    def verified_blob_path(self, ref: Mapping[str, Any]) -> str:
        """A local path of blob ``ref`` whose content was checked.

        Parameters
        ----------
        ref : mapping
            A blob reference.

        Returns
        -------
        str
            A local file holding exactly the blob's bytes.
        """


class StoredBlobSource:
    """The blob source a codec decodes a stored value from (every read verified by the store).

    Parameters
    ----------
    store : BlobReads
        The store (anything with verified ``read_blob_into`` and ``verified_blob_path``).
    refs : sequence of mapping
        The value's blob references from its manifest (``digest``, ``size``...).
    """

    def __init__(self, store: BlobReads, refs: Sequence[Mapping[str, Any]]):
        self._store = store
        self._refs = refs

    def size(self, index: int) -> int:
        """Size of blob ``index``, as recorded in the manifest.

        Parameters
        ----------
        index : int
            Position of the blob in the value's blob list.

        Returns
        -------
        int
            The blob's size in bytes.
        """
        return int(self._refs[index]["size"])

    def read_bytes(self, index: int) -> bytes | bytearray:
        """Blob ``index`` as a bytearray (``pickle.loads`` takes it without a copy).

        Parameters
        ----------
        index : int
            Position of the blob in the value's blob list.

        Returns
        -------
        bytearray
            The blob's bytes, verified.

        Raises
        ------
        CorruptBlobError
            The blob is missing, truncated or damaged.
        """
        buf = bytearray(self.size(index))
        self.read_into(index, [memoryview(buf)])
        return buf

    def read_into(self, index: int, buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` with blob ``index``.

        Parameters
        ----------
        index : int
            Position of the blob in the value's blob list.
        buffers : sequence of memoryview
            Writable buffers filled in order; their sizes add up to the blob's.

        Raises
        ------
        CorruptBlobError
            The blob is missing, truncated or damaged.
        """
        self._store.read_blob_into(self._refs[index], buffers)

    def path(self, index: int) -> str:
        """A local path of blob ``index``, after checking its content (for memory-mapping).

        Parameters
        ----------
        index : int
            Position of the blob in the value's blob list.

        Returns
        -------
        str
            A local file holding exactly the blob's bytes.

        Raises
        ------
        CorruptBlobError
            The blob is missing, truncated or damaged.
        """
        return self._store.verified_blob_path(self._refs[index])


class InlineBlobSource:
    """The blob source of a value kept inside its manifest (covered by the manifest's checksum).

    Parameters
    ----------
    payload : bytes
        The value's only blob.

    Examples
    --------
    >>> source = InlineBlobSource(b"abc")
    >>> buf = bytearray(3)
    >>> source.read_into(0, [memoryview(buf)])
    >>> source.size(0), bytes(buf)
    (3, b'abc')
    """

    def __init__(self, payload: bytes):
        self._payload = payload

    def size(self, index: int) -> int:
        """Size of the payload.

        Parameters
        ----------
        index : int
            Ignored: an inline value has one payload.

        Returns
        -------
        int
            The payload's size in bytes.
        """
        return len(self._payload)

    def read_bytes(self, index: int) -> bytes | bytearray:
        """The payload.

        Parameters
        ----------
        index : int
            Ignored: an inline value has one payload.

        Returns
        -------
        bytes
            The payload, covered by the manifest's checksum.
        """
        return self._payload

    def read_into(self, index: int, buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` with the payload.

        Parameters
        ----------
        index : int
            Ignored: an inline value has one payload.
        buffers : sequence of memoryview
            Writable buffers filled in order; their sizes add up to the blob's.
        """
        offset = 0
        for view in buffers:
            view[:] = self._payload[offset : offset + view.nbytes]
            offset += view.nbytes

    def path(self, index: int) -> NoReturn:  # pragma: no cover - inline values are never mmapped
        """Never: an inline value has no file.

        Parameters
        ----------
        index : int
            Ignored: an inline value has one payload.

        Raises
        ------
        CorruptBlobError
            Always.
        """
        raise CorruptBlobError("an inline value has no file")


class MultiHasher:
    """Feeds every update to several hashers (a thread target hashes for all of them).

    Parameters
    ----------
    *hashers : hasher or None
        Objects with ``update``; ``None`` entries are skipped.
    """

    def __init__(self, *hashers: Any):
        self.hashers = [h for h in hashers if h is not None]

    def update(self, data: Any) -> None:
        """Feed ``data`` to every hasher.

        Parameters
        ----------
        data : bytes-like
            The next bytes of the stream.
        """
        for hasher in self.hashers:
            hasher.update(data)


def byte_view(buffer: Any) -> memoryview:
    """A flat, unsigned-byte view of any buffer (or ``PickleBuffer``), without copying it.

    Parameters
    ----------
    buffer : buffer
        A C-contiguous object supporting the buffer protocol.

    Returns
    -------
    memoryview
        Format ``"B"``, one dimension.

    Examples
    --------
    >>> import numpy as np
    >>> byte_view(np.zeros((2, 3), dtype=np.float32)).nbytes
    24
    """
    view = buffer.raw() if hasattr(buffer, "raw") else memoryview(buffer)
    return view if (view.format == "B" and view.ndim == 1) else view.cast("B")


def readinto_full(f: Any, view: memoryview) -> None:
    """Fill ``view`` from ``f``.

    Parameters
    ----------
    f : binary file
        Open for reading, with ``readinto`` and ``name``.
    view : memoryview
        The writable buffer to fill completely.

    Raises
    ------
    CorruptBlobError
        The file ends before ``view`` is full.
    """
    done = 0
    total = view.nbytes
    while done < total:
        n = f.readinto(view[done:])
        if not n:
            raise CorruptBlobError(f"blob {f.name} is shorter than recorded")
        done += n


def write_to_fd(fd: int, view: memoryview) -> None:
    """Write all of ``view`` to the descriptor ``fd`` with ``os.write``, continuing short writes.

    Parameters
    ----------
    fd : int
        A file descriptor open for writing.
    view : memoryview
        The bytes to write (any C-contiguous buffer: cast to bytes).

    Examples
    --------
    >>> import os, tempfile
    >>> fd, path = tempfile.mkstemp()
    >>> write_to_fd(fd, memoryview(b"hello")); os.close(fd)
    >>> with open(path, "rb") as f:
    ...     f.read()
    b'hello'
    >>> os.remove(path)
    """
    data = view if view.ndim == 1 and view.format in ("B", "b", "c") else view.cast("B")
    while data:
        data = data[os.write(fd, data) :]


def write_full(f: Any, view: memoryview) -> None:
    """Write all of ``view`` to ``f``, a binary file or a file descriptor.

    Large views bypass Python's buffering. A descriptor is written with ``os.write`` (no file
    object: fewer system calls for the small files of a miss); a short write is continued.

    Parameters
    ----------
    f : binary file or int
        Open for writing.
    view : memoryview
        The bytes to write.
    """
    if isinstance(f, int):
        write_to_fd(f, view)
    elif view.nbytes >= TOFILE_MIN:
        # numpy's tofile (one fwrite with the GIL released) measured ~25% faster here than
        # os.write or FileIO.write of the same 256 MiB buffer.
        f.flush()
        np.frombuffer(view, dtype=np.uint8).tofile(f)
    else:
        f.write(view)


def hash_views(hasher: Any, views: Sequence[memoryview]) -> None:
    """Feed ``views`` to ``hasher`` in order (a thread target: xxhash releases the GIL).

    Parameters
    ----------
    hasher : hasher
        An object with ``update``.
    views : sequence of memoryview
        The buffers, hashed as one stream.
    """
    for view in views:
        hasher.update(view)  # releases the GIL for large buffers


def pipelined_read(f: Any, views: Sequence[memoryview], hasher: Any) -> None:
    """Read ``views`` from ``f`` in chunks while another thread hashes the chunks already read.

    Parameters
    ----------
    f : binary file
        Open for reading, positioned at the blob's start.
    views : sequence of memoryview
        Writable buffers filled in order.
    hasher : hasher
        Fed every chunk, in order; the caller compares its digest afterwards.

    Raises
    ------
    CorruptBlobError
        The file ends early.
    """
    pending: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()

    def consume() -> None:
        while (chunk := pending.get()) is not None:
            hasher.update(chunk)  # releases the GIL for large buffers

    worker = threading.Thread(target=consume, name="checkpoint-magic-verify", daemon=True)
    worker.start()
    try:
        for view in views:
            for start in range(0, view.nbytes, CHUNK):
                chunk = view[start : start + CHUNK]
                readinto_full(f, chunk)
                pending.put(chunk)
    finally:
        pending.put(None)
        worker.join()


def chunked_read_digest(f: Any, views: Sequence[memoryview], workers: int | None = None) -> str:
    """Fill ``views`` from the blob file ``f`` and return its ``"blake3-chunks"`` digest.

    The blob's chunks are split into ``workers`` contiguous runs, one per thread (the
    caller's included); each thread copies a chunk and hashes it while it is still in the
    CPU cache: one pass over memory, every core busy (a signed read then costs little more
    than an unsigned one, whose hash is far cheaper).

    Parameters
    ----------
    f : binary file
        The blob's file (read by offset from its start; its position does not matter).
    views : sequence of memoryview
        The writable buffers filled back to back (a header and an array's data, say), as
        long as the blob together.
    workers : int, optional
        Threads to use (default: the CPU count, at most 4).

    Returns
    -------
    str
        The digest (see :class:`~checkpoint_magic.store.digests.ChunkedBlake3`).

    Raises
    ------
    CorruptBlobError
        The file ends before the views are full.
    """
    fd = f.fileno()
    placed = []  # (offset in the blob, view)
    total = 0
    for view in views:
        placed.append((total, view))
        total += view.nbytes
    starts = range(0, total, CHUNK_BYTES)
    digests: list[bytes] = [b""] * len(starts)

    def pieces(start: int) -> list[tuple[int, memoryview]]:
        """The parts of the views chunk ``start`` covers, with their offsets in the blob."""
        end = min(start + CHUNK_BYTES, total)
        return [
            (max(start, at), view[max(start - at, 0) : end - at])
            for at, view in placed
            if at < end and at + view.nbytes > start
        ]

    def run(first: int, stop: int) -> None:
        for index in range(first, stop):
            parts = pieces(starts[index])
            for at, part in parts:
                done = 0
                while done < part.nbytes:
                    n = os.preadv(fd, [part[done:]], at + done)
                    if not n:
                        raise CorruptBlobError(f"blob {f.name} is shorter than recorded")
                    done += n
            digests[index] = chunk_digest(*(part for _, part in parts))

    workers = max(1, min(workers or min(4, os.cpu_count() or 1), len(starts)))
    bounds = [len(starts) * i // workers for i in range(workers + 1)]
    with ThreadPoolExecutor(workers - 1 or 1, thread_name_prefix="checkpoint-magic-verify") as pool:
        others = [pool.submit(run, bounds[i], bounds[i + 1]) for i in range(1, workers)]
        run(bounds[0], bounds[1])  # the caller's share
        for done_run in others:
            done_run.result()
    return combine(digests, total)
