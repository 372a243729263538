"""``Memory``: the joblib.Memory interface scikit-learn asks for, backed by the shared store.

``Pipeline(steps, memory=checkpoint_magic.Memory())`` makes scikit-learn cache each
fitted transformer through :func:`checkpoint_magic.checkpoint`, so its caching keeps every
code version, hashes arrays and frames at memory speed, and shows up in
``checkpoint-magic ls`` next to everything else.

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

import os
from collections.abc import Callable, Iterable
from typing import Any

from .decorator import CheckpointedFunction
from .store.core import Store, get_store

__all__ = ["Memory"]


class Memory:
    """A joblib.Memory-compatible object whose ``cache`` checkpoints into the shared store.

    Parameters
    ----------
    location : str, os.PathLike or Store, optional
        The store; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    verbose : int
        Accepted for joblib compatibility; logging is configured with :mod:`logging`.

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

        ``mmap_mode`` is passed on (numpy results memory-mapped); other joblib options are
        accepted and ignored.
        """
        if func is None:
            return lambda f: self.cache(f, ignore=ignore, verbose=verbose, mmap_mode=mmap_mode)
        name = f"sklearn-memory:{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"
        cached: CheckpointedFunction[Any] = CheckpointedFunction(
            func, ignore=ignore or (), store=self.location, name=name, mmap_mode=mmap_mode or None
        )
        self.cached_functions.append(cached)
        return cached

    def clear(self, warn: bool = True) -> None:
        """Delete the entries of every function cached through this object (joblib's ``clear``)."""
        for cached in self.cached_functions:
            cached.clear()

    def reduce_size(self, *args: Any, **kwargs: Any) -> None:
        """Accepted for joblib compatibility; use ``checkpoint-magic gc`` to enforce budgets."""
