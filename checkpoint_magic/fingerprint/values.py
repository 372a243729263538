"""Value fingerprints (xxh3-128): the public API, the walk, and the registry of its handlers.

A fingerprint identifies a value by its content, the same in every process and for every
``PYTHONHASHSEED``. Python's ``hash()``, ``id()``, set iteration order and ``str()``/``repr()``
never enter a digest. Every value is written as a one-byte type tag, a length where the tag
does not fix the size, then its bytes, so ``1``, ``1.0``, ``True``, ``"1"``, ``b"1"``, ``[1]``
and ``(1,)`` all differ. :data:`HASH_SCHEME_VERSION` seeds every hasher and heads every digest.

This module owns the walk (:class:`Fingerprinter`: memo by id, cycle detection, depth limit,
problem reports) and the dispatch table it walks by (:data:`EXACT_HANDLERS`,
:func:`register`, :func:`handler_for`); it encodes no type itself. The handlers are
registered explicitly by :mod:`checkpoint_magic.fingerprint`'s ``__init__``:

- builtins and containers by :mod:`checkpoint_magic.fingerprint.stdtypes` (dicts in
  insertion order, sets order-insensitive);
- numpy arrays and scalars by :mod:`checkpoint_magic.fingerprint.arrays`;
- pandas objects by :mod:`checkpoint_magic.fingerprint.pandas`;
- code (functions, methods, classes), modules, enums, scikit-learn estimators and any other
  object (walked through ``__reduce_ex__(4)``) by :mod:`checkpoint_magic.fingerprint.objects`.

A container met again while it is being walked (a cycle) is written as a back-reference
holding its distance on the walk stack: no ``RecursionError``. A value that cannot be pickled
(lock, open file, generator, connection) adds one
:class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning` naming its attribute path
(``f.conn``); only its type enters the digest. Any other error while walking a value raises
:class:`~checkpoint_magic.exceptions.FingerprintError`: front ends run uncached.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import ComplexParamsIdentifyWarning, FingerprintError, warn_user
from .encoding import HASH_SCHEME_VERSION, digest_bytes, pack_tag, qualname, write_str, xxh
from .problems import HOP_ATTRS, HOP_ITEM, HOP_SILENT, path_to, problem_message

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "EXACT_HANDLERS",
    "HASH_SCHEME_VERSION",
    "MAX_DEPTH",
    "STRING_ARRAY_DIGEST",
    "Fingerprinter",
    "Handler",
    "QuietFingerprinter",
    "Resolver",
    "digest_bytes",
    "fingerprint",
    "handler_for",
    "register",
]
__all__ += ["HOP_ATTRS", "HOP_ITEM", "HOP_SILENT", "pack_tag", "qualname", "xxh"]  # for extensions

logger = logging.getLogger(__name__)

#: ``handler(fp, obj, h)``: writes ``obj`` into the hasher ``h``, walking its parts with ``fp``.
Handler = Callable[["Fingerprinter", Any, Any], None]
#: ``resolver(cls)``: the handler of the values of type ``cls``, or None for another resolver.
Resolver = Callable[[type], "Handler | None"]

# Tags that start a value (each used once): N T F None/bools, i I int, f float, c complex,
# s str, b bytes, a bytearray, v memoryview, . ! Ellipsis/NotImplemented, u UUID, y stdlib value,
# g numpy scalar, l t list/tuple, d dict, q defaultdict, O OrderedDict, Q mappingproxy, e set,
# z frozenset, S builtin subclass, A ndarray, P pandas, K estimator, G other object,
# B k class/code, M method, w W builtin function/method, m module, n enum, R back-reference,
# X opaque value.
#: Containers nested deeper than this are reported, not recursed into.
MAX_DEPTH = 200
_NO_REF = 1 << 62


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

    Handlers (see :func:`register`) walk a value's parts with :meth:`walk`, bracket a
    container with :meth:`enter` and :meth:`leave` (or :meth:`memoised` for a costly value),
    name parts for warnings with :meth:`hop`, and :meth:`report` what they cannot walk.

    Parameters
    ----------
    advice : str, optional
        What a ComplexParamsIdentifyWarning tells the user to do, in the words of the front
        end's arguments (a template with ``{root}``); None gives a generic advice.

    Attributes
    ----------
    seed : int
        Seeds every hasher of the walk (:data:`HASH_SCHEME_VERSION`).
    memo : dict
        ``id -> (value, sub-digest)`` of the values :meth:`memoised` hashed.
    stack : list
        The containers being walked, outermost first.
    active : dict
        ``id -> depth in stack`` of those containers (how a cycle is found). Handlers on
        the hot path may push and pop ``stack`` and ``active`` themselves, as :meth:`enter`
        and :meth:`leave` do.
    advice : str or None
        The ``advice`` given.

    Examples
    --------
    >>> import numpy as np
    >>> fp = Fingerprinter()
    >>> a = np.arange(10)
    >>> fp.fingerprint(a, name="x") == fp.fingerprint(a, name="y") == fingerprint(a)
    True
    """

    __slots__ = (
        "memo", "active", "stack", "_problems", "_min_ref", "seed", "_root", "_hops", "advice"
    )  # fmt: skip

    def __init__(self, advice: str | None = None) -> None:
        #: What a ComplexParamsIdentifyWarning tells the user to do, in the words of the
        #: front end's arguments (a template with ``{root}``); ``None``: a generic advice.
        self.advice = advice
        self.memo: dict[int, tuple[Any, bytes]] = {}
        self.active: dict[int, int] = {}  # id -> stack depth of the containers being walked
        self.stack: list[Any] = []  # the containers being walked, outermost first
        self._problems: list[tuple[str, str, str]] = []  # (path, type, reason) to warn about
        self._hops: dict[int, tuple[Any, int, Any]] = {}  # how children are named in paths
        self._min_ref = _NO_REF  # shallowest depth a back-reference pointed to
        self.seed = HASH_SCHEME_VERSION
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
            memo_key = (cls, obj, self.seed)  # the type too: 1, 1.0 and True are equal keys
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
        h = xxh(seed=self.seed)
        h.update(pack_tag(b"V", self.seed))
        try:
            self.walk(obj, h)
        except RecursionError:
            raise FingerprintError(
                f"{self._root} is nested too deeply to be fingerprinted; pass a flatter "
                "value or leave it out of the checkpoint's inputs"
            ) from None
        except (FingerprintError, Warning):
            raise
        except Exception as exc:  # a bug in a value's methods: never a type-only digest
            where = self.path_to(self.stack[-1]) if self.stack else self._root
            raise FingerprintError(
                f"cannot fingerprint {where}: walking it raised {type(exc).__name__}: {exc}; "
                f"leave {self._root} out of the inputs or pass a value that can be pickled"
            ) from exc
        finally:
            if self.stack or self._hops:  # only after an error or a generic object
                self.active.clear()
                self.stack.clear()
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
        return path_to(self._root, self.stack, self._hops, target)

    def walk(self, obj: Any, h: Any) -> None:
        """Write ``obj`` into ``h`` with the handler of its type: how handlers walk parts.

        Parameters
        ----------
        obj : object
            A value, or a part of the value being walked.
        h : xxhash.xxh3_128
            The hasher to update.
        """
        f = EXACT_HANDLERS.get(type(obj))
        if f is None:
            f = handler_for(type(obj))
        f(self, obj, h)

    def enter(self, obj: Any, h: Any) -> bool:
        """Push a container on the walk stack before walking its parts.

        Parameters
        ----------
        obj : object
            The container.
        h : xxhash.xxh3_128
            Where a back-reference (on a cycle) or a report (too deep) is written instead.

        Returns
        -------
        bool
            True if the caller walks its parts and then calls :meth:`leave`; False when a
            marker was written instead: ``obj`` is already on the stack, or the stack is
            :data:`MAX_DEPTH` deep.
        """
        depth = self.active.get(id(obj))
        if depth is not None:
            h.update(pack_tag(b"R", len(self.stack) - depth))
            self._min_ref = min(self._min_ref, depth)
            return False
        depth = len(self.stack)
        if depth >= MAX_DEPTH:
            self.report(obj, h, f"it is nested more than {MAX_DEPTH} levels deep")
            return False
        self.active[id(obj)] = depth
        self.stack.append(obj)
        return True

    def leave(self, obj: Any) -> None:
        """Pop the container :meth:`enter` pushed, once its parts are walked.

        Parameters
        ----------
        obj : object
            The container (the innermost one on the stack).
        """
        self.stack.pop()
        del self.active[id(obj)]

    def memoised(self, obj: Any, h: Any, tag: bytes, fill: Handler) -> None:
        """Write ``tag`` and the sub-digest of ``obj`` computed by ``fill``, memoised by id.

        A value met again in this instance is not walked again. Values on a reference cycle,
        and values with a part that could not be fingerprinted, are not memoised.

        Parameters
        ----------
        obj : object
            A large or costly value (an array, a frame, an estimator, an object).
        h : xxhash.xxh3_128
            The hasher to update.
        tag : bytes
            The one-byte tag of its kind, written before the sub-digest.
        fill : Handler
            ``fill(fp, obj, sh)`` writes ``obj`` into a fresh hasher ``sh``.
        """
        hit = self.memo.get(id(obj))
        if hit is not None:
            h.update(tag + hit[1])
            return
        if not self.enter(obj, h):
            return
        depth = len(self.stack) - 1
        saved_ref, self._min_ref = self._min_ref, _NO_REF
        nproblems = len(self._problems)
        sh = xxh(seed=self.seed)
        fill(self, obj, sh)  # an error aborts the whole fingerprint (see fingerprint())
        self.leave(obj)
        digest = sh.digest()
        # The walk of a value on a reference cycle (a back-reference to obj or above it)
        # depends on where the cycle was entered: such values are not memoised.
        if self._min_ref > depth and len(self._problems) == nproblems:
            self.memo[id(obj)] = (obj, digest)
        self._min_ref = min(saved_ref, self._min_ref)
        h.update(tag + digest)

    def hop(self, child: Any, kind: int, key: Any = None) -> None:
        """Say how ``child`` is named in attribute paths (read only to word a warning).

        Parameters
        ----------
        child : object
            A part of the value being walked; None is ignored.
        kind : int
            :data:`HOP_ATTRS` (its items are attributes: ``f.conn``), :data:`HOP_ITEM`
            (it is the item ``key`` of its parent: ``df['c']``) or :data:`HOP_SILENT`
            (it adds nothing to the path).
        key : object, optional
            The key of a :data:`HOP_ITEM`.
        """
        if child is not None:
            self._hops[id(child)] = (child, kind, key)

    def report(self, obj: Any, h: Any, reason: str, label: Any = None) -> None:
        """Record a value that cannot be fingerprinted; write only its type.

        The reports of one :meth:`fingerprint` call end in one
        ComplexParamsIdentifyWarning naming each value's attribute path.

        Parameters
        ----------
        obj : object
            The value (on or just below the walk stack, to name its path).
        h : xxhash.xxh3_128
            The hasher: it gets a marker and the qualified name of ``obj``'s type.
        reason : str
            Why, in words ("it cannot be pickled (TypeError: ...)").
        label : object, optional
            What to name as its type in the warning instead of ``type(obj)``.
        """
        self._problems.append(
            (
                self.path_to(obj),
                qualname(type(obj) if label is None else label),
                reason,
            )
        )
        h.update(b"X")
        write_str(h, qualname(type(obj)))


