"""Fingerprints of code, classes, modules, enums, estimators and other objects (used by ``hashing``).

Everything :mod:`checkpoint_magic.fingerprint.values` neither encodes itself (builtins, containers,
numpy) nor hands to :mod:`checkpoint_magic.fingerprint.pandas`. ``hashing`` imports this module
last; on import it adds its exact-type handlers (classes, functions, methods, builtin
functions, modules) to ``hashing``'s table, and ``hashing`` asks :func:`handler_for` about
other types before falling back to :func:`fill_reduce`.

- Functions, methods and classes count by :func:`checkpoint_magic.fingerprint.code.code_fingerprint`
  (a bound method also by its ``__self__``); builtin functions and modules by name and
  package version; enum members by class and name.
- scikit-learn estimators by class and package version, ``get_params(deep=False)`` and
  fitted attributes (``name_``).
- Anything else is walked through ``__reduce_ex__(4)``: what pickle would save, never pickled
  to bytes, plus the code of its class. A value whose ``__reduce_ex__`` refuses to pickle
  it (``TypeError``, ``PicklingError``, ``NotImplementedError``: lock, open file, generator,
  connection) adds one :class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning`
  naming its attribute path (``f.conn``), worded by :func:`problem_message`; only its type
  enters the digest. Any other error propagates (``hashing`` raises ``FingerprintError``).

Examples
--------
>>> from checkpoint_magic.fingerprint.values import fingerprint
>>> import math, os
>>> fingerprint(math) != fingerprint(os)
True
"""

from __future__ import annotations

import builtins
import copyreg
import enum
import logging
import pickle
import sys
import types
from typing import Any

import numpy as np

from .values import (
    EXACT_HANDLERS,
    HOP_ATTRS,
    HOP_ITEM,
    HOP_SILENT,
    Fingerprinter,
    Handler,
    hash_str,
    pack_tag,
    qualname,
)

logger = logging.getLogger(__name__)

#: How ``__reduce_ex__`` says that a value cannot be pickled (lock, open file, generator...).
_REFUSALS = (TypeError, pickle.PicklingError, NotImplementedError)

_CODEHASH: Any = None


def _codehash() -> Any:
    """The codehash module, or None if it cannot be imported (code then counts by name)."""
    global _CODEHASH
    if _CODEHASH is None:
        try:
            from . import code as codehash
        except ImportError as exc:
            logger.warning(
                "checkpoint_magic.fingerprint.code unavailable (%s); code hashed by name", exc
            )
            codehash = False  # type: ignore[assignment]
        _CODEHASH = codehash
    return _CODEHASH or None


