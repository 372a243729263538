"""Value fingerprints (xxh3-128): the public API, the walk, and builtins, containers and numpy.

A fingerprint identifies a value by its content, the same in every process and for every
``PYTHONHASHSEED``. Python's ``hash()``, ``id()``, set iteration order and ``str()``/``repr()``
never enter a digest. Every value is written as a one-byte type tag, a length where the tag
does not fix the size, then its bytes, so ``1``, ``1.0``, ``True``, ``"1"``, ``b"1"``, ``[1]``
and ``(1,)`` all differ. :data:`HASH_SCHEME_VERSION` seeds every hasher and heads every digest.

- dicts hash in insertion order: order is part of a dict's value in Python (``list(d)``,
  ``**kwargs``, a DataFrame built from it), so the same items in another order differ (at
  worst a miss). Sets and frozensets are order-insensitive: their elements are sorted when
  they are all ``str`` or all ``int``, otherwise each element is hashed into a 16-byte
  sub-digest and the sorted sub-digests are hashed. ``OrderedDict`` has a tag of its own;
  ``defaultdict`` includes its factory.
- A container met again while it is being walked (a cycle) is written as a back-reference
  holding its distance on the walk stack: no ``RecursionError``.
- numpy arrays: class, dtype (``dtype.str``, or ``dtype.descr`` when structured), shape,
  memory order, then the raw buffer, zero-copy when contiguous. An F-contiguous array is
  hashed through its transposed (C-contiguous) view with order ``F`` recorded, so C and F
  arrays with equal values differ on purpose: a cache miss, never a wrong hit. Other strided
  views are copied ~1 MiB at a time and hash like their C-contiguous copy. Object arrays go
  element by element (arrays of ``str`` through Arrow buffers, without a Python loop).
  Subclasses add their class and ``vars()`` (a unit), masked arrays their mask, fill_value
  and hardmask; a memmap counts by content. Builtin subclasses add ``__dict__`` and slots.
- Other types are handled by extensions registered with :func:`register` (explicitly, by
  :mod:`checkpoint_magic.fingerprint`'s ``__init__``): pandas objects by
  :mod:`checkpoint_magic.fingerprint.pandas`; code (functions, methods, classes), modules, enums,
  scikit-learn estimators and any other object (walked through ``__reduce_ex__(4)``) by
  :mod:`checkpoint_magic.fingerprint.objects`. This module imports neither. A value that cannot
  be pickled (lock, open file, generator, connection) adds one
  :class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning` naming its attribute
  path (``f.conn``); only its type enters the digest. Any other error while walking a value
  raises :class:`~checkpoint_magic.exceptions.FingerprintError`: front ends run uncached.
"""

from __future__ import annotations

import copyreg
import datetime as _dt
import decimal
import fractions
import logging
import pathlib
import struct
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..exceptions import ComplexParamsIdentifyWarning, FingerprintError, warn_user
from .encoding import (
    HASH_SCHEME_VERSION,
    digest_bytes,
    pack_complex,
    pack_float,
    pack_int,
    pack_shape,
    pack_tag,
    qualname,
    stream_array,
    write_str,
    xxh,
)
from .frozen import keep_digest, known_digest
from .problems import HOP_ATTRS, HOP_ITEM, HOP_SILENT, path_to, problem_message

__all__ = [
    "HASH_SCHEME_VERSION",
    "Fingerprinter",
    "QuietFingerprinter",
    "digest_bytes",
    "fingerprint",
    "register",
]
__all__ += ["HOP_ATTRS", "HOP_ITEM", "HOP_SILENT", "pack_tag", "qualname", "xxh"]  # for extensions

logger = logging.getLogger(__name__)

Handler = Callable[["Fingerprinter", Any, Any], None]
Resolver = Callable[[type], "Handler | None"]

