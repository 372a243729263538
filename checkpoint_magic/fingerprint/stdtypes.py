"""Fingerprints of Python's builtin and standard-library types: scalars, text, containers.

The handlers :mod:`checkpoint_magic.fingerprint` registers first with
:func:`~checkpoint_magic.fingerprint.values.register`: :data:`EXACT` for values of exactly a
builtin type, :func:`subclass_handler_for` (asked last) for subclasses of one.

- ``None``, bools, ints, floats, complex numbers, ``str``, ``bytes``, ``bytearray``,
  ``memoryview``, ``Ellipsis``, ``NotImplemented`` and ``UUID`` have tags of their own; dates,
  times, ``Decimal``, ``Fraction``, ``range``, ``slice`` and paths count by their class and
  the arguments that rebuild them.
- dicts hash in insertion order: order is part of a dict's value in Python (``list(d)``,
  ``**kwargs``, a DataFrame built from it), so the same items in another order differ (at
  worst a miss). Sets and frozensets are order-insensitive: their elements are sorted when
  they are all ``str`` or all ``int``, otherwise each element is hashed into a 16-byte
  sub-digest and the sorted sub-digests are hashed. ``OrderedDict`` has a tag of its own;
  ``defaultdict`` includes its factory; a ``MappingProxyType`` counts as the dict it
  shows. A run of 128 or more floats (or ints) is packed by
  numpy into the very bytes the element-by-element walk would write.
- A subclass of a builtin adds its class, its ``__dict__`` and its slots.

Examples
--------
>>> from checkpoint_magic.fingerprint.values import fingerprint
>>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})  # order is part of a dict
False
>>> fingerprint({"a", "b"}) == fingerprint({"b", "a"})
True
"""

from __future__ import annotations

import copyreg
import datetime as _dt
import decimal
import fractions
import pathlib
import struct
import types
import uuid
from collections import OrderedDict, defaultdict
from typing import Any

import numpy as np

from .encoding import (
    pack_complex,
    pack_float,
    pack_int,
    pack_shape,
    pack_tag,
    qualname,
    write_str,
    xxh,
)
from .problems import HOP_ATTRS
from .values import EXACT_HANDLERS, MAX_DEPTH, Fingerprinter, Handler, handler_for

__all__ = ["EXACT", "hash_str", "subclass_handler_for", "write_all"]

_NO_SLOT: Any = object()  # an unset __slots__ attribute
_STR, _INT = {str}, {int}
_PACK_ONE = {float: (b"f", "<f8"), int: (b"i", "<i8")}


# -- scalars ---------------------------------------------------------------------------------
def _h_int(fp: Fingerprinter, obj: int, h: Any) -> None:
    try:
        h.update(pack_int(b"i", obj))
    except struct.error:  # beyond int64: length-prefixed two's complement
        data = obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True)
        h.update(pack_tag(b"I", len(data)) + data)


def hash_str(fp: Fingerprinter | None, obj: str, h: Any) -> None:
    """Hash a ``str`` (the handler of ``str``): see :func:`~.encoding.write_str`.

    Parameters
    ----------
    fp : Fingerprinter or None
        The walk in progress (unused: strings need no memo).
    obj : str
        The text.
    h : xxhash.xxh3_128
        The hasher to update.
    """
    write_str(h, obj)


def _h_bytes(fp: Fingerprinter, obj: bytes | bytearray, h: Any) -> None:
    h.update(pack_tag(b"b" if type(obj) is bytes else b"a", len(obj)))
    h.update(obj)


def _h_memoryview(fp: Fingerprinter, obj: memoryview, h: Any) -> None:
    h.update(b"v")
    hash_str(fp, obj.format, h)
    h.update(pack_shape(obj.shape or ()))
    h.update(obj if obj.c_contiguous else obj.tobytes())


