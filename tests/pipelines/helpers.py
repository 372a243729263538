"""Estimators used by the ``checkpoint_magic.pipelines`` tests.

They live in an importable module (not in the test files) so that Dask workers in other
processes can unpickle them. Calls are logged to a file (``log_path``) rather than kept in
memory: wrappers fit *copies* of estimators, and Dask runs them in other processes.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from checkpoint_magic.pipelines import Sample

HERE = os.path.dirname(os.path.abspath(__file__))


def log_call(log_path: str | None, *words: Any) -> None:
    """Append one line to ``log_path`` (one ``write`` in append mode: safe across processes)."""
    if log_path is None:
        return
    line = " ".join(str(w) for w in words) + "\n"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def read_log(log_path: str) -> list[list[str]]:
    """The logged calls, one list of words per call (empty if nothing was logged)."""
    if not os.path.exists(log_path):
        return []
    with open(log_path) as f:
        return [line.split() for line in f if line.strip()]


class AddOffset(TransformerMixin, BaseEstimator):
    """The seed's ``MyTransformer``, silent: adds a per-sample offset; ``fit(X)`` has no y."""

    def __init__(self, log_path: str | None = None) -> None:
        self.log_path = log_path

    def fit(self, X: Any) -> AddOffset:
        log_call(self.log_path, "fit", len(X))
        return self

    def transform(self, X: Any, sample_specific_offsets: Any) -> np.ndarray:
        log_call(self.log_path, "transform", len(X))
        return np.array(X) + np.array(sample_specific_offsets)


class Centerer(TransformerMixin, BaseEstimator):
    """Stateful: ``fit`` learns the mean; ``transform`` subtracts it and scales."""

    def __init__(self, scale: float = 1.0, log_path: str | None = None) -> None:
        self.scale = scale
        self.log_path = log_path

    def fit(self, X: Any) -> Centerer:
        log_call(self.log_path, "fit", len(X))
        self.mean_ = np.mean(np.asarray(X, dtype=float), axis=0)
        return self

    def transform(self, X: Any) -> np.ndarray:
        log_call(self.log_path, "transform", len(X), *(f"{row[0]:g}" for row in X))
        return (np.asarray(X, dtype=float) - self.mean_) * self.scale


class Doubler(TransformerMixin, BaseEstimator):
    """Stateless (``requires_fit`` is False); ``fit`` must never be called."""

    def __init__(self, log_path: str | None = None) -> None:
        self.log_path = log_path

    def fit(self, X: Any, y: Any = None) -> Doubler:
        raise AssertionError("Doubler needs no fit and must not be fitted")

    def transform(self, X: Any) -> np.ndarray:
        log_call(self.log_path, "transform", len(X))
        return np.asarray(X, dtype=float) * 2

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class KeyRecorder(BaseEstimator):
    """A sample-aware stateless transformer that logs the keys it computes.

    ``none_for`` lists keys whose result is ``None``; ``none_data_for`` keys whose result
    is a sample with ``data=None``.
    """

    def __init__(
        self,
        log_path: str | None = None,
        none_for: tuple[str, ...] = (),
        none_data_for: tuple[str, ...] = (),
    ) -> None:
        self.log_path = log_path
        self.none_for = none_for
        self.none_data_for = none_data_for

    def fit(self, X: Any, y: Any = None) -> KeyRecorder:
        return self

    def transform(self, samples: Any) -> list[Any]:
        log_call(self.log_path, "transform", *(s.key for s in samples))
        out = []
        for s in samples:
            if s.key in self.none_for:
                out.append(None)
            elif s.key in self.none_data_for:
                out.append(Sample(None, parent=s))
            else:
                out.append(Sample(np.asarray(s.data, dtype=float) * 2, parent=s))
        return out

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def make_samples(n: int = 3, dim: int = 2) -> list[Sample]:
    """``n`` samples with keys ``"0"``..., data ``full(dim, i)`` and offsets ``[i]``."""
    return [
        Sample(np.full(dim, float(i)), offset=np.array([i]), key=str(i), subject=f"s{i % 2}")
        for i in range(n)
    ]


# ---------------------------------------------------------------- bob.pipelines-style estimators


class PlusOne(TransformerMixin, BaseEstimator):
    """Adds one; declares ``requires_fit: False`` the bob.pipelines way (``_more_tags``)."""

    def fit(self, X: Any, y: Any = None) -> PlusOne:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X) + 1

    def _more_tags(self) -> dict[str, Any]:
        return {"requires_fit": False}


class TaggedAnnotator(PlusOne):
    """Writes ``annotations``; its extra arguments come from ``bob_*`` tags."""

    def transform(self, X: Any, first: Any, second: Any) -> np.ndarray:
        np.testing.assert_array_equal(np.asarray(X), first)
        np.testing.assert_array_equal(np.asarray(X), second)
        return super().transform(X)

    def fit(self, X: Any, y: Any, extra: Any) -> TaggedAnnotator:
        np.testing.assert_array_equal(np.asarray(X), y)
        np.testing.assert_array_equal(np.asarray(X) + 1, extra)
        self.fitted_ = True
        return self

    def _more_tags(self) -> dict[str, Any]:
        return {
            "requires_fit": True,  # PlusOne says False; these are fitted to test fit tags
            "bob_output": "annotations",
            "bob_transform_extra_input": (("first", "data"), ("second", "data")),
            "bob_fit_extra_input": (("y", "data"), ("extra", "annotations")),
        }


class TaggedReader(PlusOne):
    """Reads ``annotations`` (``bob_input``) and writes ``annotations_2``."""

    def transform(self, X: Any, first: Any, second: Any) -> np.ndarray:
        np.testing.assert_array_equal(np.asarray(X), first)
        np.testing.assert_array_equal(np.asarray(X) - 1, second)
        return super().transform(X)

    def fit(self, X: Any, y: Any, extra: Any) -> TaggedReader:
        np.testing.assert_array_equal(np.asarray(X), y)
        np.testing.assert_array_equal(np.asarray(X) - 1, extra)
        self.fitted_ = True
        return self

    def _more_tags(self) -> dict[str, Any]:
        return {
            "requires_fit": True,
            "bob_input": "annotations",
            "bob_output": "annotations_2",
            "bob_transform_extra_input": (("first", "annotations"), ("second", "data")),
            "bob_fit_extra_input": (("y", "annotations"), ("extra", "data")),
        }


class HalfFailing(PlusOne):
    """Adds one, but returns ``None`` for the samples at even positions of each call."""

    def transform(self, X: Any) -> list[Any]:
        for x in X:
            assert x is not None, "a failed sample reached the estimator"
        return [None if i % 2 == 0 else np.asarray(x) + 1 for i, x in enumerate(X)]


class AllFailing(PlusOne):
    """Returns ``None`` for every sample."""

    def transform(self, X: Any) -> list[Any]:
        return [None] * len(X)


class DaskArraySum(TransformerMixin, BaseEstimator):
    """Fits on dask arrays only (``bob_fit_supports_dask_array``): learns the column sums."""

    def fit(self, X: Any, y: Any = None) -> DaskArraySum:
        import dask.array as da

        assert isinstance(X, da.Array), f"fit got a {type(X).__name__}, not a dask array"
        assert y is None or isinstance(y, da.Array)
        self.model_ = np.asarray(X.sum(axis=0).compute())
        self.n_targets_ = None if y is None else int(y.shape[0])
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X) + self.model_

    def _more_tags(self) -> dict[str, Any]:
        return {"bob_fit_supports_dask_array": True, "requires_fit": True}
