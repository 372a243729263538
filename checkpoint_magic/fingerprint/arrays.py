"""Fingerprints of numpy arrays and numpy scalars: dtype, shape, memory order, raw buffer.

The handlers :mod:`checkpoint_magic.fingerprint` registers with
:func:`~checkpoint_magic.fingerprint.values.register`: :data:`EXACT` for ``ndarray`` and the
numpy scalar types, :func:`handler_for` (asked first) for their subclasses.

- An array counts by its class, dtype (``dtype.str``, or ``dtype.descr`` when structured),
  shape, memory order, then its raw buffer, zero-copy when contiguous. An F-contiguous array
  is hashed through its transposed (C-contiguous) view with order ``F`` recorded, so C and F
  arrays with equal values differ on purpose: a cache miss, never a wrong hit. Other strided
  views are copied ~1 MiB at a time and hash like their C-contiguous copy.
- Object arrays go element by element (arrays of ``str`` through Arrow buffers, without a
  Python loop, when the pandas extension registered that fast path).
- Subclasses add their class and ``vars()`` (a unit), masked arrays their mask,
  ``fill_value`` and hardmask; a memmap counts by content, and a read-only one of a file
  provably unchanged reuses its digest (:mod:`checkpoint_magic.fingerprint.frozen`).

Examples
--------
>>> import numpy as np
>>> from checkpoint_magic.fingerprint.values import fingerprint
>>> a = np.arange(6.0).reshape(2, 3)
>>> fingerprint(a) == fingerprint(a.copy()) != fingerprint(np.asfortranarray(a))
True
>>> fingerprint(a) != fingerprint(a.astype("f4"))  # the dtype counts
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .encoding import pack_shape, stream_array
from .frozen import keep_digest, known_digest
from .problems import HOP_ATTRS
from .stdtypes import hash_str, write_all
from .values import STRING_ARRAY_DIGEST, Fingerprinter, Handler

__all__ = ["EXACT", "array_body", "handler_for"]

_ARROW_MIN = 1024  # object arrays at least this long try the Arrow string path
# A MaskedArray's own attributes: its state is hashed through its mask, fill_value, hardmask.
_MASKED_INTERNALS = {"_mask", "_sharedmask", "_hardmask", "_baseclass", "_isfield", "_fill_value",
                     "_optinfo", "_basedict"}  # fmt: skip


# -- arrays ----------------------------------------------------------------------------------
def _h_ndarray(fp: Fingerprinter, obj: np.ndarray, h: Any) -> None:
    if type(obj) is not np.memmap or obj.flags.writeable:
        fp.memoised(obj, h, b"A", _fill_ndarray)
        return
    # A read-only memory map of a file provably unchanged since its digest was computed
    # (see fingerprint.frozen) is not hashed again.
    digest = known_digest(obj, fp.seed)
    if digest is not None:
        h.update(b"A" + digest)
        return
    fp.memoised(obj, h, b"A", _fill_ndarray)
    hit = fp.memo.get(id(obj))
    if hit is not None and hit[0] is obj:
        keep_digest(obj, fp.seed, hit[1])


def _fill_ndarray(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    if type(a) is not np.ndarray:  # subclass: its class, its own state, plain data
        fp.walk(type(a), h)
        own = None if isinstance(a, np.memmap) else getattr(a, "__dict__", None)  # not its file
        if isinstance(a, np.ma.MaskedArray):
            array_body(fp, np.ma.getmaskarray(a), h)
            fp.walk(a.fill_value, h)
            fp.walk(bool(a.hardmask), h)
            own = {k: v for k, v in (own or {}).items() if k not in _MASKED_INTERNALS}
            a = a.data
        if own:
            h.update(b"@")
            fp.hop(own, HOP_ATTRS)
            fp.walk(own, h)
        a = a.view(np.ndarray)
    array_body(fp, a, h)


def array_body(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    """Write the dtype, shape, memory order and content of a plain ndarray into ``h``.

    Parameters
    ----------
    fp : Fingerprinter
        The walk in progress (its memo, seed and problem reports).
    a : numpy.ndarray
        A base-class ndarray (subclasses are viewed as ``np.ndarray`` by the caller).
    h : xxhash.xxh3_128
        The hasher to update.
    """
    dt = a.dtype
    if dt.names is None:
        hash_str(fp, dt.str, h)
    else:
        h.update(b"r")
        fp.walk(dt.descr, h)
    h.update(pack_shape(a.shape))
    if dt.hasobject or dt.kind == "T":
        _object_elements(fp, a, h)
    elif a.flags.c_contiguous:
        h.update(b"C")
        h.update(a)
    elif a.flags.f_contiguous:
        h.update(b"F")
        h.update(a.T)
    else:
        h.update(b"C")
        stream_array(a, h)


def _object_elements(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    flat = a.reshape(-1) if a.dtype.kind != "T" else a.reshape(-1).astype(object)
    strings = STRING_ARRAY_DIGEST[0] if STRING_ARRAY_DIGEST else None
    if strings is not None and a.dtype.names is None and flat.shape[0] >= _ARROW_MIN:
        digest = strings(fp, flat)
        if digest is not None:
            h.update(b"S" + digest)
            return
    pushed = not (fp.stack and fp.stack[-1] is a)
    if pushed and not fp.enter(a, h):
        return
    h.update(b"E")
    for start in range(0, flat.shape[0], 1 << 16):
        write_all(fp, flat[start : start + (1 << 16)].tolist(), h)
    if pushed:
        fp.leave(a)


# -- scalars and dispatch ---------------------------------------------------------------------
def _h_npscalar(fp: Fingerprinter, obj: np.generic, h: Any) -> None:
    dt = obj.dtype
    h.update(b"g")
    if dt.names is not None or dt.hasobject:
        fp.walk(dt.descr, h)
        fp.walk(obj.item(), h)
        return
    hash_str(fp, dt.str, h)
    h.update(obj.tobytes())  # its size is fixed by the dtype


#: Handlers of ``ndarray`` and of every numpy scalar type (``np.object_`` aside: its values are
#: Python objects).
EXACT: dict[type, Handler] = {np.ndarray: _h_ndarray}
for _t in set(np.sctypeDict.values()):
    if issubclass(_t, np.generic) and _t is not np.object_:
        EXACT[_t] = _h_npscalar


def handler_for(cls: type) -> Handler | None:
    """Return the handler of a subclass of ``ndarray`` or of a numpy scalar type, else None.

    Parameters
    ----------
    cls : type
        The type of the value to hash.

    Returns
    -------
    Handler or None
        ``handler(fp, obj, h)``, or None when ``cls`` is no numpy type.

    Examples
    --------
    >>> handler_for(np.ma.MaskedArray) is not None, handler_for(list) is None
    (True, True)
    """
    if issubclass(cls, np.ndarray):
        return _h_ndarray
    if issubclass(cls, np.generic):
        return _h_npscalar
    return None
