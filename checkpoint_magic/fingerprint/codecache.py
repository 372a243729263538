"""The per-function cache of code fingerprints and its entry points (used by ``code``).

:func:`compute` returns ``(fingerprint, parts)`` of a function, method, class or partial from
:data:`CODE_CACHE` when every object the fingerprint was computed from is still in place
(:meth:`Entry.valid`: identity checks only), and otherwise rebuilds the entry from a
:class:`~checkpoint_magic.fingerprint.codegraph.Graph` traversal. Closure values, defaults
holding data (``def helper(x, k=K)``) and the data attributes of user classes
(``params = {...}``) are re-hashed by value on every call (:meth:`Entry.value`). :func:`data_globals` lists the data globals the code reads (inputs of
a checkpointed call). ``code_fingerprint``'s fast path reads :data:`CODE_CACHE` directly.
"""

from __future__ import annotations

import functools
import struct
import sys
import threading
import types
import weakref
from typing import Any

import xxhash

from ..exceptions import FingerprintError
from .bytecode import CODEHASH_VERSION
from .codegraph import (
    EMPTY,
    MISSING,
    SAME,
    TYPE,
    WEAK,
    Graph,
    data_fp,
    kind_of,
    partial_data,
    value_fp,
)
from .encoding import HASH_SCHEME_VERSION, frame, hex_digest
from .origin import PYTHON_TAG

_INTERPRETER = sys.implementation.cache_tag or PYTHON_TAG  # bytecode differs between interpreters
_STATE = threading.local()


class Entry:
    """A cached fingerprint and everything it was computed from."""

    __slots__ = (
        "refs", "fn_checks", "ns_checks", "volatile", "base", "digest", "parts", "data", "paths"
    )  # fmt: skip
    refs: tuple[Any, ...]
    fn_checks: tuple[tuple[Any, ...], ...]
    ns_checks: tuple[tuple[Any, ...], ...]  # (owner ref, attribute, then (name, expected) by mode)
    volatile: tuple[tuple[Any, int | str, str, str], ...]  # owner ref, cell | attr kind, key, name
    base: Any
    digest: str
    parts: dict[str, str]
    data: tuple[tuple[str, Any, str, str], ...]  # (label, owner ref, attribute, name)
    paths: tuple[str, ...]  # path-shaped constants of the code and its helpers (files read)

    def data_values(self) -> dict[str, Any]:
        """Return the current values of the data globals the code reads (``CONFIG``, ``mod.X``).

        Returns
        -------
        dict of str to object
            The values still bound (a name unbound since is left out).
        """
        out = {}
        for label, ref, attr, name in self.data:
            owner = ref()
            if owner is not None:
                v = getattr(owner, attr).get(name, MISSING)
                if v is not MISSING:
                    out[label] = v
        return out

    def valid(self, roots: tuple[Any, ...]) -> bool:
        """Whether every object the fingerprint was computed from is still in place.

        Parameters
        ----------
        roots : tuple
            The objects fingerprinted (a function; or a method's function and class).

        Returns
        -------
        bool
            False when a root, a function's code, defaults or closure cells, or a followed name
            binding has changed.
        """
        for ref, root in zip(self.refs, roots, strict=True):
            if ref() is not root:
                return False
        for ref, code, defaults, kwdefaults, cells in self.fn_checks:
            fn = ref()
            if (
                fn is None
                or fn.__code__ is not code
                or fn.__defaults__ is not defaults
                or fn.__kwdefaults__ is not kwdefaults
                or (cells and not _cells_unchanged(fn, cells))
            ):
                return False
        missing = MISSING
        for ref, attr, weak, same, typed in self.ns_checks:
            if (owner := ref()) is None:
                return False
            get = getattr(owner, attr).get
            for name, expect in weak:
                if get(name, missing) is not expect():
                    return False
            for name, expect in same:
                if get(name, missing) is not expect:
                    return False
            for name, expect in typed:
                if type(get(name, missing)) is not expect():
                    return False
        return True

    def value(self) -> tuple[str, list[tuple[str, str, str]]] | None:
        """Return the fingerprint, re-hashing closure values, data defaults and class data.

        Called after :meth:`valid`, so a class data attribute is still the same object.

        Returns
        -------
        tuple of (str, list of (str, str, str)), or None
            The fingerprint and ``(part key, name, value fingerprint)`` of each value re-hashed;
            None when a closure cell now holds code or a data attribute is gone (rebuild).
        """
        if not self.volatile:
            return self.digest, []
        h, extra = self.base.copy(), []
        for ref, slot, key, name in self.volatile:
            if type(slot) is int:
                try:
                    v = ref().__closure__[slot].cell_contents
                except (AttributeError, ValueError):
                    return None
                if kind_of(v) not in ("data", "const") and not partial_data(v):
                    return None  # a closure cell now holds code
                fp = value_fp(v)
            elif slot == "default":  # a default holding data (same tuple: see valid())
                if (fn := ref()) is None:
                    return None
                where = name[len("<default>") :]
                if where[0] == "d":
                    v = fn.__defaults__[int(where[1:])]
                else:
                    v = fn.__kwdefaults__[where[1:]]
                fp = data_fp(v)
            else:
                v = vars(owner).get(name, MISSING) if (owner := ref()) is not None else MISSING
                if v is MISSING:
                    return None
                fp, name = data_fp(v._value_ if slot == "enum" else v), "." + name
            h.update(frame(key, name, fp))
            extra.append((key, name, fp))
        return str(h.hexdigest()), extra

    def current_parts(self, values: list[tuple[str, str, str]]) -> dict[str, str]:
        """Return the parts, each with the values re-hashed by :meth:`value` for it.

        Parameters
        ----------
        values : list of (str, str, str)
            ``(part key, name, value fingerprint)`` as returned by :meth:`value`.

        Returns
        -------
        dict of str to str
            Part key to digest.
        """
        parts = dict(self.parts)
        for key, name, fp in values:
            parts[key] = hex_digest(parts[key], name, fp)
        return parts


