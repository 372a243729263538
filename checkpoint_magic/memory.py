"""``Memory``: the joblib.Memory interface scikit-learn asks for, backed by the shared store.

``Pipeline(steps, memory=checkpoint_magic.Memory())`` caches each fitted transformer
through :func:`checkpoint_magic.checkpoint`, so its caching keeps every code
version and shows up in ``checkpoint-magic ls`` next to everything else.

Examples
--------
>>> import tempfile
>>> import numpy as np
>>> from sklearn.pipeline import Pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from sklearn.linear_model import LinearRegression
>>> from checkpoint_magic import Memory
>>> memory = Memory(tempfile.mkdtemp())
>>> X, y = np.arange(20.0).reshape(10, 2), np.arange(10.0)
>>> pipe = Pipeline([("scale", StandardScaler()), ("model", LinearRegression())], memory=memory)
>>> pipe.fit(X, y).predict(X[:2]).round(6)
array([0., 1.])
>>> len(memory.cached_functions)
1
"""

from __future__ import annotations

import datetime
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from .decorator import CheckpointedFunction
from .exceptions import InvalidArgumentError
from .store.core import Store, get_store
from .ui.units import format_duration

__all__ = ["Memory"]

#: The namespace prefix of every function cached through a :class:`Memory`.
PREFIX = "sklearn-memory:"


class _VerboseCheckpointed(CheckpointedFunction[Any]):
    """A checkpointed function that reports its calls like joblib's ``Memory(verbose=...)``."""

    verbose = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        name = self.checkpointer.namespace.removeprefix(PREFIX)
        try:
            hit = not kwargs.get("__recompute__") and self.is_cached(
                *args, **{k: v for k, v in kwargs.items() if k != "__recompute__"}
            )
        except Exception:  # the call itself will say what is wrong (or run uncached)
            hit = False
        if hit:
            if self.verbose >= 10:
                _say(f"[Memory] Loading {name} from the cache")
            return super().__call__(*args, **kwargs)
        _say(f"{'_' * 80}\n[Memory] Calling {name}...")
        start = time.perf_counter()
        result = super().__call__(*args, **kwargs)
        elapsed = format_duration(time.perf_counter() - start)
        _say(f"{'_' * max(0, 72 - len(name))}{name} - {elapsed}")
        return result


def _say(text: str) -> None:
    """joblib's verbose output goes to stdout; so does this (only when ``verbose`` asks for it)."""
    sys.stdout.write(text + "\n")


