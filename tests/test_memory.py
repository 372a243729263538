"""``checkpoint_magic.Memory`` as scikit-learn's ``Pipeline(memory=...)``."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from checkpoint_magic import Memory
from checkpoint_magic.store.core import Store

FITS: list[str] = []


class CountingScaler(TransformerMixin, BaseEstimator):
    def __init__(self, factor=1.0):
        self.factor = factor

    def fit(self, X, y=None):
        FITS.append(f"fit factor={self.factor}")
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def transform(self, X):
        return (np.asarray(X) - self.mean_) * self.factor


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    return X, (X[:, 0] > 0).astype(int)


def _pipe(memory, factor=1.0):
    return Pipeline([("scale", CountingScaler(factor)), ("clf", LogisticRegression())], memory=memory)


def test_second_fit_does_not_refit_transformers(store_dir):
    FITS.clear()
    X, y = _data()
    memory = Memory(store_dir)
    first = _pipe(memory).fit(X, y)
    assert FITS == ["fit factor=1.0"]
    second = _pipe(memory).fit(X, y)
    assert FITS == ["fit factor=1.0"]  # loaded from the store
    np.testing.assert_allclose(first.predict_proba(X), second.predict_proba(X))
    np.testing.assert_allclose(second.named_steps["scale"].mean_, X.mean(axis=0))


def test_changed_params_or_data_refit_and_old_versions_stay(store_dir):
    FITS.clear()
    X, y = _data()
    memory = Memory(store_dir)
    _pipe(memory, 1.0).fit(X, y)
    _pipe(memory, 2.0).fit(X, y)
    _pipe(memory, 1.0).fit(X + 1, y)
    _pipe(memory, 1.0).fit(X, y)  # the first version is still there
    assert FITS == ["fit factor=1.0", "fit factor=2.0", "fit factor=1.0"]


def test_entries_are_in_the_shared_store_and_clear_removes_them(store_dir):
    X, y = _data()
    memory = Memory(store_dir)
    _pipe(memory).fit(X, y)
    namespaces = {m["namespace"] for m in Store(store_dir).iter_manifests()}
    assert any(ns.startswith("sklearn-memory:") for ns in namespaces)
    memory.clear()
    assert list(Store(store_dir).iter_entry_keys()) == []


def test_default_location_and_cache_decorator_form(monkeypatch, tmp_path):
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(tmp_path / "env"))
    memory = Memory()
    FITS.clear()

    @memory.cache(ignore=["verbose"])
    def square(x, verbose=False):
        FITS.append(x)  # module level: a closure over a mutated list would change the key
        return x * x

    assert square(3) == square(3, verbose=True) == 9
    assert FITS == [3]
    assert "env" in repr(memory)
