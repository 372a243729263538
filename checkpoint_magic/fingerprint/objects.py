"""Fingerprints of code, classes, modules, enums, estimators and other objects (extends ``values``).

Everything :mod:`checkpoint_magic.fingerprint.values` neither encodes itself (builtins, containers,
numpy) nor hands to :mod:`checkpoint_magic.fingerprint.pandas`. :mod:`checkpoint_magic.fingerprint`
registers :data:`EXACT` (classes, functions, methods, builtin functions, modules),
:func:`handler_for` and :func:`fill_reduce` (the fallback) with ``values.register``.

- Functions, methods and classes count by :func:`checkpoint_magic.fingerprint.code.code_fingerprint`
  (a bound method also by its ``__self__``); builtin functions and modules by name and
  package version (a user module also by the code of its functions and classes and the value
  of its other attributes); enum members by class and name.
- scikit-learn estimators by class and package version, ``get_params(deep=False)`` and
  their whole state (``__getstate__``: every attribute, private fitted ones such as
  ``_fit_X``, ``_tree``, ``_tfidf`` included).
- Anything else is walked through ``__reduce_ex__(4)``: what pickle would save, never pickled
  to bytes, plus the code of its class. A value whose ``__reduce_ex__`` refuses to pickle
  it (``TypeError``, ``PicklingError``, ``NotImplementedError``: lock, open file, generator,
  connection) adds one :class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning`
  naming its attribute path (``f.conn``); only its type enters the digest. Any other error
  propagates (``values`` raises ``FingerprintError``).

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
import threading
import types
from typing import Any

from . import origin
from .code import code_fingerprint
from .stdtypes import hash_str
from .values import (
    HOP_ATTRS,
    HOP_SILENT,
    Fingerprinter,
    Handler,
    QuietFingerprinter,
    pack_tag,
    qualname,
)

logger = logging.getLogger(__name__)

#: How ``__reduce_ex__`` says that a value cannot be pickled (lock, open file, generator...).
_REFUSALS = (TypeError, pickle.PicklingError, NotImplementedError)


# -- code, classes, modules, enums -----------------------------------------------------------
def h_code(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Hash a function, method or class as its code fingerprint (memoised by id).

    Parameters
    ----------
    fp : Fingerprinter
        The walk in progress (its memo, seed and problem reports).
    obj : function, method or class
        The code object to fingerprint.
    h : xxhash.xxh3_128
        The hasher to update.

    Raises
    ------
    FingerprintError
        When the code cannot be fingerprinted (the name alone could give false hits).
    """
    hit = fp.memo.get(id(obj))
    if hit is None:  # a failure raises FingerprintError: the name alone could give false hits
        text = code_fingerprint(obj)
        data = text.encode("utf-8", "surrogatepass")
        hit = fp.memo[id(obj)] = (obj, pack_tag(b"k", len(data)) + data)
    h.update(hit[1])


def h_class(fp: Fingerprinter, cls: type, h: Any) -> None:
    """Hash a class: builtins by name, any other class by its code fingerprint.

    Parameters
    ----------
    fp : Fingerprinter
        The walk in progress (its memo, seed and problem reports).
    cls : type
        The class.
    h : xxhash.xxh3_128
        The hasher to update.
    """
    if getattr(builtins, getattr(cls, "__name__", ""), None) is cls:
        h.update(b"B")
        hash_str(fp, cls.__qualname__, h)
    else:
        h_code(fp, cls, h)


def _h_method(fp: Fingerprinter, obj: types.MethodType, h: Any) -> None:
    h.update(b"M")
    h_code(fp, obj, h)
    fp.walk(obj.__self__, h)


def _h_builtin_function(fp: Fingerprinter, obj: Any, h: Any) -> None:
    owner = getattr(obj, "__self__", None)
    if owner is None or isinstance(owner, types.ModuleType):
        module = str(getattr(obj, "__module__", None) or getattr(owner, "__name__", ""))
        h.update(b"w")
        hash_str(fp, f"{module}.{obj.__qualname__}", h)
        fp.walk(_package_version(module), h)
    else:  # a bound builtin method such as [].append: its name and its object
        h.update(b"W")
        hash_str(fp, obj.__qualname__, h)
        fp.walk(owner, h)


def _package_version(module: str | types.ModuleType) -> str | None:
    return origin.package_version(module)


def _h_module(fp: Fingerprinter, obj: types.ModuleType, h: Any) -> None:
    h.update(b"m")
    hash_str(fp, obj.__name__, h)
    fp.walk(_package_version(obj), h)
    if origin.is_user_code(obj):  # your own module as a value (f(mymodule)): what it holds
        fp.memoised(obj, h, b"U", _fill_user_module)


#: The user modules whose attributes this thread is hashing (their data may hold them again).
_FILLING = threading.local()


def _fill_user_module(fp: Fingerprinter, mod: types.ModuleType, h: Any) -> None:
    """A user module has no version: its functions and classes by code, the rest by value."""
    filling: set[int] = _FILLING.__dict__.setdefault("ids", set())
    if id(mod) in filling:  # met again in its own data (REG = [sys.modules[__name__]])
        h.update(b"r")  # its name is written already
        return
    filling.add(id(mod))
    try:
        for name, v in sorted((k, v) for k, v in vars(mod).items() if type(k) is str):
            if name.startswith("__") or isinstance(v, types.ModuleType):
                continue
            hash_str(fp, name, h)
            if isinstance(v, type):
                h_class(fp, v, h)
            elif isinstance(v, types.FunctionType):
                h_code(fp, v, h)
            else:  # data: by value; a part that cannot be walked (a lock) by its type, quietly
                hash_str(fp, QuietFingerprinter().fingerprint(v), h)
    finally:
        filling.discard(id(mod))


