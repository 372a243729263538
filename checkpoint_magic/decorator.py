"""The ``@checkpoint`` decorator: cache a function's return value on disk, for every code version.

A call is identified by the function's code fingerprint (its normalized source and
bytecode, plus every user-defined helper it calls, transitively) and the fingerprints of
its bound arguments (defaults included; positional and keyword spellings of one call
are one call), of the data globals it reads (``global:NAME``) and of the files its path
arguments and string constants name (``file:PATH``, by content); see
:mod:`checkpoint_magic.core.inputs`. Arguments the function mutates are stored with the result
and their state is copied back into the caller's objects on a hit. The result of every
code version is kept, so reverting an edit is a hit. ``async def`` functions are awaited
and their result cached (the wrapper is ``async`` too); generator functions are refused.

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
import types
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar, overload

from .core import inputs as extra_inputs
from .core.checkpointer import Checkpointer, fingerprint_or_warn
from .exceptions import (
    InvalidArgumentError,
    MutationNotReplayedWarning,
    warn_user,
)
from .fingerprint.code import PATHS_KEY, code_inputs
from .fingerprint.files import (
    code_path_constants,
    nested_path_values,
    path_candidate,
    path_values,
)
from .fingerprint.values import QuietFingerprinter
from .store.core import Store
from .ui.notes import note_hit

__all__ = ["CheckpointedFunction", "checkpoint"]

logger = logging.getLogger(__name__)

R = TypeVar("R")
_RECOMPUTE = "__recompute__"
_SIMPLE_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_MUTATED = "mutated:"  # output name prefix of an argument's state after the call
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, frozenset, range, tuple)


def _qualname(func: Any) -> str:
    """A callable's qualified name; a ``functools.partial`` is named after the function it wraps."""
    while isinstance(func, functools.partial):
        func = func.func
    return getattr(func, "__qualname__", None) or type(func).__qualname__


class _Call:
    """One call's key material and what is needed after a miss to spot what the run changed."""

    __slots__ = ("code_fp", "input_fps", "globals", "file_sigs", "file_labels")

    def __init__(self, code_fp: str, input_fps: dict[str, str]):
        self.code_fp = code_fp
        self.input_fps = input_fps
        self.globals: dict[str, Any] = {}
        self.file_sigs: dict[str, Any] = {}
        self.file_labels: dict[str, str] = {}  # absolute path -> input name


