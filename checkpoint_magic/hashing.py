"""Value fingerprints: stable xxh3-128 digests of Python, numpy, pandas and scikit-learn values.

A fingerprint identifies a value by its content, the same in every process and for every
``PYTHONHASHSEED``. Python's ``hash()``, ``id()``, set iteration order and ``str()``/``repr()``
never enter a digest. Every value is written as a type tag, a length where the size is not
fixed by the tag, then its bytes, so ``1``, ``1.0``, ``True``, ``"1"``, ``b"1"``, ``[1]`` and
``(1,)`` all differ. :data:`HASH_SCHEME_VERSION` seeds every hasher and heads every digest.

Encoding rules worth knowing:

- dicts, sets and frozensets are order-insensitive. Their elements are sorted when they are
  all ``str`` or all ``int``; otherwise each key/value pair (or element) is hashed into a
  16-byte sub-digest and the sorted sub-digests are hashed. ``OrderedDict`` is deliberately
  order-sensitive (its order is part of its value); ``defaultdict`` includes its
  ``default_factory``.
- A container met again while it is being walked (a cycle) is written as a back-reference
  marker holding the distance to it on the walk stack: no ``RecursionError``.
- numpy arrays: class, dtype (``dtype.str``, or ``dtype.descr`` when structured), shape, memory
  order, then the raw buffer with no copy when contiguous. An F-contiguous array is hashed
  through its transposed C-contiguous view with order ``'F'`` recorded, so a C and an F array
  with equal values have *different* fingerprints: a cache miss, never a wrong hit. Other
  strided views are copied ~1 MiB at a time and hash like their C-contiguous copy. Object
  arrays go element by element (all-``str`` arrays through Arrow buffers, no Python loop).
- Functions, methods and classes are fingerprinted by :mod:`checkpoint_magic.codehash`;
  pandas objects by :mod:`checkpoint_magic._hash_pandas`; scikit-learn estimators by class
  (with package version), ``get_params(deep=False)`` and fitted attributes (``name_``).
- Anything else is walked through ``__reduce_ex__(4)`` (what pickle would save, without
  pickling). Values that cannot be walked (locks, open files, generators, connections) produce
  one :class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning` naming their attribute
  path, and only their type enters the digest.
"""

from __future__ import annotations

import copyreg
import datetime as _dt
import decimal
import enum
import fractions
import logging
import pathlib
import struct
import sys
import types
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import xxhash

from .exceptions import ComplexParamsIdentifyWarning, FingerprintError, warn_user

__all__ = ["HASH_SCHEME_VERSION", "Fingerprinter", "digest_bytes", "fingerprint"]

#: Version of the encoding; bump it whenever any value's fingerprint changes.
HASH_SCHEME_VERSION = 1

logger = logging.getLogger(__name__)

Handler = Callable[["Fingerprinter", Any, Any], None]

_xxh = xxhash.xxh3_128
_TL = struct.Struct("<cQ").pack  # tag + length / count
_TI = struct.Struct("<cq").pack  # tag + int64
_TF = struct.Struct("<cd").pack  # tag + float64 bit pattern
_TC = struct.Struct("<cdd").pack  # tag + complex
_BLOCK = 1 << 20  # bytes copied at a time for strided arrays
_MAX_DEPTH = 200  # deeper nesting is reported instead of recursed into
_ARROW_MIN = 1024  # object arrays at least this long try the Arrow string path
_NO_REF = 1 << 62
_STR = {str}
_INT = {int}
_HOP_SILENT, _HOP_ATTRS, _HOP_ITEM = 0, 1, 2


