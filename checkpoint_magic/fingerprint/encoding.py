"""The framing every fingerprint is written in: type tags, lengths, xxh3, the scheme version.

A leaf: every other module of :mod:`checkpoint_magic.fingerprint` builds on it and it imports
none of them. A value is written as a one-byte tag, a length where the tag does not fix the
size, then its bytes; :data:`HASH_SCHEME_VERSION` seeds every value hasher and enters every
code fingerprint, so bumping it turns every old entry into a miss (never a wrong hit).
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import xxhash

__all__ = ["HASH_SCHEME_VERSION", "digest_bytes", "frame", "hex_digest"]

#: Version of the encoding; bump it whenever any value's or code's fingerprint changes.
#: 2: dicts in insertion order; estimators by their whole state (private attributes too).
HASH_SCHEME_VERSION = 2

xxh = xxhash.xxh3_128
pack_tag = struct.Struct("<cQ").pack  # tag + length or count
pack_int = struct.Struct("<cq").pack  # tag + int64
pack_float = struct.Struct("<cd").pack  # tag + float64 bit pattern
pack_complex = struct.Struct("<cdd").pack
BLOCK = 1 << 20  # bytes copied at a time from a strided array


def write_str(h: Any, text: str) -> None:
    """Write ``text`` into the hasher ``h`` as tag ``s``, its UTF-8 length, its UTF-8 bytes.

    Parameters
    ----------
    h : xxhash.xxh3_128
        The hasher to update (anything with ``update(bytes)``).
    text : str
        The text; lone surrogates are kept (``surrogatepass``).

    Examples
    --------
    >>> h = xxh()
    >>> write_str(h, "ab")
    >>> h.hexdigest() == xxh(pack_tag(b"s", 2) + b"ab").hexdigest()
    True
    """
    data = text.encode("utf-8", "surrogatepass")
    h.update(pack_tag(b"s", len(data)))
    h.update(data)


def pack_shape(shape: tuple[int, ...]) -> bytes:
    """Encode an array shape: tag ``#``, the number of dimensions, then each as int64.

    Parameters
    ----------
    shape : tuple of int
        The shape.

    Returns
    -------
    bytes
        ``9 + 8 * len(shape)`` bytes.

    Examples
    --------
    >>> len(pack_shape((2, 3)))
    25
    """
    return pack_tag(b"#", len(shape)) + struct.pack(f"<{len(shape)}q", *shape)


def frame(*items: str | bytes) -> bytes:
    """Length-prefix every item so that no two different sequences give the same bytes.

    Parameters
    ----------
    *items : str or bytes
        The items; a ``str`` is UTF-8 encoded (lone surrogates kept).

    Returns
    -------
    bytes
        Each item as its little-endian uint64 length followed by its bytes.

    Examples
    --------
    >>> frame("ab", "c") != frame("a", "bc")
    True
    """
    out: list[bytes] = []
    for item in items:
        data = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
        out += (struct.pack("<Q", len(data)), data)
    return b"".join(out)


def hex_digest(*items: str | bytes) -> str:
    """Return the xxh3-128 hex digest of the :func:`frame` of ``items``.

    Parameters
    ----------
    *items : str or bytes
        The items, framed first.

    Returns
    -------
    str
        32 hexadecimal digits.

    Examples
    --------
    >>> len(hex_digest("a", b"b"))
    32
    """
    return xxhash.xxh3_128_hexdigest(frame(*items))


def qualname(obj: Any) -> str:
    """Return ``module.qualname`` of a class or function (its type's name for anything else).

    Parameters
    ----------
    obj : object
        A class, function, or any other object.

    Returns
    -------
    str
        ``module.qualname``, or the bare qualified name when there is no module.

    Examples
    --------
    >>> qualname(frame)
    'checkpoint_magic.fingerprint.encoding.frame'
    >>> qualname(3)
    'int'
    """
    mod = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return f"{mod}.{name}" if isinstance(mod, str) else name


def stream_array(a: np.ndarray, h: Any) -> None:
    """Hash the C-order bytes of a strided array, copying about 1 MiB at a time.

    Parameters
    ----------
    a : numpy.ndarray
        The array, in any memory layout.
    h : xxhash.xxh3_128
        The hasher to update (anything with ``update(buffer)``).

    Examples
    --------
    >>> a = np.arange(12.0).reshape(3, 4)
    >>> h = xxh()
    >>> stream_array(a.T, h)
    >>> h.hexdigest() == xxh(np.ascontiguousarray(a.T).tobytes()).hexdigest()
    True
    """
    if a.nbytes == 0 or a.ndim == 0:
        h.update(a.tobytes())
        return
    row = a.nbytes // a.shape[0]
    if row > BLOCK and a.ndim > 1:  # one row is more than a block: recurse into the rows
        for sub in a:
            if sub.flags.c_contiguous:
                h.update(sub)
            else:
                stream_array(sub, h)
        return
    rows = max(1, BLOCK // row)
    buf = np.empty((min(rows, a.shape[0]),) + a.shape[1:], dtype=a.dtype)
    for start in range(0, a.shape[0], rows):
        part = a[start : start + rows]
        out = buf[: part.shape[0]]
        np.copyto(out, part)
        h.update(out)


def digest_bytes(buffer: Any) -> str:
    """Return the xxh3-128 hex digest of the bytes of any buffer-protocol object.

    Contiguous buffers are hashed in place (zero copy), strided ones in C order ~1 MiB at a
    time. A plain content hash (seed 0, no scheme version): the one the store names blobs by.

    Parameters
    ----------
    buffer : bytes-like
        Any object supporting the buffer protocol (``bytes``, ``memoryview``, an array).

    Returns
    -------
    str
        32 hexadecimal digits.

    Examples
    --------
    >>> digest_bytes(b"abc")
    '06b05ab6733a618578af5f94892f3950'
    >>> import numpy as np
    >>> digest_bytes(np.arange(3.0)) == digest_bytes(np.arange(3.0).tobytes())
    True
    """
    try:
        return xxhash.xxh3_128_hexdigest(buffer)
    except (ValueError, BufferError):  # strided: hash its C-order bytes
        h = xxh()
        stream_array(np.asarray(memoryview(buffer)), h)
        return h.hexdigest()