class CheckpointedFunction(Generic[R]):
    """A function whose results are checkpointed; returned by :func:`checkpoint`.

    Call it like the function. Extra: ``f(..., __recompute__=True)`` runs the function and
    replaces the stored entry; :meth:`is_cached` tells whether a call would be a hit;
    :meth:`clear` deletes the function's entries (every code version). ``__wrapped__`` is
    the original function.

    Parameters
    ----------
    func : callable
        The function, method or ``functools.partial`` to checkpoint.
    ignore : Iterable of str, default ()
        Parameters, ``"global:NAME"`` or ``"file:PATH"`` left out of the key (see
        :func:`checkpoint`).
    store : Store, str or os.PathLike, optional
        The store; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    name : str, optional
        The namespace entries are grouped under; default ``module.qualname``.
    mmap_mode : {None, 'r', 'c'}
        Return stored numpy arrays memory-mapped instead of read into memory.

    Raises
    ------
    InvalidArgumentError
        When ``func`` is not callable, is a generator function, or ``ignore`` names something
        that is not a parameter.
    """

    #: Parameters a call gives all by position, to bind it by one zip (-1: never). A class
    #: default: an instance pickled by an earlier version, without it, binds the long way.
    _arity = -1

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
        qualname = _qualname(func)
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise InvalidArgumentError(
                f"@checkpoint cannot cache the generator function {qualname}: a generator is "
                "consumed lazily by its caller. Return a list (or other container) instead, or "
                "checkpoint a function that collects what it yields"
            )
        functools.update_wrapper(self, func)
        self.__wrapped__ = func
        self._signature = inspect.signature(func)
        params = self._signature.parameters
        ignored = (ignore,) if isinstance(ignore, str) else tuple(ignore)
        unknown = [n for n in ignored if n not in params and not n.startswith(("global:", "file:"))]
        if unknown:
            raise InvalidArgumentError(
                f"@checkpoint(ignore=...) names {unknown} that are not parameters of "
                f"{qualname}{self._signature}; valid names: {list(params)}, or "
                "'global:NAME' for a global the function reads, 'file:PATH' for a file"
            )
        if mmap_mode not in (None, "r", "c"):
            raise InvalidArgumentError(
                f"mmap_mode must be None, 'r' or 'c' (copy-on-write), not {mmap_mode!r}: stored "
                "blobs are shared between entries and must not be written through a memory map"
            )
        self.ignore = frozenset(ignored)
        self._ignored_globals = frozenset(n[7:] for n in ignored if n.startswith("global:"))
        self.mmap_mode = mmap_mode
        module = getattr(func, "__module__", None) or getattr(
            getattr(func, "func", None), "__module__", None
        )
        namespace = name or f"{module or '__main__'}.{qualname}"
        self.checkpointer = Checkpointer("function", namespace, store)
        code = getattr(inspect.unwrap(_unpartial(func)), "__code__", None)
        self._path_constants = code_path_constants(code) if isinstance(code, types.CodeType) else ()
        self._warned_mutations: set[str] = set()
        # Fast binding for the common signature (no *args/**kwargs, no positional-only).
        simple = all(p.kind in _SIMPLE_KINDS for p in params.values())
        self._names = (
            [n for n, p in params.items() if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
            if simple
            else None
        )
        self._all_names = frozenset(params)
        # Calls giving every parameter by position bind with one zip (see _bind).
        self._arity = (
            len(params) if self._names is not None and len(self._names) == len(params) else -1
        )
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
        """The call's arguments by parameter name, with defaults; TypeError if they do not bind."""
        names = self._names
        if len(args) == self._arity and not kwargs:  # every parameter given by position
            return dict(zip(names, args, strict=True))  # type: ignore[arg-type]
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
        call = self._prepare(bound)
        return call.code_fp, call.input_fps

    def _prepare(self, bound: dict[str, Any]) -> _Call:
        """Code and input fingerprints: arguments, data globals read, files named (by content)."""
        inputs = {k: v for k, v in bound.items() if k not in self.ignore} if self.ignore else bound
        code_fp, data = code_inputs(self.__wrapped__)
        reached: list[Any] = []
        call = _Call(code_fp, self.checkpointer.fingerprint_inputs(inputs, reached))
        if reached and (held := extra_inputs.reached_globals(reached)):
            paths = (*data.get(PATHS_KEY, ()), *held.pop(PATHS_KEY, ()))
            data = {**held, **data}  # the globals read by code passed in (f(helper, x))
            if paths:
                data[PATHS_KEY] = paths
        candidates = path_values(inputs.values())
        candidates.update(nested_path_values(inputs.values()))  # f(["a.csv"]), f(Config(path))
        if self._path_constants:
            candidates.update((c, c) for c in self._path_constants)
        if data:  # files named by the code's helpers and globals (DATA = "data.csv")
            if PATHS_KEY in data:
                data = dict(data)
                candidates.update((c, c) for c in data.pop(PATHS_KEY) if c not in candidates)
            candidates.update(path_values(data.values()))
        if data or candidates:
            memory = extra_inputs.InputMemory.of(
                self.checkpointer.store, self.checkpointer.namespace
            )
            if data:
                call.globals = data
                call.input_fps.update(
                    extra_inputs.global_inputs(data, memory, skip=self._ignored_globals)
                )
            if candidates:
                candidates = {k: v for k, v in candidates.items() if "file:" + k not in self.ignore}
                fps, call.file_sigs = extra_inputs.file_inputs(candidates, memory)
                call.input_fps.update(fps)
                for label, value in candidates.items():
                    path = path_candidate(value)
                    if path is not None:
                        call.file_labels[path] = "file:" + label
        return call

    # ------------------------------------------------------------------ calling
    def __call__(self, *args: Any, **kwargs: Any) -> R:
        recompute = bool(kwargs.pop(_RECOMPUTE, False))
        func = self.__wrapped__
        prepared = self._lookup(args, kwargs, recompute)
        if prepared is None:
            return func(*args, **kwargs)  # a wrong call, or inputs that cannot be fingerprinted
        bound, call, hit = prepared
        if hit is not None:
            return self._replay(bound, hit)
        start = time.perf_counter()
        try:
            result = func(*args, **kwargs)
        except BaseException:
            self.checkpointer.abandon(call.code_fp, call.input_fps)  # a waiting caller runs it
            raise
        try:
            self._after_miss(bound, call, result, time.perf_counter() - start)
        finally:  # the entry may be filed under other inputs (state globals): free the lease
            self.checkpointer.abandon(call.code_fp, call.input_fps)
        return result

    def _lookup(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], recompute: bool
    ) -> tuple[dict[str, Any], _Call, Any] | None:
        """(bound arguments, call, hit or None); None: run the function uncached."""
        try:
            bound = self._bind(args, kwargs)
        except TypeError:
            return None  # a wrong call: the function raises its own error
        ok, call = fingerprint_or_warn(self.checkpointer.namespace, self._prepare, bound)
        if not ok or call is None:
            return None
        hit = None
        if not recompute:
            hit = self.checkpointer.load(
                call.code_fp, call.input_fps, mmap_mode=self.mmap_mode, code_parts=self._code_parts
            )
        return bound, call, hit

    def _replay(self, bound: dict[str, Any], hit: Any) -> Any:
        """The stored result; the stored state of mutated arguments is copied into the caller's."""
        note_hit(self.checkpointer.namespace, duration=hit.duration, created=hit.created)
        outputs = hit.outputs
        if len(outputs) > 1:
            for name, state in outputs.items():
                arg = name[len(_MUTATED) :]
                if (
                    name.startswith(_MUTATED)
                    and arg in bound
                    and not extra_inputs.restore_into(bound[arg], state)
                ):
                    logger.warning(
                        "%s: could not restore the state of argument %s",
                        self.checkpointer.namespace,
                        arg,
                    )
        return outputs["return"]

    def _after_miss(self, bound: dict[str, Any], call: _Call, result: Any, duration: float) -> None:
        """Find what the run changed (arguments, globals, files) and commit the result."""
        if self.checkpointer.lookup_failed(call.code_fp, call.input_fps):
            return  # the store could not be read (one warning already): run uncached
        outputs: dict[str, Any] = {"return": result}
        input_fps = dict(call.input_fps)
        after = dict(input_fps)  # the arguments as the call left them
        namespace = self.checkpointer.namespace
        for name, value in bound.items():
            if name in self.ignore or isinstance(value, _IMMUTABLE) or name not in input_fps:
                continue
            try:
                now = QuietFingerprinter().fingerprint(value, name=name)
            except Exception as exc:  # it was fingerprinted before the run; never fail now
                logger.debug("%s: argument %s not re-fingerprinted: %s", namespace, name, exc)
                continue
            if now == input_fps[name]:
                continue
            after[name] = now
            if extra_inputs.restorable(value):
                outputs[_MUTATED + name] = value
            elif name not in self._warned_mutations:
                self._warned_mutations.add(name)
                warn_user(
                    f"{namespace} mutates its argument {name!r} ({type(value).__name__}), whose "
                    "state cannot be copied back on a hit: hits will not repeat the mutation. "
                    "Return the changed object instead, or pass a copy",
                    MutationNotReplayedWarning,
                )
        if call.globals or call.file_sigs:
            memory = extra_inputs.InputMemory.of(self.checkpointer.store, namespace)
            state = [
                label
                for label, fp in extra_inputs.global_inputs(call.globals, memory).items()
                if input_fps.get(label, fp) != fp
            ]
            written = extra_inputs.written_files(call.file_sigs)
            if state or written:
                for label in state:
                    logger.info(
                        "%s changes the global %s while it runs: it is state, not an input",
                        namespace,
                        label[len("global:") :],
                    )
                    input_fps.pop(label, None)
                for path in written:
                    input_fps.pop(call.file_labels.get(path, ""), None)
                memory.learn(state=[s[len("global:") :] for s in state], outputs=written)
        self._commit(call.code_fp, input_fps, outputs, duration)
        if any(after[name] != fp for name, fp in call.input_fps.items() if name in bound):
            # Also filed under the mutated arguments: calling again with them (the fitted
            # model, the filled list) hits and copies back the same state.
            self._commit(call.code_fp, {k: after[k] for k in input_fps}, outputs, duration)

    def _code_parts(self) -> dict[str, str]:
        from .fingerprint.code import code_parts

        return code_parts(self.__wrapped__)

    def _commit(
        self, code_fp: str, input_fps: dict[str, str], outputs: dict[str, Any], duration: float
    ) -> None:
        try:
            parts = self._code_parts()
        except Exception as exc:  # only used to explain misses later; never worth failing for
            logger.debug("code_parts failed for %s: %s", self.checkpointer.namespace, exc)
            parts = {}
        self.checkpointer.save(code_fp, input_fps, outputs, duration=duration, code_parts=parts)

    # ------------------------------------------------------------------ helpers
    def is_cached(self, *args: Any, **kwargs: Any) -> bool:
        """Whether calling with these arguments would be a hit (the stored blobs are not read).

        Parameters
        ----------
        *args, **kwargs
            The arguments of a call, as the function takes them.

        Returns
        -------
        bool
            True when an entry exists for the current code and these arguments.

        Examples
        --------
        >>> import tempfile
        >>> @checkpoint(store=tempfile.mkdtemp())
        ... def double(x):
        ...     return 2 * x
        >>> double.is_cached(3), double(3), double.is_cached(3)
        (False, 6, True)
        """
        code_fp, input_fps = self._fingerprints(self._bind(args, kwargs))
        return self.checkpointer.contains(code_fp, input_fps)

    def clear(self, *, force: bool = False) -> int:
        """Delete this function's entries, for every code version; return how many were removed.

        Pinned entries (``checkpoint-magic pin``) are kept unless ``force=True``.

        Parameters
        ----------
        force : bool, default False
            Delete pinned entries too.

        Returns
        -------
        int
            How many entries were deleted.

        Examples
        --------
        >>> import tempfile
        >>> @checkpoint(store=tempfile.mkdtemp())
        ... def double(x):
        ...     return 2 * x
        >>> double(1), double(2), double.clear()
        (2, 4, 2)
        """
        return self.checkpointer.clear(force=force)