class QuietFingerprinter(Fingerprinter):
    """A Fingerprinter that logs values it cannot walk instead of warning (class data in code)."""

    __slots__ = ()

    def _warn(self) -> None:
        logger.debug("%s", problem_message(self._root, self._problems))


# -- dispatch ---------------------------------------------------------------------------------
#: Handler of each exact type; filled by :func:`register` (builtins, numpy, code, classes...).
EXACT_HANDLERS: dict[type, Handler] = {}
_RESOLVED: dict[type, Handler] = {}
_RESOLVERS: list[Resolver] = []  # asked in order about a type missing from EXACT_HANDLERS
_FALLBACK: list[Handler] = []  # fills the sub-digest of any other object (at most one)
#: The fast path for one-dimensional object arrays of ``str`` (at most one), see :func:`register`.
STRING_ARRAY_DIGEST: list[Callable[[Fingerprinter, np.ndarray], bytes | None]] = []


def register(
    exact: Mapping[type, Handler] | None = None,
    resolver: Resolver | None = None,
    fallback: Handler | None = None,
    string_array_digest: Callable[[Fingerprinter, np.ndarray], bytes | None] | None = None,
) -> None:
    """Add an extension of the walk: handlers by exact type, a resolver, the generic fallback.

    :mod:`checkpoint_magic.fingerprint`'s ``__init__`` fills the walk, in this order: builtin
    types (:mod:`~checkpoint_magic.fingerprint.stdtypes`), numpy
    (:mod:`~checkpoint_magic.fingerprint.arrays`), pandas, then code, classes, modules,
    enums, estimators and the fallback for any other object
    (:mod:`~checkpoint_magic.fingerprint.objects`), and last the resolver of builtin
    subclasses. Resolvers are asked in registration order, so one registered later is asked
    only about types none of these claims; registering the same resolver again is a no-op.
    A handler writes the value's bytes into ``h`` and walks its parts with ``fp.walk``.

    Parameters
    ----------
    exact : mapping of type to Handler, optional
        ``type -> handler(fp, obj, h)`` for values of exactly that type (replacing any
        handler that type had).
    resolver : Resolver, optional
        ``cls -> handler or None``, asked about the types missing from :data:`EXACT_HANDLERS`
        (once per type: its answer is cached).
    fallback : Handler, optional
        Fills the sub-digest of an object no handler claims (memoised, tag ``G``); replaces
        the previous fallback.
    string_array_digest : callable, optional
        ``(fp, flat object array) -> 16-byte digest or None``: a fast path for arrays of str.

    Examples
    --------
    >>> class Point:
    ...     def __init__(self, x):
    ...         self.x = x
    >>> register({Point: lambda fp, p, h: fp.walk(("Point", p.x), h)})
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
        STRING_ARRAY_DIGEST[:] = [string_array_digest]
    _RESOLVED.clear()
    _scalar_fps.clear()


def handler_for(cls: type) -> Handler:
    """Return the handler of a type missing from :data:`EXACT_HANDLERS` (resolved once per type).

    Parameters
    ----------
    cls : type
        The type of the value to hash.

    Returns
    -------
    Handler
        The first registered resolver's answer; else the fallback memoised under tag ``G``;
        else a handler that reports the value as one that cannot be fingerprinted.

    Examples
    --------
    >>> class Tags(list):
    ...     pass
    >>> handler_for(Tags) is handler_for(Tags)
    True
    """
    f = _RESOLVED.get(cls)
    if f is None:
        f = _resolve(cls)
        if len(_RESOLVED) >= 1024:
            _RESOLVED.clear()
        _RESOLVED[cls] = f
    return f


def _resolve(cls: type) -> Handler:
    for resolver in _RESOLVERS:  # numpy; pandas; estimators, enums, classes, code; builtins
        f = resolver(cls)
        if f is not None:
            return f
    if _FALLBACK:
        fill = _FALLBACK[0]
        return lambda fp, obj, h: fp.memoised(obj, h, b"G", fill)
    return lambda fp, obj, h: fp.report(obj, h, "no fingerprint handler is registered for it")