# -- code, classes, modules, enums -----------------------------------------------------------
def h_code(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Functions, methods and classes: their code fingerprint (memoised by id)."""
    hit = fp._memo.get(id(obj))
    if hit is None:
        ch = _codehash()
        if ch is None:
            code = getattr(obj, "__code__", None)
            text = qualname(obj) + (code.co_code.hex() if code is not None else "")
        else:  # a failure is an error (FingerprintError): the name alone could give false hits
            text = ch.code_fingerprint(obj)
        data = text.encode("utf-8", "surrogatepass")
        hit = fp._memo[id(obj)] = (obj, pack_tag(b"k", len(data)) + data)
    h.update(hit[1])


def h_class(fp: Fingerprinter, cls: type, h: Any) -> None:
    """A class: builtins by name, any other class by its code fingerprint."""
    if getattr(builtins, getattr(cls, "__name__", ""), None) is cls:
        h.update(b"B")
        hash_str(fp, cls.__qualname__, h)
    else:
        h_code(fp, cls, h)


def _h_method(fp: Fingerprinter, obj: types.MethodType, h: Any) -> None:
    h.update(b"M")
    h_code(fp, obj, h)
    fp._walk(obj.__self__, h)


def _h_builtin_function(fp: Fingerprinter, obj: Any, h: Any) -> None:
    owner = getattr(obj, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        module = str(getattr(obj, "__module__", None) or getattr(owner, "__name__", ""))
        h.update(b"w")
        hash_str(fp, f"{module}.{obj.__qualname__}", h)
        fp._walk(_package_version(module), h)
    else:  # a bound builtin method such as [].append: its name and its object
        h.update(b"W")
        hash_str(fp, obj.__qualname__, h)
        fp._walk(owner, h)


def _package_version(module: str | types.ModuleType) -> str | None:
    ch = _codehash()
    if ch is not None:
        return ch.package_version(module)
    name = module if isinstance(module, str) else module.__name__
    version = getattr(sys.modules.get(name.partition(".")[0]), "__version__", None)
    return version if isinstance(version, str) else None


def _h_module(fp: Fingerprinter, obj: types.ModuleType, h: Any) -> None:
    h.update(b"m")
    hash_str(fp, obj.__name__, h)
    fp._walk(_package_version(obj), h)


def _h_enum(fp: Fingerprinter, obj: enum.Enum, h: Any) -> None:
    h.update(b"n")
    h_class(fp, type(obj), h)
    fp._walk(obj.name, h)
    if obj.name is None:  # a combination of flags without a name (Python 3.10)
        fp._walk(obj.value, h)


# -- scikit-learn estimators -----------------------------------------------------------------
def _is_estimator_class(cls: type) -> bool:
    if (getattr(cls, "__module__", "") or "").startswith("sklearn") and hasattr(cls, "get_params"):
        return True
    base = sys.modules.get("sklearn.base")
    return base is not None and issubclass(cls, base.BaseEstimator)


def _fill_estimator(fp: Fingerprinter, est: Any, h: Any) -> None:
    """Class with package version, ``get_params(deep=False)`` and fitted ``name_`` attributes."""
    cls = type(est)
    try:
        params = est.get_params(deep=False)
    except (AttributeError, TypeError, NotImplementedError) as exc:
        logger.debug("get_params of %s failed (%s); hashing its pickled state", cls, exc)
        fill_reduce(fp, est, h)
        return
    h.update(b"k")
    hash_str(fp, cls.__module__, h)
    hash_str(fp, cls.__qualname__, h)
    fp._walk(_package_version(cls.__module__), h)
    h_class(fp, cls, h)
    fitted = {k: v for k, v in vars(est).items() if k.endswith("_") and not k.startswith("_")}
    for part in (params, fitted):
        fp._hop(part, HOP_ATTRS)
        fp._walk(part, h)


# -- everything else: the pickled state, walked -----------------------------------------------
def fill_reduce(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Fill ``h`` with what ``__reduce_ex__(4)`` returns for ``obj``, walked, and its class."""
    cls = type(obj)
    try:
        reducer = copyreg.dispatch_table.get(cls)  # as pickle does (numpy ufuncs, ...)
        rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    except _REFUSALS as exc:  # any other error is a bug: FingerprintError (see hashing)
        fp._report(obj, h, f"it cannot be pickled ({type(exc).__name__}: {exc})")
        return
    if isinstance(rv, str):  # a module-level singleton, pickled by name
        h.update(b"$")
        hash_str(fp, qualname(cls), h)
        hash_str(fp, rv, h)
        return
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
        fp._report(obj, h, "its __reduce_ex__ returned something pickle cannot use")
        return
    h.update(pack_tag(b"P", len(rv)))
    h_class(fp, cls, h)  # the code of a user-defined class counts too
    func, args, *rest = rv
    if hasattr(func, "__qualname__"):
        hash_str(fp, qualname(func), h)
    else:
        fp._walk(func, h)
    fp._walk(args, h)
    state = rest[0] if rest else None
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ values)
        fp._hop(state, HOP_SILENT)
        for part in state:
            fp._hop(part, HOP_ATTRS)
    else:
        fp._hop(state, HOP_ATTRS)
    fp._walk(state, h)
    for items in rest[1:3]:  # listitems, dictitems (pairs, in their order)
        items = None if items is None else list(items)
        fp._hop(items, HOP_SILENT)
        fp._walk(items, h)
    if len(rest) > 3:
        fp._walk(None if rest[3] is None else qualname(rest[3]), h)