class AsyncCheckpointedFunction(CheckpointedFunction[R]):
    """A checkpointed ``async def`` function: calling it returns a coroutine; the awaited
    result is what is stored and returned on a hit."""

    async def __call__(self, *args: Any, **kwargs: Any) -> R:  # type: ignore[override]
        recompute = bool(kwargs.pop(_RECOMPUTE, False))
        func: Any = self.__wrapped__
        prepared = self._lookup(args, kwargs, recompute)
        if prepared is None:
            return await func(*args, **kwargs)
        bound, call, hit = prepared
        if hit is not None:
            return self._replay(bound, hit)
        start = time.perf_counter()
        try:
            result = await func(*args, **kwargs)
        except BaseException:
            self.checkpointer.abandon(call.code_fp, call.input_fps)  # a waiting caller runs it
            raise
        try:
            self._after_miss(bound, call, result, time.perf_counter() - start)
        finally:  # the entry may be filed under other inputs (state globals): free the lease
            self.checkpointer.abandon(call.code_fp, call.input_fps)
        return result


def _unpartial(func: Any) -> Any:
    while isinstance(func, functools.partial):
        func = func.func
    return func


def _make(func: Callable[..., R], **options: Any) -> CheckpointedFunction[R]:
    if inspect.iscoroutinefunction(_unpartial(func)):
        return AsyncCheckpointedFunction(func, **options)
    return CheckpointedFunction(func, **options)


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
        Parameters left out of the key (e.g. ``verbose``, ``n_jobs``), ``"global:NAME"`` for a
        global the function reads, ``"file:PATH"`` for a file it names. Any other name that
        is not a parameter raises :class:`~checkpoint_magic.exceptions.InvalidArgumentError`.
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
        return _make(func, ignore=ignore, store=store, name=name, mmap_mode=mmap_mode)

    def decorate(f: Callable[..., R]) -> CheckpointedFunction[R]:
        return _make(f, ignore=ignore, store=store, name=name, mmap_mode=mmap_mode)

    return decorate
