"""Checkpoint files are bound to their producer: another configuration recomputes them."""

from __future__ import annotations

import importlib.util
import os
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin

import checkpoint_magic.pipelines as mario  # noqa: E402
from checkpoint_magic.exceptions import InvalidArgumentError  # noqa: E402
from checkpoint_magic.pipelines import StaleCheckpointWarning  # noqa: E402
from checkpoint_magic.pipelines.files import load_pickle, save_hdf5  # noqa: E402
from checkpoint_magic.pipelines.producer import (  # noqa: E402
    describe_producer,
    producer_digest,
    read_digest,
)


class Scale(TransformerMixin, BaseEstimator):
    """Multiply by ``k``."""

    def __init__(self, k: float = 2) -> None:
        self.k = k

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return [np.asarray(x) * self.k for x in X]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


class Memorizer(TransformerMixin, BaseEstimator):
    """A stateful transformer whose fitted state is private only (like ``_fit_X``)."""

    def fit(self, X, y=None):
        self._fit_X = np.asarray(X, dtype=float)
        return self

    def transform(self, X):
        return [np.asarray(x) + self._fit_X.sum() for x in X]


def samples(n: int = 3) -> list[mario.Sample]:
    return [mario.Sample(np.full(2, float(i)), key=str(i)) for i in range(n)]


def checkpointed(features, k, **kw):
    return mario.CheckpointWrapper(
        mario.SampleWrapper(Scale(k=k)), features_dir=str(features), **kw
    )


def computed(out) -> list[bool]:
    """Which results were computed (``Sample``) rather than loaded (``DelayedSample``)."""
    return [not isinstance(s, mario.DelayedSample) for s in out]


def record(func):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = func()
    return out, [w for w in caught if issubclass(w.category, StaleCheckpointWarning)]


def test_changed_parameter_recomputes_features_with_one_warning(tmp_path):
    features = tmp_path / "f"
    checkpointed(features, 2).transform(samples())
    out, caught = record(lambda: checkpointed(features, 3).transform(samples()))
    assert [list(s.data) for s in out] == [[0.0, 0.0], [3.0, 3.0], [6.0, 6.0]]
    assert sorted(os.listdir(features)) == ["0.h5", "1.h5", "2.h5"]
    assert len(caught) == 1
    assert "3 of 3" in str(caught[0].message)
    assert "estimator__k (2 -> 3)" in str(caught[0].message)
    # the replaced files now belong to k=3: loaded, not computed, no warning
    assert computed(out) == [True, True, True]
    again, caught = record(lambda: checkpointed(features, 3).transform(samples()))
    assert computed(again) == [False, False, False] and caught == []
    assert [list(s.data) for s in again] == [[0.0, 0.0], [3.0, 3.0], [6.0, 6.0]]


def test_same_configuration_loads_without_recomputing(tmp_path):
    features = tmp_path / "f"
    checkpointed(features, 2).transform(samples())
    out = checkpointed(features, 2).transform(samples())
    assert computed(out) == [False, False, False]
    assert [float(s.data[0]) for s in out] == [0.0, 2.0, 4.0]


def test_changed_model_parameters_fit_again(tmp_path):
    from sklearn.decomposition import PCA

    model = str(tmp_path / "model.pkl")
    data = [mario.Sample(np.arange(4.0) * i + i**2, key=str(i)) for i in range(5)]
    mario.CheckpointWrapper(mario.SampleWrapper(PCA(n_components=1)), model_path=model).fit(data)
    wrapper = mario.CheckpointWrapper(mario.SampleWrapper(PCA(n_components=2)), model_path=model)
    _, caught = record(lambda: wrapper.fit(data))
    assert wrapper.estimator_.estimator_.n_components_ == 2
    assert load_pickle(model).estimator_.n_components_ == 2
    assert len(caught) == 1 and "estimator__n_components (1 -> 2)" in str(caught[0].message)
    # the same configuration loads the file: nothing changes, no warning
    again = mario.CheckpointWrapper(mario.SampleWrapper(PCA(n_components=2)), model_path=model)
    _, caught = record(lambda: again.fit(data))
    assert caught == [] and again.estimator_.estimator_.n_components_ == 2


def test_model_is_loaded_when_the_configuration_is_the_same(tmp_path):
    model = str(tmp_path / "model.pkl")
    mario.CheckpointWrapper(mario.SampleWrapper(Memorizer()), model_path=model).fit(samples())
    before = os.stat(model)
    wrapper = mario.CheckpointWrapper(mario.SampleWrapper(Memorizer()), model_path=model)
    wrapper.fit(samples(2))  # loaded: fitted on the 3 samples of the first fit
    assert os.stat(model).st_ino == before.st_ino  # not replaced
    assert wrapper.estimator_.estimator_._fit_X.shape == (3, 2)