def _h_by_args(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Stdlib value types rebuilt from plain constructor arguments (dates, Decimal, paths)."""
    h.update(b"y")
    hash_str(fp, qualname(type(obj)), h)
    fp.walk(obj.__reduce_ex__(4)[1], h)


# -- containers ------------------------------------------------------------------------------
def _seq_handler(tag: bytes) -> Handler:
    def _h_seq(fp: Fingerprinter, obj: Any, h: Any) -> None:
        if not obj:
            h.update(pack_tag(tag, 0))
            return
        active, key = fp.active, id(obj)
        if key in active or len(fp.stack) >= MAX_DEPTH:
            fp.enter(obj, h)  # writes the back-reference or reports the depth
            return
        active[key] = len(fp.stack)
        fp.stack.append(obj)
        h.update(pack_tag(tag, len(obj)))
        write_all(fp, obj, h)
        fp.stack.pop()
        del active[key]

    return _h_seq


def write_all(fp: Fingerprinter, values: Any, h: Any) -> None:
    """Write each value in turn; a long run of only floats or only ints is packed by numpy.

    The loop of the walk over a sequence's items, dispatching each by its exact type without
    a method call per item. A run of 128 or more items that are all ``float`` (or all ``int``
    within int64) is written at once as the very 9-byte records the loop would write.

    Parameters
    ----------
    fp : Fingerprinter
        The walk in progress (its memo, seed and problem reports).
    values : sequence
        The items, in order (a list, tuple, or a list made from an array's elements).
    h : xxhash.xxh3_128
        The hasher to update.
    """
    if len(values) >= 128:
        kinds = set(map(type, values))
        packed = _PACK_ONE.get(kinds.pop()) if len(kinds) == 1 else None
        if packed is not None:
            tag, dtype = packed
            out = np.empty(len(values), dtype=[("t", "S1"), ("v", dtype)])  # 9-byte records
            try:
                out["v"] = values
            except OverflowError:  # an int beyond int64: written one by one below
                pass
            else:
                out["t"] = tag
                h.update(out)  # the same bytes as writing them one by one
                return
    get = EXACT_HANDLERS.get
    for x in values:
        f = get(type(x))
        if f is None:
            f = handler_for(type(x))
        f(fp, x, h)


def _unordered(fp: Fingerprinter, obj: Any, h: Any, tag: bytes) -> None:
    """Set elements in a canonical order: sorted, or else sorted sub-digests.

    All-``str`` elements are written at once (their byte lengths, then their bytes) in sorted
    order; all-``int`` elements likewise; any other mix as sorted sub-digests.
    """
    if not obj:
        h.update(tag + pack_tag(b"s", 0))
        return
    if not fp.enter(obj, h):
        return
    n, kinds = len(obj), set(map(type, obj))
    if kinds == _STR:
        data = [k.encode("utf-8", "surrogatepass") for k in sorted(obj)]
        h.update(tag + pack_tag(b"s", n) + struct.pack(f"<{n}Q", *map(len, data)) + b"".join(data))
    elif kinds == _INT:
        h.update(tag + pack_tag(b"i", n))
        for k in sorted(obj):
            _h_int(fp, k, h)
    else:
        walk, subs = fp.walk, []
        for x in obj:
            sh = xxh(seed=fp.seed)
            walk(x, sh)
            subs.append(sh.digest())
        subs.sort()
        h.update(tag + pack_tag(b"h", n) + b"".join(subs))
    fp.leave(obj)


def _h_dict(fp: Fingerprinter, obj: dict, h: Any) -> None:
    """Items in insertion order; all-``str`` keys are written at once, then the values."""
    n = len(obj)
    if not n:
        h.update(pack_tag(b"d", 0))
        return
    if not fp.enter(obj, h):
        return
    items = list(obj.items())
    if set(map(type, obj)) == _STR:
        data = [k.encode("utf-8", "surrogatepass") for k, _ in items]
        h.update(pack_tag(b"d", n) + struct.pack(f"<{n}Q", *map(len, data)) + b"".join(data))
        write_all(fp, [v for _, v in items], h)
    else:
        h.update(pack_tag(b"D", n))
        walk = fp.walk
        for k, v in items:
            walk(k, h)
            walk(v, h)
    fp.leave(obj)


def _h_defaultdict(fp: Fingerprinter, obj: defaultdict, h: Any) -> None:
    h.update(b"q")
    fp.walk(obj.default_factory, h)
    _h_dict(fp, obj, h)


def _h_mappingproxy(fp: Fingerprinter, obj: types.MappingProxyType, h: Any) -> None:
    """A read-only view of a dict (an immutable config): the dict it shows, as a dict."""
    h.update(b"Q")
    _h_dict(fp, dict(obj), h)


def _h_ordereddict(fp: Fingerprinter, obj: OrderedDict, h: Any) -> None:
    """Order-sensitive on purpose: the same items in another order differ."""
    if fp.enter(obj, h):
        h.update(pack_tag(b"O", len(obj)))
        for k, v in obj.items():
            fp.walk(k, h)
            fp.walk(v, h)
        fp.leave(obj)


def _builtin_subclass(base_handler: Handler) -> Handler:
    def _h_subclass(fp: Fingerprinter, obj: Any, h: Any) -> None:
        if id(obj) in fp.active:  # met again inside its own attributes
            fp.enter(obj, h)
            return
        h.update(b"S")
        fp.walk(type(obj), h)  # a class: by the handler registered for classes
        base_handler(fp, obj, h)
        extra = getattr(obj, "__dict__", None)
        names = copyreg._slotnames(type(obj))  # type: ignore[attr-defined]  # cached by copyreg
        slots = {n: v for n in names if (v := getattr(obj, n, _NO_SLOT)) is not _NO_SLOT}
        if not extra and not slots:
            h.update(b"N")
        elif fp.enter(obj, h):  # on the stack while its attributes are walked
            fp.hop(extra, HOP_ATTRS)
            fp.walk(extra or {}, h)
            if slots:  # (no bytes at all for a subclass without __slots__)
                h.update(b"_")
                fp.hop(slots, HOP_ATTRS)
                fp.walk(slots, h)
            fp.leave(obj)

    return _h_subclass


# -- dispatch ---------------------------------------------------------------------------------
#: Handlers of values of exactly these types.
EXACT: dict[type, Handler] = {
    type(None): lambda fp, obj, h: h.update(b"N"),
    bool: lambda fp, obj, h: h.update(b"T" if obj else b"F"),
    int: _h_int,
    float: lambda fp, obj, h: h.update(pack_float(b"f", obj)),
    complex: lambda fp, obj, h: h.update(pack_complex(b"c", obj.real, obj.imag)),
    str: hash_str,
    bytes: _h_bytes,
    bytearray: _h_bytes,
    memoryview: _h_memoryview,
    list: _seq_handler(b"l"),
    tuple: _seq_handler(b"t"),
    dict: _h_dict,
    OrderedDict: _h_ordereddict,
    defaultdict: _h_defaultdict,
    types.MappingProxyType: _h_mappingproxy,
    set: lambda fp, obj, h: _unordered(fp, obj, h, b"e"),
    frozenset: lambda fp, obj, h: _unordered(fp, obj, h, b"z"),
    type(...): lambda fp, obj, h: h.update(b"."),
    type(NotImplemented): lambda fp, obj, h: h.update(b"!"),
    uuid.UUID: lambda fp, obj, h: h.update(b"u" + obj.bytes),
}
for _t in (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone, decimal.Decimal,
           fractions.Fraction, range, slice, pathlib.PurePosixPath, pathlib.PureWindowsPath,
           pathlib.PosixPath, pathlib.WindowsPath):  # fmt: skip
    EXACT[_t] = _h_by_args

# In this order: a subclass of several (an OrderedDict is a dict) takes the first it matches.
_BUILTIN_BASES = (int, float, complex, str, bytes, bytearray, OrderedDict, defaultdict, dict,
                  list, tuple, set, frozenset)  # fmt: skip


def subclass_handler_for(cls: type) -> Handler | None:
    """Return the handler of a subclass of a builtin type, None for any other type.

    The value is hashed by the handler its builtin base has in the dispatch table, after its
    class and before its ``__dict__`` and slots. Registered last, so that a resolver of
    enums (an ``IntEnum`` is an ``int``) or of any other type is asked first.

    Parameters
    ----------
    cls : type
        The type of the value to hash.

    Returns
    -------
    Handler or None
        ``handler(fp, obj, h)``, or None when ``cls`` subclasses no builtin type.

    Examples
    --------
    >>> class Tags(list):
    ...     pass
    >>> subclass_handler_for(Tags) is not None, subclass_handler_for(object) is None
    (True, True)
    """
    for base in _BUILTIN_BASES:
        if issubclass(cls, base):
            return _builtin_subclass(EXACT_HANDLERS[base])
    return None