def digest_bytes(buffer: Any) -> str:
    """Return the xxh3-128 hex digest of the bytes of any buffer-protocol object.

    Contiguous buffers are hashed in place (zero copy); strided ones are hashed in C order
    ~1 MiB at a time. This is a plain content hash (seed 0, no scheme version), the one the
    store names its blobs by.

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
    except (ValueError, BufferError):  # strided buffer: stream its C-order bytes
        h = _xxh()
        _stream(np.asarray(memoryview(buffer)), h)
        return h.hexdigest()


def fingerprint(obj: Any, name: str | None = None) -> str:
    """Return the fingerprint of ``obj``: 32 lowercase hex characters (xxh3-128).

    Parameters
    ----------
    obj
        Any value. Equal content gives equal fingerprints in every process.
    name
        Label of the value in warning messages (a parameter or watched variable name).

    Examples
    --------
    >>> fingerprint(1) != fingerprint(1.0)
    True
    >>> len(fingerprint([1, 2]))
    32
    >>> fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    True
    """
    return Fingerprinter().fingerprint(obj, name)


class Fingerprinter:
    """Fingerprint several values, hashing a large value shared between them only once.

    One instance serves all the inputs of one call. Arrays, pandas objects, estimators,
    generic objects and code are memoised by ``id``; the instance keeps a reference to each
    memoised object so that ids stay valid while it lives. Do not mutate the values between
    calls on one instance.

    Examples
    --------
    >>> import numpy as np
    >>> fp = Fingerprinter()
    >>> a = np.arange(10)
    >>> fp.fingerprint(a, name="x") == fp.fingerprint(a, name="y") == fingerprint(a)
    True
    """

    __slots__ = ("_memo", "_active", "_stack", "_problems", "_min_ref", "_seed", "_root", "_hops")

    def __init__(self) -> None:
        self._memo: dict[int, tuple[Any, bytes]] = {}
        self._active: dict[int, int] = {}  # id -> depth of the containers being walked
        self._stack: list[Any] = []  # the containers being walked, root first
        self._problems: list[tuple[str, str, str]] = []
        self._hops: dict[int, tuple[Any, int, Any]] = {}  # how to name a child in paths
        self._min_ref = _NO_REF
        self._seed = HASH_SCHEME_VERSION
        self._root = "value"

    def fingerprint(self, obj: Any, name: str | None = None) -> str:
        """Return the fingerprint of ``obj`` (see :func:`fingerprint`); ``name`` labels warnings."""
        self._root = name or "value"
        h = _xxh(seed=self._seed)
        h.update(_TL(b"V", self._seed))
        try:
            self._walk(obj, h)
        except RecursionError:
            raise FingerprintError(
                f"{self._root} is nested too deeply to be fingerprinted; pass a flatter value "
                "or leave it out of the checkpoint's inputs"
            ) from None
        finally:
            self._active.clear()
            self._stack.clear()
            self._hops.clear()
            self._min_ref = _NO_REF
        if self._problems:
            problems, self._problems = self._problems, []
            warn_user(_problem_message(self._root, problems), ComplexParamsIdentifyWarning)
        return h.hexdigest()

    # -- the walk ------------------------------------------------------------------------
    def _walk(self, obj: Any, h: Any) -> None:
        f = _EXACT.get(type(obj))
        if f is None:
            f = _handler_for(type(obj))
        f(self, obj, h)

    def _sub(self) -> Any:
        return _xxh(seed=self._seed)

    def _enter(self, obj: Any, h: Any) -> bool:
        """Push a container; False (and a marker written) if it is a cycle or too deep."""
        key = id(obj)
        depth = self._active.get(key)
        if depth is not None:
            h.update(_TL(b"R", len(self._stack) - depth))
            if depth < self._min_ref:
                self._min_ref = depth
            return False
        depth = len(self._stack)
        if depth >= _MAX_DEPTH:
            self._report(obj, h, f"it is nested more than {_MAX_DEPTH} levels deep")
            return False
        self._active[key] = depth
        self._stack.append(obj)
        return True

    def _leave(self, obj: Any) -> None:
        self._stack.pop()
        del self._active[id(obj)]

    def _memoised(self, obj: Any, h: Any, tag: bytes, fill: Handler) -> None:
        """Write ``tag`` + the sub-digest of ``obj`` computed by ``fill``, memoised by id."""
        key = id(obj)
        hit = self._memo.get(key)
        if hit is not None:
            h.update(tag)
            h.update(hit[1])
            return
        if not self._enter(obj, h):
            return
        depth = len(self._stack) - 1
        saved_ref, self._min_ref = self._min_ref, _NO_REF
        nproblems = len(self._problems)
        sh = _xxh(seed=self._seed)
        fill(self, obj, sh)
        self._leave(obj)
        digest = sh.digest()
        # A digest that refers to a container outside obj depends on where obj was met.
        if self._min_ref >= depth and len(self._problems) == nproblems:
            self._memo[key] = (obj, digest)
        self._min_ref = min(saved_ref, self._min_ref)
        h.update(tag)
        h.update(digest)

    def _hop(self, child: Any, kind: int, key: Any = None) -> None:
        """Record how ``child`` is named in attribute paths (only read to build warnings)."""
        self._hops[id(child)] = (child, kind, key)

    # -- warnings ------------------------------------------------------------------------
    def _report(self, obj: Any, h: Any, reason: str) -> None:
        """Record a value that cannot be fingerprinted and write only its type."""
        self._problems.append((self._path_to(obj), _qualname(type(obj)), reason))
        h.update(b"X")
        _h_str(self, _qualname(type(obj)), h)

    def _path_to(self, target: Any) -> str:
        chain = list(self._stack)
        if not chain or chain[-1] is not target:
            chain.append(target)
        parts, attrs = [self._root], False
        for parent, child in zip(chain, chain[1:]):
            hop = self._hops.get(id(child))
            if hop is not None and hop[0] is child:
                if hop[1] == _HOP_ITEM:
                    parts.append(f"[{hop[2]!r}]")
                attrs = hop[1] == _HOP_ATTRS
                continue
            parts.append(_label(parent, child, attrs))
            attrs = False
        return "".join(parts)


def _label(parent: Any, child: Any, attrs: bool) -> str:
    """How ``child`` is reached from ``parent``, for a warning message."""
    if isinstance(parent, dict):
        for k, v in parent.items():
            if v is child:
                return f".{k}" if attrs and isinstance(k, str) else f"[{k!r}]"
            if k is child:
                return "<a key>"
    elif isinstance(parent, (list, tuple)):
        for i, x in enumerate(parent):
            if x is child:
                return f"[{i}]"
    elif isinstance(parent, (set, frozenset)):
        return "<a set element>"
    elif isinstance(parent, np.ndarray) and parent.dtype.hasobject:
        for i, x in enumerate(parent.reshape(-1)):
            if x is child:
                return str(list(map(int, np.unravel_index(i, parent.shape)))).replace(" ", "")
    else:
        for k, v in getattr(parent, "__dict__", {}).items():
            if v is child:
                return f".{k}"
    return "<...>"


def _problem_message(root: str, problems: list[tuple[str, str, str]]) -> str:
    shown = "; ".join(f"{path} ({tname}): {reason}" for path, tname, reason in problems[:5])
    if len(problems) > 5:
        shown += f"; and {len(problems) - 5} more"
    what = "it is" if len(problems) == 1 else "they are"
    return (
        f"Cannot fingerprint {shown}. Only the type enters the fingerprint, so {what} treated "
        "as unchanged whatever the state: changing it will not cause a recomputation. Watch "
        f"the attributes that affect the result instead, e.g. watch=['{root}.a'], or leave it "
        f"out with ignore=['{root}']."
    )


def _qualname(obj: Any) -> str:
    mod = getattr(obj, "__module__", None)
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if not isinstance(name, str):
        name = type(obj).__qualname__
    return f"{mod}.{name}" if isinstance(mod, str) else name


# -- scalars ---------------------------------------------------------------------------------
def _h_none(fp: Fingerprinter, obj: Any, h: Any) -> None:
    h.update(b"N")


def _h_bool(fp: Fingerprinter, obj: bool, h: Any) -> None:
    h.update(b"T" if obj else b"F")


def _h_int(fp: Fingerprinter, obj: int, h: Any) -> None:
    try:
        h.update(_TI(b"i", obj))
    except struct.error:  # beyond int64: length-prefixed two's complement
        data = obj.to_bytes(obj.bit_length() // 8 + 1, "little", signed=True)
        h.update(_TL(b"I", len(data)))
        h.update(data)


def _h_float(fp: Fingerprinter, obj: float, h: Any) -> None:
    h.update(_TF(b"f", obj))


def _h_complex(fp: Fingerprinter, obj: complex, h: Any) -> None:
    h.update(_TC(b"c", obj.real, obj.imag))


def _h_str(fp: Fingerprinter | None, obj: str, h: Any) -> None:
    data = obj.encode("utf-8", "surrogatepass")
    h.update(_TL(b"s", len(data)))
    h.update(data)


def _h_bytes(fp: Fingerprinter, obj: bytes, h: Any) -> None:
    h.update(_TL(b"b" if type(obj) is bytes else b"a", len(obj)))
    h.update(obj)


def _h_memoryview(fp: Fingerprinter, obj: memoryview, h: Any) -> None:
    _h_str(fp, obj.format, h)
    h.update(_shape(b"v", obj.shape or ()))
    h.update(obj if obj.c_contiguous else obj.tobytes())


def _h_singleton(fp: Fingerprinter, obj: Any, h: Any) -> None:
    h.update(b"." if obj is Ellipsis else b"!")  # Ellipsis / NotImplemented


def _h_uuid(fp: Fingerprinter, obj: uuid.UUID, h: Any) -> None:
    h.update(b"u")
    h.update(obj.bytes)


def _h_by_args(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Stdlib value types rebuilt from simple constructor arguments (dates, Decimal, paths)."""
    h.update(b"y")
    _h_str(fp, _qualname(type(obj)), h)
    fp._walk(obj.__reduce_ex__(4)[1], h)