# Tags that start a value (each used once): N T F None/bools, i I int, f float, c complex,
# s str, b bytes, a bytearray, v memoryview, . ! Ellipsis/NotImplemented, u UUID, y stdlib value,
# g numpy scalar, l t list/tuple, d dict, q defaultdict, O OrderedDict, e set, z frozenset,
# S builtin subclass, A ndarray, P pandas, K estimator, G other object, B k class/code,
# M method, w W builtin function/method, m module, n enum, R back-reference, X opaque value.
_MAX_DEPTH = 200  # deeper nesting is reported, not recursed into
_ARROW_MIN = 1024  # object arrays at least this long try the Arrow string path
# A MaskedArray's own attributes: its state is hashed through its mask, fill_value, hardmask.
_MASKED_INTERNALS = {"_mask", "_sharedmask", "_hardmask", "_baseclass", "_isfield", "_fill_value",
                     "_optinfo", "_basedict"}  # fmt: skip
_NO_REF = 1 << 62
_NO_SLOT: Any = object()  # an unset __slots__ attribute
_STR, _INT = {str}, {int}
_PACK_ONE = {float: (b"f", "<f8"), int: (b"i", "<i8")}


def fingerprint(obj: Any, name: str | None = None) -> str:
    """Return the fingerprint of ``obj``: 32 lowercase hex characters (xxh3-128).

    Parameters
    ----------
    obj : object
        Any value. Equal content gives equal fingerprints in every process.
    name : str, optional
        Label of the value in warning messages (a parameter or watched variable name).

    Returns
    -------
    str
        32 lowercase hexadecimal digits.

    Raises
    ------
    FingerprintError
        When walking the value fails (a bug in its methods) or it is nested too deeply.

    Examples
    --------
    >>> fingerprint(1) != fingerprint(1.0)
    True
    >>> len(fingerprint([1, 2]))
    32
    >>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})  # order is part of a dict
    False
    >>> fingerprint({"a", "b"}) == fingerprint({"b", "a"})
    True
    """
    return Fingerprinter().fingerprint(obj, name)


#: Immutable scalars whose fingerprints are remembered (a tiny hit hashes no argument twice).
_SCALAR_TYPES = frozenset({int, str, bool, type(None), bytes})
_SIZED = frozenset({str, bytes})
_SCALAR_STR_MAX = 256
_SCALAR_MEMO_MAX = 4096
_scalar_fps: dict[tuple[Any, ...], str] = {}