# -- the warning about values that cannot be walked ------------------------------------------
class QuietFingerprinter(Fingerprinter):
    """A Fingerprinter that logs values it cannot walk instead of warning (class data in code)."""

    __slots__ = ()

    def _warn(self) -> None:
        logger.debug("%s", problem_message(self._root, self._problems))


def path_to(fp: Fingerprinter, target: Any) -> str:
    """The attribute path of ``target`` (on or just below the walk stack), e.g. ``f.conn``."""
    chain = fp._stack + ([] if fp._stack and fp._stack[-1] is target else [target])
    parts, attrs = [fp._root], False
    for parent, child in zip(chain[:-1], chain[1:], strict=True):
        hop = fp._hops.get(id(child))
        if hop is not None and hop[0] is child:
            parts.append(f"[{hop[2]!r}]" if hop[1] == HOP_ITEM else "")
            attrs = hop[1] == HOP_ATTRS
        else:
            parts.append(path_label(parent, child, attrs))
            attrs = False
    parts = [p for p in parts if p]
    if len(parts) > 16:
        parts[8:-7] = [f"<{len(parts) - 15} more>"]
    return "".join(parts)


def path_label(parent: Any, child: Any, attrs: bool) -> str:
    """How ``child`` is reached from ``parent``, for a warning message (``.a``, ``[0]``)."""
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
    elif isinstance(parent, np.ndarray):
        for i, x in enumerate(parent.reshape(-1) if parent.dtype.hasobject else ()):
            if x is child:
                return "[" + ",".join(str(int(j)) for j in np.unravel_index(i, parent.shape)) + "]"
    else:
        for k, v in getattr(parent, "__dict__", {}).items():
            if v is child:
                return f".{k}"
    return "<...>"


def problem_message(
    root: str, problems: list[tuple[str, str, str]], advice: str | None = None
) -> str:
    """The warning about values that could not be walked: ``(path, type name, reason)`` each.

    ``advice`` (a template with ``{root}``) says what to do with the front end's own
    arguments; without it the advice names both ``watch=`` and ``ignore=``.
    """
    shown = "; ".join(f"{path} ({tname}): {reason}" for path, tname, reason in problems[:5])
    if len(problems) > 5:
        shown += f"; and {len(problems) - 5} more"
    if advice is None:
        advice = (
            "Watch the attributes that affect the result instead, e.g. watch=['{root}.a'], "
            "or leave it out with ignore=['{root}']."
        )
    return (
        f"Cannot fingerprint {shown}. Only the type enters the fingerprint, so "
        f"{'it is' if len(problems) == 1 else 'they are'} treated as unchanged whatever the "
        f"state: changing it will not cause a recomputation. {advice.format(root=root)}"
    )


# -- dispatch ---------------------------------------------------------------------------------
_CODE_EXACT: dict[type, Handler] = {
    type: h_class,
    types.FunctionType: h_code,
    types.MethodType: _h_method,
    types.BuiltinFunctionType: _h_builtin_function,
    types.ModuleType: _h_module,
}
EXACT_HANDLERS.update(_CODE_EXACT)  # registered in hashing's exact-type table


def handler_for(cls: type) -> Handler | None:
    """Return the handler of a non-pandas ``cls`` value that this module owns, else None.

    Estimators, enums, classes (instances of a metaclass) and subclasses of the code types;
    None for builtin subclasses and other objects (see :func:`fill_reduce`).
    """
    if _is_estimator_class(cls):
        return lambda fp, obj, h: fp._memoised(obj, h, b"K", _fill_estimator)
    if issubclass(cls, enum.Enum):
        return _h_enum
    for code_type, handler in _CODE_EXACT.items():  # metaclasses (type) first
        if issubclass(cls, code_type):
            return handler
    return None
