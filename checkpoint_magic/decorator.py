"""The ``@checkpoint`` decorator: cache a function's return value on disk, for every code version.

A call is identified by the function's code fingerprint (its normalized source and
bytecode, plus every user-defined helper it calls, transitively) and the fingerprints of
its bound arguments (defaults included; positional and keyword spellings of one call
are one call). The result of every code version is kept, so reverting an edit is a hit.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic import checkpoint
>>> store = tempfile.mkdtemp()
>>> @checkpoint(store=store)
... def add(a, b=2):
...     print("Heavy computation.")
...     return a + b
>>> add(1, 2)
Heavy computation.
3
>>> add(1)                       # same bound arguments: a hit
3
>>> add(a=1, b=2, __recompute__=True)
Heavy computation.
3
>>> add.is_cached(1, 5)
False
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from .checkpointer import Checkpointer
from .exceptions import InvalidArgumentError, UncachedWarning, warn_user
from .store.core import Store

__all__ = ["CheckpointedFunction", "checkpoint"]

logger = logging.getLogger(__name__)

R = TypeVar("R")
_RECOMPUTE = "__recompute__"
_SIMPLE_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


class CheckpointedFunction(Generic[R]):
    """A function whose results are checkpointed; returned by :func:`checkpoint`.

    Call it like the function. Extra: ``f(..., __recompute__=True)`` runs the function and
    replaces the stored entry; :meth:`is_cached` tells whether a call would be a hit;
    :meth:`clear` deletes the function's entries (every code version). ``__wrapped__`` is
    the original function.
    """

    def __init__(
        self,
        func: Callable[..., R],
        *,
        ignore: Iterable[str] = (),
        store: Store | str | os.PathLike[str] | None = None,
        name: str | None = None,
        mmap_mode: str | None = None,
    ):
        if not callable(func):
            raise InvalidArgumentError(
                f"@checkpoint decorates a function, not {type(func).__name__}"
            )
        functools.update_wrapper(self, func)
        self.__wrapped__ = func
        self._signature = inspect.signature(func)
        params = self._signature.parameters
        ignored = (ignore,) if isinstance(ignore, str) else tuple(ignore)
        unknown = [n for n in ignored if n not in params]
        if unknown:
            raise InvalidArgumentError(
                f"@checkpoint(ignore=...) names {unknown} that are not parameters of "
                f"{func.__qualname__}{self._signature}; valid names: {list(params)}"
            )
        if mmap_mode not in (None, "r", "c"):
            raise InvalidArgumentError(
                f"mmap_mode must be None, 'r' or 'c' (copy-on-write), not {mmap_mode!r}: stored "
                "blobs are shared between entries and must not be written through a memory map"
            )
        self.ignore = frozenset(ignored)
        self.mmap_mode = mmap_mode
        namespace = name or f"{getattr(func, '__module__', None) or '__main__'}.{func.__qualname__}"
        self.checkpointer = Checkpointer("function", namespace, store)
        # Fast binding for the common signature (no *args/**kwargs, no positional-only).
        simple = all(p.kind in _SIMPLE_KINDS for p in params.values())
        self._names = (
            [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
            if simple
            else None
        )
        self._all_names = frozenset(params)
        self._defaults = [
            (n, p.default) for n, p in params.items() if p.default is not inspect.Parameter.empty
        ]

    def __repr__(self) -> str:
        return f"<checkpointed function {self.checkpointer.namespace}>"

    def __reduce_ex__(self, protocol: Any) -> Any:
        # Sent to another process (Dask workers, multiprocessing): by reference when the
        # decorated function is importable, so the code is read from its file there and
        # fingerprints the same as here; otherwise by value.
        module, qualname = self.__module__, getattr(self, "__qualname__", "")
        target: Any = sys.modules.get(module)
        for part in qualname.split("."):
            target = getattr(target, part, None)
        if target is self and module != "__main__":
            return qualname
        return super().__reduce_ex__(protocol)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return _BoundCheckpointed(self, instance)

    # ------------------------------------------------------------------ binding
    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments by parameter name, defaults applied (TypeError if they do not bind)."""
        names = self._names
        if names is not None and len(args) <= len(names):
            values = dict(
                zip(names, args, strict=False)
            )  # fewer args than names: the rest by keyword
            for k, v in kwargs.items():
                if k in values or k not in self._all_names:
                    return self._bind_slow(args, kwargs)
                values[k] = v
            if len(values) < len(self._all_names):
                for n, default in self._defaults:
                    values.setdefault(n, default)
                if len(values) < len(self._all_names):
                    return self._bind_slow(args, kwargs)
            return values
        return self._bind_slow(args, kwargs)

    def _bind_slow(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        bound = self._signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _fingerprints(self, bound: dict[str, Any]) -> tuple[str, dict[str, str]]:
        from .fingerprint.code import code_fingerprint

        inputs = {k: v for k, v in bound.items() if k not in self.ignore} if self.ignore else bound
        return code_fingerprint(self.__wrapped__), self.checkpointer.fingerprint_inputs(inputs)

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> R:
        recompute = bool(kwargs.pop(_RECOMPUTE, False))
        func = self.__wrapped__
        try:
            bound = self._bind(args, kwargs)
        except TypeError:
            return func(*args, **kwargs)  # a wrong call: the function raises its own error
        try:
            code_fp, input_fps = self._fingerprints(bound)
        except Warning:
            raise  # warnings turned into errors by the user's filters stay errors
        except Exception as exc:  # fingerprinting must never stop the user's computation
            warn_user(
                f"{self.checkpointer.namespace}: inputs could not be fingerprinted "
                f"({type(exc).__name__}: {exc}); running uncached",
                UncachedWarning,
            )
            return func(*args, **kwargs)
        if not recompute:
            hit = self.checkpointer.load(
                code_fp, input_fps, mmap_mode=self.mmap_mode, code_parts=self._code_parts
            )
            if hit is not None:
                return hit.outputs["return"]
        start = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except BaseException:
            self.checkpointer.abandon(code_fp, input_fps)  # let a waiting caller run it
            raise
        duration = time.perf_counter() - start
        self._commit(code_fp, input_fps, result, duration)
        return result

    def _code_parts(self) -> dict[str, str]:
        from .fingerprint.code import code_parts

        return code_parts(self.__wrapped__)

    def _commit(
        self, code_fp: str, input_fps: dict[str, str], result: Any, duration: float
    ) -> None:
        try:
            parts = self._code_parts()
        except Exception as exc:  # only used to explain misses later; never worth failing for
            logger.debug("code_parts failed for %s: %s", self.checkpointer.namespace, exc)
            parts = {}
        self.checkpointer.save(
            code_fp, input_fps, {"return": result}, duration=duration, code_parts=parts
        )

    # ------------------------------------------------------------------ helpers
    def is_cached(self, *args: Any, **kwargs: Any) -> bool:
        """Whether calling with these arguments would be a hit (the stored blobs are not read)."""
        code_fp, input_fps = self._fingerprints(self._bind(args, kwargs))
        return self.checkpointer.contains(code_fp, input_fps)

    def clear(self, *, force: bool = False) -> int:
        """Delete this function's entries, for every code version; return how many were removed.

        Pinned entries (``checkpoint-magic pin``) are kept unless ``force=True``.
        """
        return self.checkpointer.clear(force=force)


class _BoundCheckpointed:
    """A checkpointed method bound to an instance (the instance's state is an input)."""

    def __init__(self, owner: CheckpointedFunction[Any], instance: Any):
        self._owner = owner
        self.__self__ = instance
        functools.update_wrapper(self, owner.__wrapped__)
        self.__wrapped__ = owner.__wrapped__.__get__(instance)  # the plain bound method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._owner(self.__self__, *args, **kwargs)

    def is_cached(self, *args: Any, **kwargs: Any) -> bool:
        """Whether calling with these arguments would be a hit."""
        return self._owner.is_cached(self.__self__, *args, **kwargs)

    def clear(self, *, force: bool = False) -> int:
        """Delete the method's entries (for every instance and code version)."""
        return self._owner.clear(force=force)


@overload
def checkpoint(func: Callable[..., R], /) -> CheckpointedFunction[R]: ...


@overload
def checkpoint(
    *,
    ignore: Iterable[str] = (),
    store: Store | str | os.PathLike[str] | None = None,
    name: str | None = None,
    mmap_mode: str | None = None,
) -> Callable[[Callable[..., R]], CheckpointedFunction[R]]: ...


def checkpoint(
    func: Callable[..., R] | None = None,
    /,
    *,
    ignore: Iterable[str] = (),
    store: Store | str | os.PathLike[str] | None = None,
    name: str | None = None,
    mmap_mode: str | None = None,
) -> Any:
    """Cache a function's return value on disk, keyed by its code and its arguments.

    Use bare (``@checkpoint``) or with options (``@checkpoint(ignore=["verbose"])``).

    Parameters
    ----------
    func : callable
        The function (or method) to checkpoint.
    ignore : list of str
        Parameters left out of the key (e.g. ``verbose``, ``n_jobs``). A name that is not a
        parameter raises :class:`~checkpoint_magic.exceptions.InvalidArgumentError`.
    store : Store or path, optional
        The store; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    name : str, optional
        The namespace entries are grouped under; default ``module.qualname``.
    mmap_mode : {None, 'r', 'c'}
        Return stored numpy arrays memory-mapped (read-only, or copy-on-write) instead of
        read into memory.

    Returns
    -------
    CheckpointedFunction
        Callable like ``func``; ``f(..., __recompute__=True)`` forces a rerun.

    Examples
    --------
    >>> import tempfile
    >>> @checkpoint(ignore=["useless"], store=tempfile.mkdtemp())
    ... def bar(a, useless):
    ...     print("running")
    ...     return a + 1
    >>> bar(1, True)
    running
    2
    >>> bar(1, False)
    2
    """
    if func is not None:
        return CheckpointedFunction(
            func, ignore=ignore, store=store, name=name, mmap_mode=mmap_mode
        )

    def decorate(f: Callable[..., R]) -> CheckpointedFunction[R]:
        return CheckpointedFunction(f, ignore=ignore, store=store, name=name, mmap_mode=mmap_mode)

    return decorate