class Fingerprinter:
    """Fingerprint several values, hashing a large value shared between them only once.

    One instance serves all the inputs of one call. Arrays, pandas objects, estimators,
    other objects and code are memoised by ``id`` (values on a reference cycle excepted);
    the instance keeps a reference to each so that ids stay valid while it lives. Do not
    mutate the values between calls on one instance.

    Parameters
    ----------
    advice : str, optional
        What a ComplexParamsIdentifyWarning tells the user to do, in the words of the front
        end's arguments (a template with ``{root}``); None gives a generic advice.

    Examples
    --------
    >>> import numpy as np
    >>> fp = Fingerprinter()
    >>> a = np.arange(10)
    >>> fp.fingerprint(a, name="x") == fp.fingerprint(a, name="y") == fingerprint(a)
    True
    """

    __slots__ = (
        "_memo", "_active", "_stack", "_problems", "_min_ref", "_seed", "_root", "_hops", "advice"
    )  # fmt: skip

    def __init__(self, advice: str | None = None) -> None:
        #: What a ComplexParamsIdentifyWarning tells the user to do, in the words of the
        #: front end's arguments (a template with ``{root}``); ``None``: a generic advice.
        self.advice = advice
        self._memo: dict[int, tuple[Any, bytes]] = {}
        self._active: dict[int, int] = {}  # id -> stack depth of the containers being walked
        self._stack: list[Any] = []  # the containers being walked, outermost first
        self._problems: list[tuple[str, str, str]] = []  # (path, type, reason) to warn about
        self._hops: dict[int, tuple[Any, int, Any]] = {}  # how children are named in paths
        self._min_ref = _NO_REF  # shallowest depth a back-reference pointed to
        self._seed = HASH_SCHEME_VERSION
        self._root = "value"

    def fingerprint(self, obj: Any, name: str | None = None) -> str:
        """Return the fingerprint of ``obj``, reusing digests memoised by earlier calls.

        Parameters
        ----------
        obj : object
            Any value; see :func:`fingerprint`.
        name : str, optional
            Label of the value in warning messages, e.g. ``"f"`` gives paths like ``f.conn``.

        Returns
        -------
        str
            32 lowercase hexadecimal digits.

        Raises
        ------
        FingerprintError
            When walking the value fails (a bug in its methods) or it is nested too deeply.

        Examples
        --------
        >>> fp = Fingerprinter()
        >>> fp.fingerprint((1, "a"), name="x") == fingerprint((1, "a"))
        True
        """
        cls = type(obj)
        if cls in _SCALAR_TYPES and (cls not in _SIZED or len(obj) <= _SCALAR_STR_MAX):
            memo_key = (cls, obj, self._seed)  # the type too: 1, 1.0 and True are equal keys
            known = _scalar_fps.get(memo_key)
            if known is None:
                known = self._fingerprint(obj, name)
                if len(_scalar_fps) >= _SCALAR_MEMO_MAX:
                    _scalar_fps.clear()
                _scalar_fps[memo_key] = known
            return known
        return self._fingerprint(obj, name)

    def _fingerprint(self, obj: Any, name: str | None) -> str:
        self._root = name or "value"
        self._problems.clear()
        h = xxh(seed=self._seed)
        h.update(pack_tag(b"V", self._seed))
        try:
            self._walk(obj, h)
        except RecursionError:
            raise FingerprintError(
                f"{self._root} is nested too deeply to be fingerprinted; pass a flatter "
                "value or leave it out of the checkpoint's inputs"
            ) from None
        except (FingerprintError, Warning):
            raise
        except Exception as exc:  # a bug in a value's methods: never a type-only digest
            where = self.path_to(self._stack[-1]) if self._stack else self._root
            raise FingerprintError(
                f"cannot fingerprint {where}: walking it raised {type(exc).__name__}: {exc}; "
                f"leave {self._root} out of the inputs or pass a value that can be pickled"
            ) from exc
        finally:
            if self._stack or self._hops:  # only after an error or a generic object
                self._active.clear()
                self._stack.clear()
                self._hops.clear()
            self._min_ref = _NO_REF
        if self._problems:
            self._warn()
        return h.hexdigest()

    def _warn(self) -> None:
        warn_user(
            problem_message(self._root, self._problems, self.advice), ComplexParamsIdentifyWarning
        )

    @property
    def problems(self) -> list[tuple[str, str, str]]:
        """``(path, type, reason)`` of each value the last :meth:`fingerprint` could not walk."""
        return list(self._problems)

    def path_to(self, target: Any) -> str:
        """Return the attribute path of ``target`` (on or just below the walk stack): ``f.conn``.

        Parameters
        ----------
        target : object
            A value being walked, or a child of the innermost one.

        Returns
        -------
        str
            The path, starting with the name given to :meth:`fingerprint`.
        """
        return path_to(self._root, self._stack, self._hops, target)

    def _walk(self, obj: Any, h: Any) -> None:
        f = EXACT_HANDLERS.get(type(obj))
        if f is None:
            f = _handler_for(type(obj))
        f(self, obj, h)

    def _enter(self, obj: Any, h: Any) -> bool:
        """Push a container; False (a marker is written instead) on a cycle or when too deep."""
        depth = self._active.get(id(obj))
        if depth is not None:
            h.update(pack_tag(b"R", len(self._stack) - depth))
            self._min_ref = min(self._min_ref, depth)
            return False
        depth = len(self._stack)
        if depth >= _MAX_DEPTH:
            self._report(obj, h, f"it is nested more than {_MAX_DEPTH} levels deep")
            return False
        self._active[id(obj)] = depth
        self._stack.append(obj)
        return True

    def _leave(self, obj: Any) -> None:
        self._stack.pop()
        del self._active[id(obj)]

    def _memoised(self, obj: Any, h: Any, tag: bytes, fill: Handler) -> None:
        """Write ``tag`` and the sub-digest of ``obj`` computed by ``fill``, memoised by id."""
        hit = self._memo.get(id(obj))
        if hit is not None:
            h.update(tag + hit[1])
            return
        if not self._enter(obj, h):
            return
        depth = len(self._stack) - 1
        saved_ref, self._min_ref = self._min_ref, _NO_REF
        nproblems = len(self._problems)
        sh = xxh(seed=self._seed)
        fill(self, obj, sh)  # an error aborts the whole fingerprint (see fingerprint())
        self._leave(obj)
        digest = sh.digest()
        # The walk of a value on a reference cycle (a back-reference to obj or above it)
        # depends on where the cycle was entered: such values are not memoised.
        if self._min_ref > depth and len(self._problems) == nproblems:
            self._memo[id(obj)] = (obj, digest)
        self._min_ref = min(saved_ref, self._min_ref)
        h.update(tag + digest)

    def _hop(self, child: Any, kind: int, key: Any = None) -> None:
        """Say how ``child`` is named in attribute paths (read only to word a warning)."""
        if child is not None:
            self._hops[id(child)] = (child, kind, key)

    def _report(self, obj: Any, h: Any, reason: str, label: Any = None) -> None:
        """Record a value that cannot be fingerprinted; write only its type."""
        self._problems.append(
            (
                self.path_to(obj),
                qualname(type(obj) if label is None else label),
                reason,
            )
        )
        h.update(b"X")
        hash_str(self, qualname(type(obj)), h)