#: Code fingerprints by id of the root(s), with what they were computed from.
CODE_CACHE: dict[Any, Entry] = {}


def _cells_unchanged(fn: types.FunctionType, cells: tuple[tuple[Any, ...], ...]) -> bool:
    for i, expect, mode in cells:
        try:
            v = fn.__closure__[i].cell_contents  # type: ignore[index]
        except ValueError:
            v = MISSING
        if (
            (v is not MISSING)
            if mode == EMPTY
            else (v is not (expect() if mode == WEAK else expect))
        ):
            return False
    return True


def _roots(obj: Any) -> tuple[Any, ...]:
    """What to fingerprint: a method is its function and the class of its instance."""
    if type(obj) is types.MethodType:
        owner = obj.__self__
        return obj.__func__, owner if isinstance(owner, type) else type(owner)
    if isinstance(obj, (staticmethod, classmethod)):
        return _roots(obj.__func__)
    if kind_of(obj) in ("function", "class", "builtin", "wrapped"):
        return (obj,)
    if callable(obj):
        return (type(obj),)  # a callable instance: its class's code (its state is data)
    raise FingerprintError(
        f"cannot fingerprint the code of a {type(obj).__name__}: pass a function, "
        "method, lambda, functools.partial or class"
    )


def _label(obj: Any) -> str:
    return (
        f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    )


def _build(roots: tuple[Any, ...]) -> Entry:
    g = Graph()
    descs = [str(g.resolve(r)) for r in roots]
    if len(roots) == 1 and type(roots[0]) is types.FunctionType and descs[0].startswith("user:"):
        descs.append(str(g.owner_class(roots[0])))
    for r, desc in zip(roots, descs, strict=False):
        if not desc.startswith("user:"):  # an installed root: its name and version are its part
            g.parts.setdefault(_label(r), hex_digest(desc))
    h = xxhash.xxh3_128()
    h.update(
        frame(
            "checkpoint_magic.code",
            str(CODEHASH_VERSION),
            str(HASH_SCHEME_VERSION),
            _INTERPRETER,
            *descs,
        )
    )
    h.update(struct.pack("<Q", len(g.parts)))
    for key in sorted(g.parts):
        h.update(frame(key, g.parts[key]))
    h.update(struct.pack("<Q", len(g.bindings)))
    for binding in sorted(g.bindings):
        h.update(frame(*binding))
    entry = Entry()
    entry.fn_checks = tuple(g.fn_checks)
    entry.ns_checks = tuple(
        (
            ref,
            attr,
            *(
                tuple((n, e) for n, (e, m) in items.items() if m == mode)
                for mode in (WEAK, SAME, TYPE)
            ),
        )
        for ref, attr, items in g.groups.values()
    )
    entry.volatile = tuple((weakref.ref(fn), i, key, name) for fn, i, key, name in g.volatile)
    entry.base, entry.digest, entry.parts = h, h.hexdigest(), dict(g.parts)
    entry.data = tuple(
        (label, weakref.ref(owner), attr, name) for label, (owner, attr, name) in g.data.items()
    )
    entry.paths = tuple(g.paths)[:64]
    return entry


