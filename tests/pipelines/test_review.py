"""Regression tests of the pipeline wrappers: one file per key, safe extensions, no stale fits."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer

import checkpoint_magic.pipelines as mario  # noqa: E402
from checkpoint_magic.pipelines import files  # noqa: E402
from tests.pipelines.helpers import Centerer, Doubler, KeyRecorder, make_samples  # noqa: E402


def times_ten(x):
    return np.asarray(x, dtype=float) * 10


def listing(directory):
    out = []
    for root, _, names in os.walk(directory):
        out.extend(os.path.relpath(os.path.join(root, n), directory) for n in names)
    return sorted(out)


# ------------------------------------------------------------------------------ keys and paths


@pytest.mark.parametrize("key", ["./a", "x/./y", "x//y", "x/.", "./x/y", "x\\.\\y"])
def test_keys_that_are_not_normalised_are_rejected_before_anything_is_written(tmp_path, key):
    features = tmp_path / "features"
    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(features))
    samples = [*make_samples(2), mario.Sample(np.zeros(2), key=key)]
    with pytest.raises(ValueError, match="key"):
        wrapper.transform(samples)
    assert not features.exists()


def test_a_key_and_its_dotted_alias_never_share_a_file(tmp_path):
    """The reviewer's repro: ``a`` and ``./a`` mapped to one file; the 2nd run gave [20] twice."""
    wrapper = mario.CheckpointWrapper(
        mario.SampleWrapper(FunctionTransformer(times_ten)), str(tmp_path)
    )
    with pytest.raises(ValueError, match="normalised"):
        wrapper.transform([mario.Sample([1], key="a"), mario.Sample([2], key="./a")])
    assert listing(tmp_path) == []
    first = wrapper.transform([mario.Sample([1], key="a"), mario.Sample([2], key="b")])
    second = wrapper.transform([mario.Sample([1], key="a"), mario.Sample([2], key="b")])
    assert [list(s.data) for s in first] == [[10], [20]]
    assert [list(s.data) for s in second] == [[10], [20]]


def test_two_samples_of_one_call_with_one_file_are_an_error(tmp_path):
    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(tmp_path))
    samples = [mario.Sample(np.ones(2), key="a"), mario.Sample(np.zeros(2), key="a")]
    with pytest.raises(ValueError, match="same checkpoint file"):
        wrapper.transform(samples)
    bucketed = mario.CheckpointWrapper(KeyRecorder(), str(tmp_path), hash_fn=lambda k: "b")
    with pytest.raises(ValueError, match="same checkpoint file"):
        bucketed.transform(samples)
    sets = [mario.SampleSet(samples, key="set")]
    with pytest.raises(ValueError, match="same checkpoint file"):
        wrapper.transform(sets)
    assert listing(tmp_path) == []


def test_normalised_keys_are_unchanged():
    assert files.checked_relative_path("x/y") == "x/y"
    assert files.checked_relative_path("a.b/c..d") == "a.b/c..d"


@pytest.mark.parametrize("extension", ["/../..", "/x", "\\x", "..", ".a/b", "h5", ".a\x00", 5])
def test_unsafe_extensions_are_rejected_before_anything_is_written(tmp_path, extension):
    features = tmp_path / "deep" / "features"
    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(features), extension=extension)
    with pytest.raises(ValueError, match="extension"):
        wrapper.transform(make_samples(2))
    assert listing(tmp_path) == []


@pytest.mark.parametrize("extension", ["", ".h5", ".tar.gz", "."])
def test_plain_extensions_are_accepted(tmp_path, extension):
    assert files.check_extension(extension) == extension
    mario.CheckpointWrapper(KeyRecorder(), str(tmp_path), extension=extension).transform(
        make_samples(1)
    )
    assert listing(tmp_path) == ["0" + extension]


# ------------------------------------------------------------------------------ stale fits


@pytest.mark.parametrize("kind", ["sample", "checkpoint"])
def test_a_refit_with_an_estimator_that_needs_no_fit_drops_the_old_fit(tmp_path, kind):
    samples = make_samples(3)
    if kind == "sample":
        wrapper = mario.SampleWrapper(Centerer())
    else:
        wrapper = mario.CheckpointWrapper(mario.SampleWrapper(Centerer()))
    wrapper.fit(samples)
    assert "estimator_" in vars(wrapper)
    stateless = mario.SampleWrapper(Doubler()) if kind == "checkpoint" else Doubler()
    wrapper.set_params(estimator=stateless)
    out = wrapper.fit(samples).transform(samples)
    assert "estimator_" not in vars(wrapper)
    np.testing.assert_array_equal(out[2].data, [4.0, 4.0])


def test_a_dask_refit_with_an_estimator_that_needs_no_fit_drops_the_old_fit():
    dask = pytest.importorskip("dask")
    samples = make_samples(3)
    wrapper = mario.DaskWrapper(mario.SampleWrapper(Centerer()))
    with dask.config.set(scheduler="sync"):
        wrapper.fit(samples)
        assert "estimator_" in vars(wrapper)
        wrapper.set_params(estimator=mario.SampleWrapper(Doubler()))
        out = wrapper.fit(samples).transform(samples).compute()
        assert "estimator_" not in vars(wrapper)
        np.testing.assert_array_equal(out[2].data, [4.0, 4.0])
        wrapper.set_params(estimator=mario.SampleWrapper(Centerer()))
        wrapper.fit(samples)
        wrapper.set_params(estimator=mario.SampleWrapper(Doubler()))
        out = wrapper.fit_transform(samples).compute()
        assert "estimator_" not in vars(wrapper)
        np.testing.assert_array_equal(out[2].data, [4.0, 4.0])