class QuietFingerprinter(Fingerprinter):
    """A Fingerprinter that logs values it cannot walk instead of warning (class data in code)."""

    __slots__ = ()

    def _warn(self) -> None:
        logger.debug("%s", problem_message(self._root, self._problems))


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
    fp._walk(obj.__reduce_ex__(4)[1], h)


def _h_npscalar(fp: Fingerprinter, obj: np.generic, h: Any) -> None:
    dt = obj.dtype
    h.update(b"g")
    if dt.names is not None or dt.hasobject:
        fp._walk(dt.descr, h)
        fp._walk(obj.item(), h)
        return
    hash_str(fp, dt.str, h)
    h.update(obj.tobytes())  # its size is fixed by the dtype


# -- containers ------------------------------------------------------------------------------
def _seq_handler(tag: bytes) -> Handler:
    def _h_seq(fp: Fingerprinter, obj: Any, h: Any) -> None:
        if not obj:
            h.update(pack_tag(tag, 0))
            return
        active, key = fp._active, id(obj)
        if key in active or len(fp._stack) >= _MAX_DEPTH:
            fp._enter(obj, h)  # writes the back-reference or reports the depth
            return
        active[key] = len(fp._stack)
        fp._stack.append(obj)
        h.update(pack_tag(tag, len(obj)))
        _write_all(fp, obj, h)
        fp._stack.pop()
        del active[key]

    return _h_seq


def _write_all(fp: Fingerprinter, values: Any, h: Any) -> None:
    """Write each value in turn; a long run of only floats or only ints is packed by numpy."""
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
            f = _handler_for(type(x))
        f(fp, x, h)


def _unordered(fp: Fingerprinter, obj: Any, h: Any, tag: bytes) -> None:
    """Set elements in a canonical order: sorted, or else sorted sub-digests.

    All-``str`` elements are written at once (their byte lengths, then their bytes) in sorted
    order; all-``int`` elements likewise; any other mix as sorted sub-digests.
    """
    if not obj:
        h.update(tag + pack_tag(b"s", 0))
        return
    if not fp._enter(obj, h):
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
        walk, subs = fp._walk, []
        for x in obj:
            sh = xxh(seed=fp._seed)
            walk(x, sh)
            subs.append(sh.digest())
        subs.sort()
        h.update(tag + pack_tag(b"h", n) + b"".join(subs))
    fp._leave(obj)


def _h_dict(fp: Fingerprinter, obj: dict, h: Any) -> None:
    """Items in insertion order; all-``str`` keys are written at once, then the values."""
    n = len(obj)
    if not n:
        h.update(pack_tag(b"d", 0))
        return
    if not fp._enter(obj, h):
        return
    items = list(obj.items())
    if set(map(type, obj)) == _STR:
        data = [k.encode("utf-8", "surrogatepass") for k, _ in items]
        h.update(pack_tag(b"d", n) + struct.pack(f"<{n}Q", *map(len, data)) + b"".join(data))
        _write_all(fp, [v for _, v in items], h)
    else:
        h.update(pack_tag(b"D", n))
        walk = fp._walk
        for k, v in items:
            walk(k, h)
            walk(v, h)
    fp._leave(obj)