def _h_enum(fp: Fingerprinter, obj: enum.Enum, h: Any) -> None:
    h.update(b"n")
    h_class(fp, type(obj), h)
    fp.walk(obj.name, h)
    if obj.name is None:  # a combination of flags without a name (Python 3.10)
        fp.walk(obj.value, h)


# -- scikit-learn estimators -----------------------------------------------------------------
def _is_estimator_class(cls: type) -> bool:
    if (getattr(cls, "__module__", "") or "").startswith("sklearn") and hasattr(cls, "get_params"):
        return True
    base = sys.modules.get("sklearn.base")
    return base is not None and issubclass(cls, base.BaseEstimator)


def _fill_estimator(fp: Fingerprinter, est: Any, h: Any) -> None:
    """Class with package version, ``get_params(deep=False)`` and the whole state."""
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
    fp.walk(_package_version(cls.__module__), h)
    h_class(fp, cls, h)
    # The whole fitted state: a KNeighborsClassifier predicts from _fit_X and _y, a
    # TfidfVectorizer from _tfidf, HistGradientBoosting from _predictors (not only name_).
    state = getattr(est, "__getstate__", None)
    fitted = state() if callable(state) else vars(est)
    if not isinstance(fitted, dict):
        fitted = {"__state__": fitted}
    for part in (params, fitted):
        fp.hop(part, HOP_ATTRS)
        fp.walk(part, h)


# -- everything else: the pickled state, walked -----------------------------------------------
def fill_reduce(fp: Fingerprinter, obj: Any, h: Any) -> None:
    """Fill ``h`` with what ``__reduce_ex__(4)`` returns for ``obj``, walked, and its class.

    A value that refuses to be pickled (a lock, an open file) is reported through ``fp`` (it
    then counts by its type only) instead of raising.

    Parameters
    ----------
    fp : Fingerprinter
        The walk in progress (its memo, seed and problem reports).
    obj : object
        The value, of a type no other handler takes.
    h : xxhash.xxh3_128
        The hasher to update.
    """
    cls = type(obj)
    try:
        reducer = copyreg.dispatch_table.get(cls)  # as pickle does (numpy ufuncs, ...)
        rv = reducer(obj) if reducer is not None else obj.__reduce_ex__(4)
    except _REFUSALS as exc:  # any other error is a bug: FingerprintError (see hashing)
        fp.report(obj, h, f"it cannot be pickled ({type(exc).__name__}: {exc})")
        return
    if isinstance(rv, str):  # a module-level singleton, pickled by name
        h.update(b"$")
        hash_str(fp, qualname(cls), h)
        hash_str(fp, rv, h)
        return
    if not isinstance(rv, tuple) or not 2 <= len(rv) <= 6:
        fp.report(obj, h, "its __reduce_ex__ returned something pickle cannot use")
        return
    h.update(pack_tag(b"P", len(rv)))
    h_class(fp, cls, h)  # the code of a user-defined class counts too
    func, args, *rest = rv
    if hasattr(func, "__qualname__"):
        hash_str(fp, qualname(func), h)
    else:
        fp.walk(func, h)
    fp.walk(args, h)
    state = rest[0] if rest else None
    if isinstance(state, tuple) and len(state) == 2:  # (__dict__, __slots__ values)
        fp.hop(state, HOP_SILENT)
        for part in state:
            fp.hop(part, HOP_ATTRS)
    else:
        fp.hop(state, HOP_ATTRS)
    fp.walk(state, h)
    for items in rest[1:3]:  # listitems, dictitems (pairs, in their order)
        items = None if items is None else list(items)
        fp.hop(items, HOP_SILENT)
        fp.walk(items, h)
    if len(rest) > 3:
        fp.walk(None if rest[3] is None else qualname(rest[3]), h)


# -- dispatch ---------------------------------------------------------------------------------
#: Handlers by exact type, registered with ``values.register``.
EXACT: dict[type, Handler] = {
    type: h_class,
    types.FunctionType: h_code,
    types.MethodType: _h_method,
    types.BuiltinFunctionType: _h_builtin_function,
    types.ModuleType: _h_module,
}


def handler_for(cls: type) -> Handler | None:
    """Return the handler of a non-pandas ``cls`` value that this module owns, else None.

    Estimators, enums, classes (instances of a metaclass) and subclasses of the code types;
    None for builtin subclasses and other objects (see :func:`fill_reduce`).

    Parameters
    ----------
    cls : type
        The type of the value to hash.

    Returns
    -------
    Handler or None
        ``handler(fp, obj, h)``, or None to let ``values`` decide.

    Examples
    --------
    >>> import enum
    >>> handler_for(enum.Enum) is not None, handler_for(dict) is None
    (True, True)
    """
    if _is_estimator_class(cls):
        return lambda fp, obj, h: fp.memoised(obj, h, b"K", _fill_estimator)
    if issubclass(cls, enum.Enum):
        return _h_enum
    for code_type, handler in EXACT.items():  # metaclasses (type) first
        if issubclass(cls, code_type):
            return handler
    return None