def _h_npscalar(fp: Fingerprinter, obj: np.generic, h: Any) -> None:
    dt = obj.dtype
    if dt.hasobject:
        h.update(b"o")
        fp._walk(obj.item(), h)
        return
    h.update(b"z")
    if dt.names is None:
        _h_str(fp, dt.str, h)
    else:
        fp._walk(dt.descr, h)
    data = obj.tobytes()
    h.update(_TL(b"z", len(data)))
    h.update(data)


def _shape(tag: bytes, shape: tuple[int, ...]) -> bytes:
    return _TL(tag, len(shape)) + struct.pack(f"<{len(shape)}q", *shape)


# -- containers ------------------------------------------------------------------------------
def _seq_handler(tag: bytes) -> Handler:
    def _h_seq(fp: Fingerprinter, obj: Any, h: Any) -> None:
        n = len(obj)
        if not n:
            h.update(_TL(tag, 0))
            return
        if not fp._enter(obj, h):
            return
        h.update(_TL(tag, n))
        get = _EXACT.get
        for x in obj:
            f = get(type(x))
            if f is None:
                f = _handler_for(type(x))
            f(fp, x, h)
        fp._leave(obj)

    return _h_seq


def _sorted_or_subdigests(fp: Fingerprinter, items: Any, n: int, pairs: bool) -> tuple[bool, Any]:
    """Canonical order of dict items or set elements: sorted, or else sorted sub-digests."""
    kinds = set(map(type, items))
    if kinds == _STR or kinds == _INT:
        return True, sorted(items.items() if pairs else items)
    walk, subs = fp._walk, []
    for x in items.items() if pairs else items:
        sh = fp._sub()
        if pairs:
            walk(x[0], sh)
            walk(x[1], sh)
        else:
            walk(x, sh)
        subs.append(sh.digest())
    subs.sort()
    return False, b"".join(subs)