def _h_defaultdict(fp: Fingerprinter, obj: defaultdict, h: Any) -> None:
    h.update(b"q")
    fp._walk(obj.default_factory, h)
    _h_dict(fp, obj, h)


def _h_ordereddict(fp: Fingerprinter, obj: OrderedDict, h: Any) -> None:
    """Order-sensitive on purpose: the same items in another order differ."""
    if fp._enter(obj, h):
        h.update(pack_tag(b"O", len(obj)))
        for k, v in obj.items():
            fp._walk(k, h)
            fp._walk(v, h)
        fp._leave(obj)


def _builtin_subclass(base_handler: Handler) -> Handler:
    def _h_subclass(fp: Fingerprinter, obj: Any, h: Any) -> None:
        if id(obj) in fp._active:  # met again inside its own attributes
            fp._enter(obj, h)
            return
        h.update(b"S")
        fp._walk(type(obj), h)  # a class: by the handler registered for classes
        base_handler(fp, obj, h)
        extra = getattr(obj, "__dict__", None)
        names = copyreg._slotnames(type(obj))  # type: ignore[attr-defined]  # cached by copyreg
        slots = {n: v for n in names if (v := getattr(obj, n, _NO_SLOT)) is not _NO_SLOT}
        if not extra and not slots:
            h.update(b"N")
        elif fp._enter(obj, h):  # on the stack while its attributes are walked
            fp._hop(extra, HOP_ATTRS)
            fp._walk(extra or {}, h)
            if slots:  # (no bytes at all for a subclass without __slots__)
                h.update(b"_")
                fp._hop(slots, HOP_ATTRS)
                fp._walk(slots, h)
            fp._leave(obj)

    return _h_subclass


# -- numpy -----------------------------------------------------------------------------------
def _h_ndarray(fp: Fingerprinter, obj: np.ndarray, h: Any) -> None:
    if type(obj) is not np.memmap or obj.flags.writeable:
        fp._memoised(obj, h, b"A", _fill_ndarray)
        return
    # A read-only memory map of a file provably unchanged since its digest was computed
    # (see fingerprint.frozen) is not hashed again.
    digest = known_digest(obj, fp._seed)
    if digest is not None:
        h.update(b"A" + digest)
        return
    fp._memoised(obj, h, b"A", _fill_ndarray)
    hit = fp._memo.get(id(obj))
    if hit is not None and hit[0] is obj:
        keep_digest(obj, fp._seed, hit[1])