def test_private_fitted_state_binds_the_features(tmp_path):
    features = str(tmp_path / "f")
    first = mario.CheckpointWrapper(mario.SampleWrapper(Memorizer()), features_dir=features)
    first.fit(samples(2))  # _fit_X sums to 2
    assert [float(s.data[0]) for s in first.transform(samples())] == [2.0, 3.0, 4.0]
    second = mario.CheckpointWrapper(mario.SampleWrapper(Memorizer()), features_dir=features)
    second.fit(samples(3))  # _fit_X sums to 6: every feature changes
    out, caught = record(lambda: second.transform(samples()))
    assert [float(s.data[0]) for s in out] == [6.0, 7.0, 8.0]
    assert len(caught) == 1 and "fitted state" in str(caught[0].message)


def _module(tmp_path, name, factor):
    path = tmp_path / f"{name}_{factor}.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import numpy as np
            from sklearn.base import BaseEstimator, TransformerMixin

            class Times(TransformerMixin, BaseEstimator):
                def fit(self, X, y=None):
                    return self

                def transform(self, X):
                    return [np.asarray(x) * {factor} for x in X]
            """
        )
    )
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_changed_code_of_a_user_class_recomputes(tmp_path):
    features = str(tmp_path / "f")
    v1 = _module(tmp_path, "cm_times_module", 2)
    mario.CheckpointWrapper(mario.SampleWrapper(v1.Times()), features_dir=features).transform(
        samples()
    )
    v2 = _module(tmp_path, "cm_times_module", 5)
    wrapper = mario.CheckpointWrapper(mario.SampleWrapper(v2.Times()), features_dir=features)
    out, caught = record(lambda: wrapper.transform(samples()))
    assert [float(s.data[0]) for s in out] == [0.0, 5.0, 10.0]
    assert len(caught) == 1 and "code cm_times_module.Times" in str(caught[0].message)


def test_file_without_a_record_is_recomputed(tmp_path):
    features = tmp_path / "f"
    features.mkdir()
    save_hdf5(np.full(2, 99.0), str(features / "1.h5"))  # an old file: no producer record
    out, caught = record(lambda: checkpointed(features, 2).transform(samples()))
    assert float(out[1].data[0]) == 2.0
    assert len(caught) == 1 and "no producer record" in str(caught[0].message)


def test_custom_save_func_keeps_the_record_beside_the_file(tmp_path):
    features = tmp_path / "f"
    kw = {"extension": ".npy", "save_func": lambda x, p: np.save(p, x), "load_func": np.load}
    checkpointed(features, 2, **kw).transform(samples(1))
    out, caught = record(lambda: checkpointed(features, 4, **kw).transform(samples(2)))
    assert [float(s.data[0]) for s in out] == [0.0, 4.0]
    assert len(caught) == 1 and "1 of 2" in str(caught[0].message)
    # a data file whose record is gone is not trusted
    os.remove(features / ".1.npy.producer")
    out = checkpointed(features, 4, **kw).transform(samples(2))
    assert computed(out) == [False, True]


def test_record_is_in_the_hdf5_user_block_and_readable_by_h5py(tmp_path):
    import h5py

    features = tmp_path / "f"
    wrapper = checkpointed(features, 2)
    wrapper.transform(samples(1))
    digest = producer_digest(describe_producer(wrapper.estimator))
    assert read_digest(str(features / "0.h5")) == digest
    with h5py.File(features / "0.h5", "r") as f:
        assert f.userblock_size >= 512
        np.testing.assert_array_equal(f["array"][()], [0.0, 0.0])


def test_digest_is_computed_once_per_transform_call(tmp_path, monkeypatch):
    from checkpoint_magic.pipelines import checkpoint

    calls = []
    original = checkpoint.safe_describe
    monkeypatch.setattr(
        checkpoint, "safe_describe", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    checkpointed(tmp_path / "f", 2).transform(samples(20))
    assert calls == [1]


def test_over_long_key_is_refused_before_any_work(tmp_path):
    features = tmp_path / "f"
    data = samples(2) + [mario.Sample(np.zeros(2), key="x" * 300)]
    with pytest.raises(InvalidArgumentError, match="at most 190 bytes"):
        checkpointed(features, 2).transform(data)
    assert not features.exists()  # nothing computed or written


def test_long_key_split_in_directories_is_fine(tmp_path):
    key = "/".join(["y" * 150] * 2)
    out = checkpointed(tmp_path / "f", 2).transform([mario.Sample(np.ones(2), key=key)])
    assert float(out[0].data[0]) == 2.0


class Unhashable:
    """A parameter value whose state cannot be walked (its __reduce_ex__ is broken)."""

    def __reduce_ex__(self, protocol):
        raise RuntimeError("broken")


def test_a_producer_that_cannot_be_fingerprinted_runs_uncached(tmp_path):
    from checkpoint_magic.exceptions import UncachedWarning

    features = tmp_path / "f"
    wrapper = mario.CheckpointWrapper(
        mario.SampleWrapper(Scale(k=Unhashable())), features_dir=str(features)
    )
    wrapper.estimator.estimator.transform = lambda X: [np.asarray(x) for x in X]
    for _ in range(2):  # never loaded: nothing can tell whether the files are current
        with pytest.warns(UncachedWarning, match="cannot be fingerprinted"):
            out = wrapper.transform(samples(2))
        assert computed(out) == [True, True]
    assert read_digest(str(features / "1.h5")) == ""  # saved without a record
