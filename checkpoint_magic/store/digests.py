"""The cryptographic digest that signed stores record for every blob (BLAKE3, else SHA-256).

xxh3-128 names blobs (fast, and enough to detect damage) but is not collision resistant:
someone able to write to a shared store could craft a second blob under the same name.
Signed manifests therefore also name every blob by a cryptographic digest, checked on
read. BLAKE3 (the ``blake3`` package, a dependency) hashes 256 MiB in ~36 ms on one core
here, SHA-256 (standard library, SHA-NI) in ~136 ms and BLAKE2b in ~196 ms; all release
the GIL, so the hash overlaps the read or write it checks. New blobs are named by
``"blake3-chunks"`` (:class:`ChunkedBlake3`: BLAKE3 over the BLAKE3 digests of 4 MiB
chunks), which lets a read copy and hash the chunks on every core at once, each while it
is in the CPU cache; blobs named by plain ``"blake3"`` (stores written before) still read. The algorithm is named in the signed manifest (the
key of the digest in a blob reference): a process without ``blake3`` (an install that
skipped dependencies) writes SHA-256, and refuses a BLAKE3-signed entry as a miss with a
warning instead of trusting it unverified.

Examples
--------
>>> name, hasher = new_strong_hasher()
>>> _ = hasher.update(b"abc")
>>> name in ("blake3-chunks", "sha256") and len(hasher.hexdigest()) == 64
True
>>> strong_hasher("sha256") is not None, strong_hasher("md5")
(True, None)
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = [
    "CHUNK_BYTES",
    "STRONG_ALGORITHMS",
    "ChunkedBlake3",
    "chunk_digest",
    "combine",
    "new_strong_hasher",
    "strong_hasher",
]

_blake3: Any
try:  # a dependency; 4x faster than SHA-256 here
    import blake3 as _blake3
except ImportError:  # pragma: no cover - depends on the environment
    _blake3 = None

#: The algorithms a blob reference may name, fastest first (new blobs get the first one
#: available; ``"blake3"`` is what stores written before ``"blake3-chunks"`` recorded).
STRONG_ALGORITHMS = ("blake3-chunks", "blake3", "sha256")
#: Bytes per chunk of ``"blake3-chunks"``.
CHUNK_BYTES = 4 << 20
_CHUNKS_DOMAIN = b"checkpoint_magic blake3-chunks 1\0"


class ChunkedBlake3:
    """BLAKE3 over the BLAKE3 digests of consecutive 4 MiB chunks: ``"blake3-chunks"``.

    The digest is ``blake3(domain || total length || digest(chunk 0) || digest(chunk 1)
    || ...)``, as collision resistant as BLAKE3 itself (a collision of the whole is one of
    the chunk list or of a chunk). What it buys: the chunks are independent, so a read
    can copy and hash each chunk in the thread that copied it while it is still in the
    CPU cache (:func:`combine` joins the digests), instead of hashing the whole blob in a
    second pass over memory once it is read.

    Raises
    ------
    RuntimeError
        When the ``blake3`` package is not installed (use ``"sha256"`` then).

    Examples
    --------
    >>> data = bytes(range(256)) * 40_000  # 10 MB: three chunks
    >>> whole = ChunkedBlake3()
    >>> whole.update(data)
    >>> pieces = ChunkedBlake3()
    >>> for i in range(0, len(data), 1_000_000):
    ...     pieces.update(data[i : i + 1_000_000])
    >>> whole.hexdigest() == pieces.hexdigest() == combine(
    ...     [chunk_digest(memoryview(data)[i : i + CHUNK_BYTES])
    ...      for i in range(0, len(data), CHUNK_BYTES)], len(data))
    True
    """

    def __init__(self) -> None:
        if _blake3 is None:  # pragma: no cover - depends on the environment
            raise RuntimeError("blake3-chunks needs the blake3 package")
        self._digests: list[bytes] = []
        self._chunk = _blake3.blake3(max_threads=_blake3.blake3.AUTO)
        self._filled = 0  # bytes of the current chunk hashed so far
        self._total = 0

    def update(self, data: Any) -> None:
        """Hash more bytes of the blob, in order.

        Parameters
        ----------
        data : bytes-like
            The next bytes.
        """
        view = memoryview(data).cast("B")
        self._total += view.nbytes
        while view.nbytes:
            take = min(CHUNK_BYTES - self._filled, view.nbytes)
            self._chunk.update(view[:take])
            self._filled += take
            view = view[take:]
            if self._filled == CHUNK_BYTES:
                self._digests.append(self._chunk.digest())
                self._chunk = _blake3.blake3(max_threads=_blake3.blake3.AUTO)
                self._filled = 0

    def hexdigest(self) -> str:
        """The digest of every byte given so far.

        Returns
        -------
        str
            64 hexadecimal digits.
        """
        digests = self._digests + ([self._chunk.digest()] if self._filled else [])
        return combine(digests, self._total)


def chunk_digest(*parts: Any) -> bytes:
    """The BLAKE3 digest of one chunk of a ``"blake3-chunks"`` blob (one thread).

    Parameters
    ----------
    *parts : bytes-like
        The chunk's bytes, in order (one buffer, or the pieces of the buffers it spans):
        :data:`CHUNK_BYTES` in all, except for the blob's last chunk.

    Returns
    -------
    bytes
        32 bytes.
    """
    hasher = _blake3.blake3()
    for part in parts:
        hasher.update(part)
    return bytes(hasher.digest())


def combine(digests: list[bytes], total: int) -> str:
    """The ``"blake3-chunks"`` digest of a blob from its chunks' digests, in order.

    Parameters
    ----------
    digests : list of bytes
        :func:`chunk_digest` of each chunk.
    total : int
        The blob's length in bytes.

    Returns
    -------
    str
        64 hexadecimal digits.
    """
    top = _blake3.blake3(_CHUNKS_DOMAIN + total.to_bytes(8, "little"))
    for digest in digests:
        top.update(digest)
    return str(top.hexdigest())


def strong_hasher(name: str) -> Any | None:
    """A new hasher of algorithm ``name``.

    Parameters
    ----------
    name : str
        One of :data:`STRONG_ALGORITHMS` (as a signed blob reference names it).

    Returns
    -------
    hasher or None
        An object with ``update`` and ``hexdigest`` (64 hex digits); ``None`` if the
        algorithm is unknown or unavailable here (the caller then refuses the entry).
    """
    if name == "blake3-chunks" and _blake3 is not None:
        return ChunkedBlake3()
    if name == "blake3" and _blake3 is not None:
        return _blake3.blake3(max_threads=_blake3.blake3.AUTO)
    if name == "sha256":
        return hashlib.sha256()
    return None


def new_strong_hasher() -> tuple[str, Any]:
    """``(algorithm, hasher)`` of the fastest cryptographic hash available.

    Returns
    -------
    algorithm : str
        ``"blake3-chunks"`` if the ``blake3`` package is installed, else ``"sha256"``.
    hasher : object
        A new hasher of that algorithm.

    Raises
    ------
    RuntimeError
        When no algorithm is available (never in practice: ``hashlib`` always has sha256).
    """
    for name in STRONG_ALGORITHMS:
        hasher = strong_hasher(name)
        if hasher is not None:
            return name, hasher
    raise RuntimeError("no cryptographic hash available")  # pragma: no cover - sha256 always is