def _fill_ndarray(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    if type(a) is not np.ndarray:  # subclass: its class, its own state, plain data
        fp._walk(type(a), h)
        own = None if isinstance(a, np.memmap) else getattr(a, "__dict__", None)  # not its file
        if isinstance(a, np.ma.MaskedArray):
            array_body(fp, np.ma.getmaskarray(a), h)
            fp._walk(a.fill_value, h)
            fp._walk(bool(a.hardmask), h)
            own = {k: v for k, v in (own or {}).items() if k not in _MASKED_INTERNALS}
            a = a.data
        if own:
            h.update(b"@")
            fp._hop(own, HOP_ATTRS)
            fp._walk(own, h)
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
        fp._walk(dt.descr, h)
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
    strings = _STRING_ARRAY_DIGEST[0] if _STRING_ARRAY_DIGEST else None
    if strings is not None and a.dtype.names is None and flat.shape[0] >= _ARROW_MIN:
        digest = strings(fp, flat)
        if digest is not None:
            h.update(b"S" + digest)
            return
    pushed = not (fp._stack and fp._stack[-1] is a)
    if pushed and not fp._enter(a, h):
        return
    h.update(b"E")
    for start in range(0, flat.shape[0], 1 << 16):
        _write_all(fp, flat[start : start + (1 << 16)].tolist(), h)
    if pushed:
        fp._leave(a)


# -- dispatch ---------------------------------------------------------------------------------
EXACT_HANDLERS: dict[type, Handler] = {
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
    set: lambda fp, obj, h: _unordered(fp, obj, h, b"e"),
    frozenset: lambda fp, obj, h: _unordered(fp, obj, h, b"z"),
    type(...): lambda fp, obj, h: h.update(b"."),
    type(NotImplemented): lambda fp, obj, h: h.update(b"!"),
    uuid.UUID: lambda fp, obj, h: h.update(b"u" + obj.bytes),
    np.ndarray: _h_ndarray,
}  # code, classes and modules: added through register()
for _t in (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone, decimal.Decimal,
           fractions.Fraction, range, slice, pathlib.PurePosixPath, pathlib.PureWindowsPath,
           pathlib.PosixPath, pathlib.WindowsPath):  # fmt: skip
    EXACT_HANDLERS[_t] = _h_by_args
for _t in set(np.sctypeDict.values()):
    if issubclass(_t, np.generic) and _t is not np.object_:
        EXACT_HANDLERS[_t] = _h_npscalar

_BUILTIN_BASES = (int, float, complex, str, bytes, bytearray, OrderedDict, defaultdict, dict,
                  list, tuple, set, frozenset)  # fmt: skip
_RESOLVED: dict[type, Handler] = {}
_RESOLVERS: list[Resolver] = []  # asked in order about a type missing from EXACT_HANDLERS
_FALLBACK: list[Handler] = []  # fills the sub-digest of any other object (at most one)
_STRING_ARRAY_DIGEST: list[Callable[[Fingerprinter, np.ndarray], bytes | None]] = []


def register(
    exact: Mapping[type, Handler] | None = None,
    resolver: Resolver | None = None,
    fallback: Handler | None = None,
    string_array_digest: Callable[[Fingerprinter, np.ndarray], bytes | None] | None = None,
) -> None:
    """Add an extension of the walk: handlers by exact type, a resolver, the generic fallback.

    :mod:`checkpoint_magic.fingerprint`'s ``__init__`` registers the pandas and object
    extensions; registering the same resolver again is a no-op.

    Parameters
    ----------
    exact
        ``type -> handler(fp, obj, h)`` for values of exactly that type.
    resolver
        ``cls -> handler or None``, asked (in registration order) about other types.
    fallback
        Fills the sub-digest of an object no handler claims (memoised, tag ``G``).
    string_array_digest
        ``(fp, flat object array) -> 16-byte digest or None``: a fast path for arrays of str.

    Examples
    --------
    >>> class Point:
    ...     def __init__(self, x):
    ...         self.x = x
    >>> register({Point: lambda fp, p, h: fp._walk(("Point", p.x), h)})
    >>> fingerprint(Point(1)) == fingerprint(Point(1)) != fingerprint(Point(2))
    True
    >>> del EXACT_HANDLERS[Point]
    """
    if exact:
        EXACT_HANDLERS.update(exact)
    if resolver is not None and resolver not in _RESOLVERS:
        _RESOLVERS.append(resolver)
    if fallback is not None:
        _FALLBACK[:] = [fallback]
    if string_array_digest is not None:
        _STRING_ARRAY_DIGEST[:] = [string_array_digest]
    _RESOLVED.clear()
    _scalar_fps.clear()


def _handler_for(cls: type) -> Handler:
    """Handler of a type missing from the exact-type table (resolved once per type)."""
    f = _RESOLVED.get(cls)
    if f is None:
        f = _resolve(cls)
        if len(_RESOLVED) >= 1024:
            _RESOLVED.clear()
        _RESOLVED[cls] = f
    return f


def _resolve(cls: type) -> Handler:
    if issubclass(cls, np.ndarray):
        return _h_ndarray
    if issubclass(cls, np.generic):
        return _h_npscalar
    for resolver in _RESOLVERS:  # pandas; estimators, enums, classes, code
        f = resolver(cls)
        if f is not None:
            return f
    for base in _BUILTIN_BASES:
        if issubclass(cls, base):
            return _builtin_subclass(EXACT_HANDLERS[base])
    if _FALLBACK:
        fill = _FALLBACK[0]
        return lambda fp, obj, h: fp._memoised(obj, h, b"G", fill)
    return lambda fp, obj, h: fp._report(obj, h, "no fingerprint handler is registered for it")