def inputs_of(obj: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    r"""Return :func:`data_globals` of ``obj`` and the path-shaped constants its code holds.

    Parameters
    ----------
    obj : function, method, class, functools.partial or callable instance
        The code.

    Returns
    -------
    data : dict of str to object
        As :func:`data_globals`.
    paths : tuple of str
        The string constants shaped like file names in the code and every user helper it
        reaches, and the string globals so shaped (``DATA = "data.csv"``); up to 64.

    Examples
    --------
    >>> ns = {"DATA": "data.csv"}
    >>> exec("def f():\n    return open(DATA).read() + open('more.txt').read()\n", ns)
    >>> inputs_of(ns["f"])
    ({}, ('more.txt', 'data.csv'))
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    compute(obj, parts=False)  # builds (or validates) the cached entry
    return _cached_inputs(obj)


def fingerprint_inputs(obj: Any) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    r"""Return ``compute(obj, parts=False)[0]`` and :func:`inputs_of` ``obj`` in one pass.

    A closure value or data default is hashed once per call, not once for each.

    Parameters
    ----------
    obj : function, method, class, functools.partial or callable instance
        The code.

    Returns
    -------
    fingerprint : str
        As :func:`compute`.
    data, paths
        As :func:`inputs_of`.

    Examples
    --------
    >>> ns = {"CONFIG": [1]}
    >>> exec("def f():\n    return CONFIG\n", ns)
    >>> fp, data, paths = fingerprint_inputs(ns["f"])
    >>> (fp, data, paths) == (compute(ns["f"])[0], *inputs_of(ns["f"]))
    True
    """
    fp = compute(obj, parts=False)[0]  # also builds (or validates) the entry of obj's function
    while isinstance(obj, functools.partial):
        obj = obj.func
    return (fp, *_cached_inputs(obj))


def _cached_inputs(obj: Any) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The data values and paths of ``obj``'s entry, just built or validated by compute."""
    roots = _roots(obj)
    entry = CODE_CACHE.get(id(roots[0]) if len(roots) == 1 else tuple(map(id, roots)))
    if entry is None:  # a root without weak references: not cached
        entry = _build(roots)
    return entry.data_values(), entry.paths


def data_globals(obj: Any) -> dict[str, Any]:
    r"""Return the data globals (not code, not small constants) that ``obj``'s code reads.

    Module-level names read by the function and every user helper it reaches, and the data
    attributes of user modules it uses, by label: ``NAME`` for ``__main__`` / ``exec`` code,
    ``module.NAME`` otherwise. Their *values* are inputs of a checkpointed call.

    Parameters
    ----------
    obj : function, method, class, functools.partial or callable instance
        The code.

    Returns
    -------
    dict of str to object
        Label to current value.

    Raises
    ------
    FingerprintError
        When ``obj`` is not code.

    Examples
    --------
    >>> ns = {"CONFIG": {"k": 3}}
    >>> exec("def f():\n    return CONFIG['k']\n", ns)
    >>> data_globals(ns["f"])
    {'CONFIG': {'k': 3}}
    """
    return inputs_of(obj)[0]


def compute(obj: Any, parts: bool = True) -> tuple[str, dict[str, str]]:
    r"""Return (fingerprint, parts) of ``obj``, from the cache when nothing it used has changed.

    Parameters
    ----------
    obj : function, method, class, functools.partial or callable instance
        The code.
    parts : bool, default True
        With False the parts are not updated with the current data values (faster).

    Returns
    -------
    fingerprint : str
        32 hexadecimal digits.
    parts : dict of str to str
        The own-code digest of each user function and class reached, by key.

    Raises
    ------
    FingerprintError
        When ``obj`` is not code, or its closure changes while it is fingerprinted.

    Examples
    --------
    >>> ns = {}
    >>> exec("def g(x):\n    return x\ndef f(x):\n    return g(x)\n", ns)
    >>> fp, parts = compute(ns["f"])
    >>> len(fp), sorted(parts)
    (32, ['<exec>.f', '<exec>.g'])
    """
    partial = isinstance(obj, functools.partial)
    roots = (obj,) if partial else _roots(obj)
    key = id(roots[0]) if len(roots) == 1 else tuple(map(id, roots))
    active = _STATE.__dict__.setdefault("active", set())
    if key in active:  # reached again while hashing its own closure values or arguments
        return hex_digest("recursive", _label(obj)), {}
    active.add(key)
    try:
        if partial:
            fp, own = compute(obj.func, parts)
            return hex_digest("partial", fp, value_fp(obj.args), value_fp(obj.keywords)), own
        for attempt in range(2):
            entry = CODE_CACHE.get(key) if attempt == 0 else None
            if entry is None or not entry.valid(roots):
                entry = _build(roots)
                try:
                    entry.refs = tuple(weakref.ref(r) for r in roots)
                except TypeError:  # a root without weak references: not cached
                    pass
                else:
                    if (
                        key not in CODE_CACHE
                    ):  # drop the entry when a root dies (its id may be reused)
                        for r in roots:
                            weakref.finalize(r, CODE_CACHE.pop, key, None).atexit = False
                    CODE_CACHE[key] = entry
            value = entry.value()
            if value is not None:  # None: a closure cell now holds code
                digest, values = value
                return digest, entry.current_parts(values) if parts and values else entry.parts
        raise FingerprintError(f"the closure of {_label(obj)} changed while it was fingerprinted")
    finally:
        active.discard(key)