def _dict_body(fp: Fingerprinter, obj: dict, h: Any, tag: bytes) -> None:
    n = len(obj)
    if not n:
        h.update(_TL(tag, 0))
        return
    if not fp._enter(obj, h):
        return
    ordered, content = _sorted_or_subdigests(fp, obj, n, True)
    if ordered:
        h.update(_TL(tag, n))
        key_handler = _h_str if type(content[0][0]) is str else _h_int
        get = _EXACT.get
        for k, v in content:
            key_handler(fp, k, h)
            f = get(type(v))
            if f is None:
                f = _handler_for(type(v))
            f(fp, v, h)
    else:
        h.update(_TL(tag.upper(), n))
        h.update(content)
    fp._leave(obj)


def _h_dict(fp: Fingerprinter, obj: dict, h: Any) -> None:
    _dict_body(fp, obj, h, b"d")


def _h_defaultdict(fp: Fingerprinter, obj: defaultdict, h: Any) -> None:
    h.update(b"q")
    fp._walk(obj.default_factory, h)
    _dict_body(fp, obj, h, b"d")


def _h_ordereddict(fp: Fingerprinter, obj: OrderedDict, h: Any) -> None:
    """Order-sensitive: two OrderedDicts with the same items in another order differ."""
    if not fp._enter(obj, h):
        return
    h.update(_TL(b"O", len(obj)))
    for k, v in obj.items():
        fp._walk(k, h)
        fp._walk(v, h)
    fp._leave(obj)


