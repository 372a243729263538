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


def _filled(store_dir, n=4):
    """A memory with ``n`` entries of ~8 KiB each, used in order (entry 0 least recently)."""
    import time

    memory = Memory(store_dir)
    make = memory.cache(lambda i: np.full(1024, i, dtype=np.float64))
    for i in range(n):
        make(i)
        time.sleep(0.01)  # distinct last-used times
    return memory, make


def _keys(store_dir):
    return sorted(Store(store_dir).iter_entry_keys())


def test_reduce_size_by_items_bytes_and_age_keeps_the_most_recently_used(store_dir):
    import datetime

    import pytest

    from checkpoint_magic.exceptions import InvalidArgumentError

    memory, make = _filled(store_dir)
    assert len(_keys(store_dir)) == 4
    assert memory.reduce_size(items_limit=3) == 1
    assert make.is_cached(3) and not make.is_cached(0)
    assert memory.reduce_size(bytes_limit=2 * 8192 + 1000) == 1  # two ~8 KiB entries fit
    assert make.is_cached(3) and make.is_cached(2) and not make.is_cached(1)
    assert memory.reduce_size(age_limit=datetime.timedelta(days=1)) == 0
    assert memory.reduce_size(age_limit=datetime.timedelta(0)) == 2
    assert _keys(store_dir) == []
    with pytest.raises(InvalidArgumentError, match="timedelta"):
        memory.reduce_size(age_limit=30)


def test_reduce_size_leaves_other_entries_of_the_shared_store(store_dir):
    from checkpoint_magic import checkpoint

    @checkpoint(store=store_dir)
    def other(x):
        return x

    other(1)
    memory, make = _filled(store_dir, n=2)
    assert memory.reduce_size(items_limit=0) == 2
    assert other.is_cached(1)


def test_verbose_prints_calls_like_joblib(store_dir, capsys):
    memory = Memory(store_dir, verbose=10)
    double = memory.cache(_double)
    assert double(2) == 4 and double(2) == 4
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"[Memory] Calling {__name__}._double..." and out[2].endswith("_double - " + out[2].split(" - ")[1])
    assert out[3] == f"[Memory] Loading {__name__}._double from the cache"
    quiet = Memory(store_dir).cache(_double)
    assert quiet(2) == 4 and capsys.readouterr().out == ""


def _double(x):
    return 2 * x