class Memory:
    """A joblib.Memory-compatible object whose ``cache`` checkpoints into the shared store.

    Parameters
    ----------
    location : str, os.PathLike or Store, optional
        The store; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    verbose : int, default=0
        As in joblib: ``0`` is silent, ``>= 1`` prints a line before and after each call
        that computes, ``>= 10`` also one for each result loaded from the store.

    Attributes
    ----------
    cached_functions : list of CheckpointedFunction
        The functions cached through this object, in order.

    Notes
    -----
    scikit-learn clones each transformer before calling the cached function, so the key
    is the transformer's parameters (and its class's code, for your own transformers),
    the data and the fit parameters.
    """

    def __init__(self, location: str | os.PathLike[str] | Store | None = None, verbose: int = 0):
        self.location = location
        self.verbose = verbose
        self.cached_functions: list[CheckpointedFunction[Any]] = []

    def __repr__(self) -> str:
        return f"Memory(location={get_store(self.location).location!r})"

    def cache(
        self,
        func: Callable[..., Any] | None = None,
        ignore: Iterable[str] | None = None,
        verbose: int | None = None,
        mmap_mode: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Return ``func`` checkpointed in this memory's store (joblib.Memory.cache's signature).

        Parameters
        ----------
        func : callable, optional
            The function to cache; without it, a decorator is returned.
        ignore : iterable of str, optional
            Argument names that do not count in the key.
        verbose : int, optional
            Overrides the memory's ``verbose`` for this function.
        mmap_mode : str, optional
            Passed on: numpy results are memory-mapped in this mode (``"r"``, ...).
        **kwargs
            Other joblib options, accepted and ignored.

        Returns
        -------
        CheckpointedFunction or callable
            The checkpointed function (also appended to ``cached_functions``), or a decorator
            when ``func`` is ``None``.

        Examples
        --------
        >>> import tempfile
        >>> memory = Memory(tempfile.mkdtemp())
        >>> double = memory.cache(lambda x: 2 * x)
        >>> double(21), double.is_cached(21)
        (42, True)
        """
        if func is None:
            return lambda f: self.cache(f, ignore=ignore, verbose=verbose, mmap_mode=mmap_mode)
        name = f"{PREFIX}{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
        level = self.verbose if verbose is None else verbose
        factory = _VerboseCheckpointed if level else CheckpointedFunction
        cached: CheckpointedFunction[Any] = factory(
            func, ignore=ignore or (), store=self.location, name=name, mmap_mode=mmap_mode or None
        )
        if level:
            cached.verbose = int(level)  # type: ignore[attr-defined]
        self.cached_functions.append(cached)
        return cached

    def clear(self, warn: bool = True) -> None:
        """Delete the entries of every function cached through this object (joblib's ``clear``).

        Parameters
        ----------
        warn : bool, default=True
            Accepted for joblib compatibility; ignored.
        """
        for cached in self.cached_functions:
            cached.clear()

    def reduce_size(
        self,
        bytes_limit: int | str | None = None,
        items_limit: int | None = None,
        age_limit: datetime.timedelta | None = None,
    ) -> int:
        """Evict this memory's entries to fit the limits, least recently used first.

        The counterpart of joblib's ``Memory.reduce_size``.

        Only entries cached through a :class:`Memory` (``sklearn-memory:`` names) in this
        store count and are evicted; other entries of the shared store are left alone, and
        so are pinned entries. Their blobs are freed by the garbage collection that follows
        (after its grace period, as ``checkpoint-magic gc``).

        Parameters
        ----------
        bytes_limit : int or str, optional
            Keep these entries within this size (bytes, or ``"1GB"``).
        items_limit : int, optional
            Keep at most this many entries.
        age_limit : datetime.timedelta, optional
            Evict entries not used for longer than this.

        Returns
        -------
        int
            How many entries were evicted.

        Raises
        ------
        InvalidArgumentError
            If ``age_limit`` is not a ``timedelta``, ``items_limit`` is negative or
            ``bytes_limit`` is not a size.

        Examples
        --------
        >>> import tempfile
        >>> memory = Memory(tempfile.mkdtemp())
        >>> square = memory.cache(lambda x: x * x)
        >>> [square(i) for i in range(3)]
        [0, 1, 4]
        >>> memory.reduce_size(items_limit=1)
        2
        """
        from .store.budget import gc, parse_size
        from .store.catalog import scan_entries

        if age_limit is not None and not isinstance(age_limit, datetime.timedelta):
            raise InvalidArgumentError(
                f"age_limit must be a datetime.timedelta (as in joblib), not {age_limit!r}"
            )
        if items_limit is not None and items_limit < 0:
            raise InvalidArgumentError(f"items_limit must be >= 0, not {items_limit!r}")
        limit = None if bytes_limit is None else parse_size(bytes_limit)
        store = get_store(self.location)
        entries = sorted(
            (
                e
                for e in scan_entries(store).entries
                if e.namespace.startswith(PREFIX) and not e.pinned
            ),
            key=lambda e: e.last_used,
            reverse=True,  # most recently used first: they are kept
        )
        now = time.time()
        kept_size = 0
        evicted = 0
        for rank, entry in enumerate(entries):
            too_old = age_limit is not None and now - entry.last_used > age_limit.total_seconds()
            too_many = items_limit is not None and rank >= items_limit
            too_big = limit is not None and kept_size + entry.size > limit
            if too_old or too_many or too_big:
                evicted += bool(store.delete_entry(entry.namespace, entry.key))
            else:
                kept_size += entry.size
        if evicted:
            gc(store)
        return evicted