def _set_handler(tag: bytes) -> Handler:
    def _h_set(fp: Fingerprinter, obj: Any, h: Any) -> None:
        n = len(obj)
        if not n:
            h.update(_TL(tag, 0))
            return
        if not fp._enter(obj, h):
            return
        ordered, content = _sorted_or_subdigests(fp, obj, n, False)
        if ordered:
            h.update(_TL(tag, n))
            f = _h_str if type(content[0]) is str else _h_int
            for x in content:
                f(fp, x, h)
        else:
            h.update(_TL(tag.upper(), n))
            h.update(content)
        fp._leave(obj)

    return _h_set


def _builtin_subclass(base_handler: Handler) -> Handler:
    def _h_subclass(fp: Fingerprinter, obj: Any, h: Any) -> None:
        h.update(b"S")
        _h_class(fp, type(obj), h)
        base_handler(fp, obj, h)
        extra = getattr(obj, "__dict__", None)
        if extra:
            fp._hop(extra, _HOP_ATTRS)
            fp._walk(extra, h)
        else:
            h.update(b"N")

    return _h_subclass


# -- numpy -----------------------------------------------------------------------------------
def _h_ndarray(fp: Fingerprinter, obj: np.ndarray, h: Any) -> None:
    fp._memoised(obj, h, b"A", _fill_ndarray)


def _fill_ndarray(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    if type(a) is np.ndarray:
        h.update(b"n")
    else:  # subclass: its class, the mask of a masked array, then the plain data
        h.update(b"N")
        _h_class(fp, type(a), h)
        if isinstance(a, np.ma.MaskedArray):
            _array_body(fp, np.ma.getmaskarray(a), h)
            a = a.data
        a = a.view(np.ndarray)
    _array_body(fp, a, h)


def _array_body(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    """Frame (dtype, shape, order) and content of a plain ndarray, written into ``h``."""
    dt = a.dtype
    if dt.names is None:
        _h_str(fp, dt.str, h)
    else:
        h.update(b"r")
        fp._walk(dt.descr, h)
    h.update(_shape(b"#", a.shape))
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
        _stream(a, h)


def _stream(a: np.ndarray, h: Any) -> None:
    """Hash the C-order bytes of a strided array, copying about 1 MiB at a time."""
    if a.nbytes == 0:
        return
    if a.ndim == 0:
        h.update(a.tobytes())
        return
    row = a.nbytes // a.shape[0]
    if row > _BLOCK and a.ndim > 1:
        for sub in a:
            if sub.flags.c_contiguous:
                h.update(sub)
            else:
                _stream(sub, h)
        return
    rows = max(1, _BLOCK // row)
    buf = np.empty((min(rows, a.shape[0]),) + a.shape[1:], dtype=a.dtype)
    for start in range(0, a.shape[0], rows):
        part = a[start : start + rows]
        out = buf[: part.shape[0]]
        np.copyto(out, part)
        h.update(out)


def _object_elements(fp: Fingerprinter, a: np.ndarray, h: Any) -> None:
    flat = a.reshape(-1)
    if a.dtype.kind == "T":
        flat = flat.astype(object)
    if a.dtype.names is None and flat.shape[0] >= _ARROW_MIN:
        from . import _hash_pandas

        digest = _hash_pandas.object_strings_digest(flat, fp._seed)
        if digest is not None:
            h.update(b"S")
            h.update(digest)
            return
    pushed = not (fp._stack and fp._stack[-1] is a)
    if pushed and not fp._enter(a, h):
        return
    h.update(b"E")
    get = _EXACT.get
    for start in range(0, flat.shape[0], 65536):
        for x in flat[start : start + 65536].tolist():
            f = get(type(x))
            if f is None:
                f = _handler_for(type(x))
            f(fp, x, h)
    if pushed:
        fp._leave(a)


# -- code, classes, modules, estimators, enums -----------------------------------------------
_CODEHASH: Any = None


def _codehash() -> Any:
    """The codehash module, or None if it cannot be imported (then code counts by name)."""
    global _CODEHASH
    if _CODEHASH is None:
        try:
            from . import codehash
        except ImportError as exc:
            logger.warning("checkpoint_magic.codehash unavailable (%s); code hashed by name", exc)
            codehash = False  # type: ignore[assignment]
        _CODEHASH = codehash
    return _CODEHASH or None


def _code_bytes(fp: Fingerprinter, obj: Any) -> bytes:
    ch = _codehash()
    if ch is not None:
        try:
            text = ch.code_fingerprint(obj)
        except Exception as exc:  # noqa: BLE001 - reported to the user, then name only
            fp._problems.append((fp._path_to(obj), _qualname(type(obj)), f"its code cannot be fingerprinted ({exc})"))
            text = "name:" + _qualname(obj)
    else:
        code = getattr(obj, "__code__", None)
        text = _qualname(obj) + (code.co_code.hex() if code is not None else "")
    data = text.encode("utf-8", "surrogatepass")
    return _TL(b"k", len(data)) + data


def _h_code(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Functions, lambdas and classes: their code fingerprint (memoised by id)."""
    hit = fp._memo.get(id(obj))
    if hit is None:
        nproblems = len(fp._problems)
        hit = (obj, _code_bytes(fp, obj))
        if len(fp._problems) == nproblems:
            fp._memo[id(obj)] = hit
    h.update(hit[1])


def _h_class(fp: Fingerprinter, cls: type, h: Any) -> None:
    if getattr(cls, "__module__", None) == "builtins":
        h.update(b"B")
        _h_str(fp, cls.__qualname__, h)
    else:
        _h_code(fp, cls, h)


def _h_method(fp: Fingerprinter, obj: types.MethodType, h: Any) -> None:
    h.update(b"M")
    _h_code(fp, obj, h)
    fp._walk(obj.__self__, h)


def _h_builtin_function(fp: Fingerprinter, obj: Any, h: Any) -> None:
    owner = getattr(obj, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        mod = getattr(obj, "__module__", None) or getattr(owner, "__name__", "")
        h.update(b"b")
        _h_str(fp, f"{mod}.{obj.__qualname__}", h)
        fp._walk(_package_version(mod), h)
    else:  # a bound builtin method such as [].append: its name and its object
        h.update(b"W")
        _h_str(fp, obj.__qualname__, h)
        fp._walk(owner, h)


def _package_version(module_name: str) -> str | None:
    ch = _codehash()
    if ch is not None:
        return ch.package_version(module_name)
    top = sys.modules.get(module_name.partition(".")[0])
    version = getattr(top, "__version__", None)
    return version if isinstance(version, str) else None


def _h_module(fp: Fingerprinter, obj: types.ModuleType, h: Any) -> None:
    h.update(b"m")
    _h_str(fp, obj.__name__, h)
    ch = _codehash()
    fp._walk(ch.package_version(obj) if ch is not None else _package_version(obj.__name__), h)


def _h_enum(fp: Fingerprinter, obj: enum.Enum, h: Any) -> None:
    h.update(b"e")
    _h_class(fp, type(obj), h)
    fp._walk(obj.name, h)
    if obj.name is None:  # a combination of flags without a name (Python 3.10)
        fp._walk(obj.value, h)


def _is_estimator_class(cls: type) -> bool:
    if (getattr(cls, "__module__", "") or "").startswith("sklearn") and hasattr(cls, "get_params"):
        return True
    base = sys.modules.get("sklearn.base")
    return base is not None and issubclass(cls, base.BaseEstimator)


def _h_estimator(fp: Fingerprinter, obj: Any, h: Any) -> None:
    fp._memoised(obj, h, b"K", _fill_estimator)


def _fill_estimator(fp: Fingerprinter, est: Any, h: Any) -> None:
    """Class and package version, ``get_params(deep=False)`` and fitted ``name_`` attributes."""
    cls = type(est)
    try:
        params = est.get_params(deep=False)
    except (AttributeError, TypeError, NotImplementedError) as exc:
        logger.debug("get_params of %s failed (%s); hashing its pickled state", cls, exc)
        _fill_reduce(fp, est, h)
        return
    h.update(b"k")
    _h_str(fp, cls.__module__, h)
    _h_str(fp, cls.__qualname__, h)
    fp._walk(_package_version(cls.__module__), h)
    _h_class(fp, cls, h)
    fitted = {
        k: v for k, v in getattr(est, "__dict__", {}).items() if k.endswith("_") and not k.startswith("_")
    }
    fp._hop(params, _HOP_ATTRS)
    fp._hop(fitted, _HOP_ATTRS)
    fp._walk(params, h)
    fp._walk(fitted, h)


# -- everything else: the pickled state, walked -----------------------------------------------
def _h_generic(fp: Fingerprinter, obj: Any, h: Any) -> None:
    fp._memoised(obj, h, b"G", _fill_reduce)


def _fill_reduce(fp: Fingerprinter, obj: Any, h: Any) -> None:
    cls = type(obj)
    try:
        reducer = copyreg.dispatch_table.get(cls)  # as pickle does (numpy ufuncs, ...)
        rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    except Exception as exc:  # noqa: BLE001 - any refusal to pickle is reported the same way
        fp._report(obj, h, f"it cannot be pickled ({type(exc).__name__}: {exc})")
        return
    if isinstance(rv, str):  # a module-level singleton, pickled by name
        h.update(b"$")
        _h_str(fp, _qualname(cls), h)
        _h_str(fp, rv, h)
        return
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
        fp._report(obj, h, "its __reduce_ex__ returned something pickle cannot use")
        return
    h.update(_TL(b"P", len(rv)))
    _h_class(fp, cls, h)
    func, args, *rest = rv
    if hasattr(func, "__qualname__"):
        _h_str(fp, _qualname(func), h)
    else:
        fp._walk(func, h)
    fp._walk(args, h)
    state = rest[0] if rest else None
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ values)
        fp._hop(state, _HOP_SILENT)
        for part in state:
            if isinstance(part, dict):
                fp._hop(part, _HOP_ATTRS)
    elif isinstance(state, dict):
        fp._hop(state, _HOP_ATTRS)
    fp._walk(state, h)
    for i, items in enumerate(rest[1:3]):
        if items is None:
            h.update(b"N")
            continue
        items = list(items)  # listitems, or dictitems pairs (in their order)
        fp._hop(items, _HOP_SILENT)
        h.update(b"LD"[i : i + 1])
        fp._walk(items, h)
    if len(rest) > 3 and rest[3] is not None:
        _h_str(fp, _qualname(rest[3]), h)


# -- dispatch ---------------------------------------------------------------------------------
_EXACT: dict[type, Handler] = {
    type(None): _h_none,
    bool: _h_bool,
    int: _h_int,
    float: _h_float,
    complex: _h_complex,
    str: _h_str,
    bytes: _h_bytes,
    bytearray: _h_bytes,
    memoryview: _h_memoryview,
    list: _seq_handler(b"l"),
    tuple: _seq_handler(b"t"),
    dict: _h_dict,
    OrderedDict: _h_ordereddict,
    defaultdict: _h_defaultdict,
    set: _set_handler(b"e"),
    frozenset: _set_handler(b"z"),
    type(...): _h_singleton,
    type(NotImplemented): _h_singleton,
    uuid.UUID: _h_uuid,
    np.ndarray: _h_ndarray,
    type: _h_class,
    types.FunctionType: _h_code,
    types.MethodType: _h_method,
    types.BuiltinFunctionType: _h_builtin_function,
    types.ModuleType: _h_module,
}
for _t in (_dt.datetime, _dt.date, _dt.time, _dt.timedelta, _dt.timezone, decimal.Decimal,
           fractions.Fraction, range, slice, pathlib.PurePosixPath, pathlib.PureWindowsPath,
           pathlib.PosixPath, pathlib.WindowsPath):  # fmt: skip
    _EXACT[_t] = _h_by_args
for _t in set(np.sctypeDict.values()):
    if issubclass(_t, np.generic) and _t is not np.object_:
        _EXACT[_t] = _h_npscalar

_BUILTIN_BASES: tuple[tuple[type, Handler], ...] = tuple(
    (base, _EXACT[base])
    for base in (int, float, complex, str, bytes, bytearray, OrderedDict, defaultdict, dict,
                 list, tuple, set, frozenset)  # fmt: skip
)
_RESOLVED: dict[type, Handler] = {}


def _handler_for(cls: type) -> Handler:
    """Handler of a type missing from the exact-type table (cached per type)."""
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
    module = getattr(cls, "__module__", None) or ""
    if module.startswith("pandas"):
        from . import _hash_pandas

        fill = _hash_pandas.fill_for(cls)
        if fill is not None:
            return lambda fp, obj, h: fp._memoised(obj, h, b"D", fill)
    if _is_estimator_class(cls):
        return _h_estimator
    if issubclass(cls, enum.Enum):
        return _h_enum
    if issubclass(cls, type):
        return _h_class
    for base in (types.FunctionType, types.MethodType, types.BuiltinFunctionType, types.ModuleType):
        if issubclass(cls, base):
            return _EXACT[base]
    for base, handler in _BUILTIN_BASES:
        if issubclass(cls, base):
            return _builtin_subclass(handler)
    return _h_generic
