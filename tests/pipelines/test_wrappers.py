"""Tests of SampleWrapper, CheckpointWrapper, wrap and estimator_requires_fit."""

from __future__ import annotations

import os
import pickle
from unittest import mock

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.utils import get_tags
from sklearn.utils.validation import check_is_fitted

import checkpoint_magic.pipelines as mario  # noqa: E402
from checkpoint_magic.exceptions import (  # noqa: E402
    CheckpointError,
    InvalidArgumentError,
    StoreFormatError,
    StoreWriteWarning,
)
from checkpoint_magic.pipelines import StaleCheckpointWarning  # noqa: E402
from checkpoint_magic.pipelines.files import load_hdf5, load_pickle, save_hdf5  # noqa: E402
from tests.pipelines.helpers import (  # noqa: E402
    AddOffset,
    Centerer,
    Doubler,
    KeyRecorder,
    make_samples,
    read_log,
)

OFFSETS = [("sample_specific_offsets", "offset")]


@pytest.fixture
def log(tmp_path):
    return str(tmp_path / "calls.log")


def listing(directory):
    """Every file under ``directory``, relative, sorted (temporary files included)."""
    out = []
    for root, _, files in os.walk(directory):
        out.extend(os.path.relpath(os.path.join(root, f), directory) for f in files)
    return sorted(out)


# ============================================================================== SampleWrapper


def test_sample_wrapper_transforms_in_one_call_and_keeps_metadata(log):
    samples = make_samples(3)
    wrapper = mario.SampleWrapper(AddOffset(log_path=log), OFFSETS)
    out = wrapper.transform(samples)
    assert read_log(log) == [["transform", "3"]]
    assert [s.key for s in out] == ["0", "1", "2"]
    assert [s.subject for s in out] == ["s0", "s1", "s0"]
    np.testing.assert_array_equal(out[2].data, [4.0, 4.0])  # data 2 + offset 2
    assert all(type(s) is mario.Sample for s in out)
    np.testing.assert_array_equal(samples[2].data, [2.0, 2.0])  # inputs untouched


def test_sample_wrapper_fit_passes_only_fit_extra_arguments(log):
    # AddOffset.fit(self, X) takes no y: the wrapper must call fit(X) alone
    wrapper = mario.SampleWrapper(AddOffset(log_path=log), OFFSETS)
    assert wrapper.fit(make_samples(3)) is wrapper
    assert read_log(log) == [["fit", "3"]]
    assert isinstance(wrapper.estimator_, AddOffset)
    assert wrapper.estimator_ is not wrapper.estimator  # a fitted copy; the parameter is intact

    samples = [mario.Sample([float(i), 1.0 - i], target=i % 2) for i in range(6)]
    clf = mario.SampleWrapper(LogisticRegression(), fit_extra_arguments=[("y", "target")])
    clf.fit(samples)
    assert list(clf.estimator_.classes_) == [0, 1]
    predictions = clf.predict(samples)
    assert [p.target for p in predictions] == [s.target for s in samples]


def test_sample_wrapper_fit_with_y_is_a_clear_error():
    wrapper = mario.SampleWrapper(AddOffset())
    with pytest.raises(ValueError, match="fit_extra_arguments") as info:
        wrapper.fit(make_samples(2), y=[0, 1])
    assert isinstance(info.value, TypeError) and isinstance(info.value, CheckpointError)


def test_sample_wrapper_does_not_fit_estimators_that_need_no_fit():
    wrapper = mario.SampleWrapper(Doubler())  # Doubler.fit raises
    assert wrapper.fit(make_samples(2)) is wrapper
    assert not hasattr(wrapper, "estimator_")
    out = wrapper.fit_transform(make_samples(2))
    np.testing.assert_array_equal(out[1].data, [2.0, 2.0])


def test_sample_wrapper_uses_a_prefitted_estimator_without_fit():
    X = np.arange(12.0).reshape(6, 2)
    scaler = StandardScaler().fit(X)
    wrapper = mario.SampleWrapper(scaler)
    check_is_fitted(wrapper)
    out = wrapper.transform([mario.Sample(x) for x in X])
    np.testing.assert_allclose(np.stack([s.data for s in out]), scaler.transform(X))


def test_sample_wrapper_over_sample_sets_calls_once_per_set(log):
    sets = [
        mario.SampleSet(make_samples(2), key="set-a", subject="a"),
        mario.SampleSet(make_samples(3), key="set-b"),
    ]
    wrapper = mario.SampleWrapper(AddOffset(log_path=log), OFFSETS)
    out = wrapper.transform(sets)
    assert read_log(log) == [["transform", "2"], ["transform", "3"]]
    assert [type(s) for s in out] == [mario.SampleSet, mario.SampleSet]
    assert out[0].key == "set-a" and out[0].subject == "a" and len(out[1]) == 3
    np.testing.assert_array_equal(out[1][2].data, [4.0, 4.0])


def test_sample_wrapper_fit_over_sample_sets_gets_nested_lists():
    seen = {}

    class Recorder(Centerer):
        def fit(self, X, y=None):
            seen["X"], seen["y"] = X, y
            return self

    sets = [mario.SampleSet(make_samples(2)), mario.SampleSet(make_samples(1))]
    mario.SampleWrapper(Recorder(), fit_extra_arguments=[("y", "key")]).fit(sets)
    assert [len(x) for x in seen["X"]] == [2, 1]
    assert seen["y"] == [["0", "1"], ["0"]]


def test_sample_wrapper_output_and_input_attributes():
    samples = [mario.Sample(np.ones(2), raw=np.full(2, 3.0), key="0")]
    wrapper = mario.SampleWrapper(Doubler(), input_attribute="raw", output_attribute="features")
    (out,) = wrapper.transform(samples)
    np.testing.assert_array_equal(out.data, np.ones(2))  # data kept
    np.testing.assert_array_equal(out.features, [6.0, 6.0])
    assert out.key == "0"
    assert out is samples[0]  # set on the input sample, as bob.pipelines does


def test_sample_wrapper_keeps_delayed_metadata_delayed():
    calls = []

    def annotations():
        calls.append(1)
        return "eyes"

    delayed = mario.DelayedSample(
        lambda: np.ones(2), key="0", delayed_attributes={"annotations": annotations}
    )
    (out,) = mario.SampleWrapper(Doubler()).transform([delayed])
    assert calls == []
    assert out.annotations == "eyes" and out.key == "0"
    np.testing.assert_array_equal(out.data, [2.0, 2.0])


def test_sample_wrapper_errors_are_clear():
    wrapper = mario.SampleWrapper(AddOffset(), OFFSETS)
    with pytest.raises(InvalidArgumentError, match="expects Sample objects"):
        wrapper.transform([np.zeros(2)])
    with pytest.raises(InvalidArgumentError, match="no attribute 'offset'"):
        wrapper.transform([mario.Sample(np.zeros(2), key="a")])
    with pytest.raises(InvalidArgumentError, match="pairs"):
        mario.SampleWrapper(AddOffset(), "offset").transform(make_samples(1))
    bad = mario.SampleWrapper(FunctionTransformer(lambda X: X[:1]))
    with pytest.raises(InvalidArgumentError, match="1 results for 2 samples"):
        bad.transform(make_samples(2))
    assert wrapper.transform([]) == []


def test_sample_wrapper_exposes_only_the_methods_of_the_estimator():
    assert not hasattr(mario.SampleWrapper(Doubler()), "predict")
    assert not hasattr(mario.SampleWrapper(LogisticRegression()), "transform")
    assert hasattr(mario.SampleWrapper(LogisticRegression()), "predict_proba")


def test_sample_wrapper_follows_sklearn_conventions():
    wrapper = mario.SampleWrapper(PCA(n_components=1), OFFSETS, output_attribute="pca")
    params = wrapper.get_params()
    assert params["transform_extra_arguments"] is OFFSETS
    assert params["estimator__n_components"] == 1
    wrapper.set_params(estimator__n_components=2)
    assert wrapper.estimator.n_components == 2
    cloned = clone(wrapper)
    assert cloned.get_params()["estimator__n_components"] == 2
    assert cloned.output_attribute == "pca"
    # tags follow the wrapped estimator
    assert get_tags(wrapper).requires_fit is True
    assert get_tags(mario.SampleWrapper(FunctionTransformer())).requires_fit is False
    with pytest.raises(NotFittedError):
        check_is_fitted(wrapper)
    check_is_fitted(mario.SampleWrapper(FunctionTransformer()))


def test_sample_wrappers_in_a_sklearn_pipeline():
    X = np.random.default_rng(0).normal(size=(20, 3))
    samples = [mario.Sample(x, key=str(i)) for i, x in enumerate(X)]
    pipeline = make_pipeline(mario.SampleWrapper(StandardScaler()), mario.SampleWrapper(PCA(2)))
    out = pipeline.fit(samples).transform(samples)
    expected = make_pipeline(StandardScaler(), PCA(2)).fit_transform(X)
    np.testing.assert_allclose(np.stack([s.data for s in out]), expected)
    assert [s.key for s in out] == [str(i) for i in range(20)]


# ============================================================================== CheckpointWrapper


def checkpointed(log, features_dir, **kwargs):
    return mario.CheckpointWrapper(
        mario.SampleWrapper(AddOffset(log_path=log), OFFSETS), features_dir=features_dir, **kwargs
    )


def test_first_run_writes_exactly_one_file_per_key(tmp_path, log):
    features = tmp_path / "features"
    out = checkpointed(log, str(features)).transform(make_samples(3))
    assert listing(features) == ["0.h5", "1.h5", "2.h5"]
    assert read_log(log) == [["transform", "3"]]
    for i, s in enumerate(out):
        np.testing.assert_array_equal(load_hdf5(str(features / f"{i}.h5")), s.data)


def test_second_run_calls_the_estimator_zero_times(tmp_path, log):
    samples = make_samples(3)
    first = checkpointed(log, str(tmp_path)).transform(samples)
    second = checkpointed(log, str(tmp_path)).transform(samples)  # a new wrapper, same dir
    assert read_log(log) == [["transform", "3"]]
    assert all(isinstance(s, mario.DelayedSample) for s in second)
    assert second == first
    assert [s.subject for s in second] == ["s0", "s1", "s0"]


def test_deleting_one_file_recomputes_only_that_key(tmp_path):
    log = str(tmp_path / "keys.log")
    features = tmp_path / "f"
    wrapper = mario.CheckpointWrapper(KeyRecorder(log_path=log), features_dir=str(features))
    samples = make_samples(4)
    first = wrapper.transform(samples)
    os.remove(features / "1.h5")
    second = wrapper.transform(samples)
    assert read_log(log) == [["transform", "0", "1", "2", "3"], ["transform", "1"]]
    assert [s.key for s in second] == ["0", "1", "2", "3"]  # order preserved
    assert type(second[1]) is mario.Sample and type(second[0]) is mario.DelayedSample
    assert second == first
    assert listing(features) == ["0.h5", "1.h5", "2.h5", "3.h5"]


def test_force_recomputes_everything(tmp_path):
    log = str(tmp_path / "keys.log")
    samples = make_samples(2)
    mario.CheckpointWrapper(KeyRecorder(log_path=log), str(tmp_path / "f")).transform(samples)
    forced = mario.CheckpointWrapper(KeyRecorder(log_path=log), str(tmp_path / "f"), force=True)
    forced.transform(samples)
    assert read_log(log) == [["transform", "0", "1"], ["transform", "0", "1"]]


@pytest.mark.parametrize(
    "key", ["../escape", "a/../../escape", "..", "/abs/path", "\\abs", "a\\..\\..\\b", "", "dir/"]
)
def test_unsafe_keys_are_rejected_before_anything_is_written(tmp_path, key):
    log = str(tmp_path / "keys.log")
    features = tmp_path / "deep" / "features"
    samples = [*make_samples(2), mario.Sample(np.zeros(2), key=key)]
    wrapper = mario.CheckpointWrapper(KeyRecorder(log_path=log), str(features))
    with pytest.raises(ValueError, match="key"):
        wrapper.transform(samples)
    assert read_log(log) == []
    assert not features.exists()
    assert listing(tmp_path) == []


def test_unsafe_hash_fn_output_is_rejected(tmp_path):
    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(tmp_path), hash_fn=lambda key: "../x")
    with pytest.raises(ValueError, match=r"hash_fn\(key\)"):
        wrapper.transform(make_samples(1))
    assert listing(tmp_path) == []


def test_sample_without_key_is_a_clear_error(tmp_path):
    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(tmp_path))
    samples = [*make_samples(1), mario.Sample(np.zeros(2))]
    with pytest.raises(ValueError, match="Sample 1 has no `key`") as info:
        wrapper.transform(samples)
    assert isinstance(info.value, AttributeError)
    with pytest.raises(ValueError, match="must be strings"):
        wrapper.transform([mario.Sample(1, key=("a", 1))])
    assert listing(tmp_path) == []


def test_integer_and_nested_keys(tmp_path):
    samples = [mario.Sample(np.ones(1), key=7), mario.Sample(np.ones(1), key="subject-1/s-2")]
    mario.CheckpointWrapper(KeyRecorder(), str(tmp_path)).transform(samples)
    assert listing(tmp_path) == ["7.h5", os.path.join("subject-1", "s-2.h5")]


def test_hash_fn_adds_a_sub_directory(tmp_path):
    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(tmp_path), hash_fn=mario.hash_string)
    wrapper.transform(make_samples(2))
    expected = sorted(os.path.join(mario.hash_string(k), f"{k}.h5") for k in ("0", "1"))
    assert listing(tmp_path) == expected
    assert wrapper.make_path(mario.Sample(0, key="0")) == os.path.join(
        str(tmp_path), mario.hash_string("0"), "0.h5"
    )


def test_none_results_are_returned_and_not_saved(tmp_path):
    log = str(tmp_path / "keys.log")
    features = tmp_path / "f"
    recorder = KeyRecorder(log_path=log, none_for=("1",), none_data_for=("2",))
    wrapper = mario.CheckpointWrapper(recorder, str(features))
    out = wrapper.transform(make_samples(4))
    assert out[1] is None
    assert isinstance(out[2], mario.Sample) and out[2].data is None and out[2].key == "2"
    assert listing(features) == ["0.h5", "3.h5"]
    wrapper.transform(make_samples(4))
    assert read_log(log)[-1] == ["transform", "1", "2"]  # recomputed next time


def test_save_is_atomic(tmp_path):
    features = tmp_path / "f"
    seen = []

    def save(data, path):
        seen.append(path)
        assert os.path.dirname(path) == str(features)
        assert path.endswith(".npy") and not os.path.exists(features / "0.npy")
        np.save(path, data)

    wrapper = mario.CheckpointWrapper(
        KeyRecorder(), str(features), extension=".npy", save_func=save, load_func=np.load
    )
    out = wrapper.transform(make_samples(1))
    assert len(seen) == 1 and seen[0] != str(features / "0.npy")
    assert listing(features) == [".0.npy.producer", "0.npy"]  # custom save_func: a record beside
    again = wrapper.transform(make_samples(1))
    np.testing.assert_array_equal(again[0].data, out[0].data)


def test_a_save_that_fails_twice_succeeds_with_three_attempts(tmp_path):
    features = tmp_path / "f"
    calls = []

    def flaky(data, path):
        calls.append(path)
        if len(calls) <= 2:
            with open(path, "wb") as f:  # a partial file, then a failure
                f.write(b"partial")
            raise OSError("NFS hiccup")
        save_hdf5(data, path)

    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(features), save_func=flaky, attempts=3)
    out = wrapper.transform(make_samples(1))
    assert len(calls) == 3
    # no temporary file left behind; a custom save_func gets a hidden producer record
    assert listing(features) == [".0.h5.producer", "0.h5"]
    np.testing.assert_array_equal(load_hdf5(str(features / "0.h5")), out[0].data)


def test_a_save_that_keeps_failing_warns_and_returns_the_results(tmp_path):
    features = tmp_path / "f"
    calls = []

    def broken(data, path):
        calls.append(path)
        raise OSError("disk full")

    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(features), save_func=broken, attempts=2)
    with pytest.warns(StoreWriteWarning, match="Could not save 3 of 3"):
        out = wrapper.transform(make_samples(3))
    assert len(calls) == 2  # gave up on the first sample, did not hammer the disk
    assert [s.key for s in out] == ["0", "1", "2"]
    assert listing(features) == []


def test_attempts_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="attempts"):
        mario.CheckpointWrapper(KeyRecorder(), str(tmp_path), attempts=0).transform(make_samples(1))


@pytest.mark.parametrize(
    "value",
    [
        np.arange(6.0).reshape(2, 3),
        np.arange(3, dtype=np.int8),
        np.array(True),
        np.float32(1.5),
        np.array([b"ab", b"c"]),
        np.array(["unicode"]),
        [1, 2.0, "three"],
        "a string",
        {"a": np.arange(2)},
        None.__class__,
        np.array([1, "x"], dtype=object),
        np.zeros((0, 2)),
    ],
)
def test_default_hdf5_codec_round_trips(tmp_path, value):
    path = str(tmp_path / "x.h5")
    save_hdf5(value, path)
    loaded = load_hdf5(path)
    assert type(loaded) is type(value)
    assert mario.Sample(loaded) == mario.Sample(value)
    if isinstance(value, np.ndarray):
        assert loaded.dtype == value.dtype and loaded.shape == value.shape


def test_hdf5_files_written_by_other_tools(tmp_path):
    import h5py

    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("features", data=np.arange(4))
    np.testing.assert_array_equal(load_hdf5(str(tmp_path / "one.h5")), np.arange(4))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f.create_dataset("a", data=1)
        f.create_dataset("b", data=2)
    with pytest.raises(StoreFormatError, match="load_func"):
        load_hdf5(str(tmp_path / "two.h5"))


def test_loads_are_retried_and_loaded_samples_pickle_without_loading(tmp_path):
    features = tmp_path / "f"
    mario.CheckpointWrapper(KeyRecorder(), str(features)).transform(make_samples(1))
    failures = []

    def flaky_load(path):
        if not failures:
            failures.append(path)
            raise OSError("stale NFS handle")
        return load_hdf5(path)

    wrapper = mario.CheckpointWrapper(KeyRecorder(), str(features), load_func=flaky_load)
    (loaded,) = wrapper.transform(make_samples(1))
    assert failures == []  # nothing read yet
    np.testing.assert_array_equal(loaded.data, [0.0, 0.0])
    assert len(failures) == 1  # failed once, then retried

    reader = mario.CheckpointWrapper(KeyRecorder(), str(features), attempts=1)
    (default,) = reader.transform(make_samples(1))
    payload = pickle.dumps(default)
    os.remove(features / "0.h5")  # pickling did not read the file; the copy reads it later
    restored = pickle.loads(payload)
    with pytest.raises(OSError):
        restored.data  # noqa: B018


def test_checkpointing_sample_sets(tmp_path):
    log = str(tmp_path / "keys.log")
    features = tmp_path / "f"
    sets = [
        mario.SampleSet(make_samples(2), key="a"),
        mario.SampleSet([mario.Sample(np.ones(2), key="x")], key="b"),
    ]
    wrapper = mario.CheckpointWrapper(KeyRecorder(log_path=log), str(features))
    first = wrapper.transform(sets)
    second = wrapper.transform(sets)
    assert read_log(log) == [["transform", "0", "1"], ["transform", "x"]]
    assert listing(features) == ["0.h5", "1.h5", "x.h5"]
    assert [type(s) for s in second] == [mario.SampleSet, mario.SampleSet]
    assert second == first and second[0].key == "a"


def test_checkpoint_of_another_attribute(tmp_path):
    features = tmp_path / "f"
    inner = mario.SampleWrapper(Doubler(), output_attribute="emb")
    wrapper = mario.CheckpointWrapper(inner, str(features), sample_attribute="emb")
    first = wrapper.transform(make_samples(2))
    second = wrapper.transform(make_samples(2))
    np.testing.assert_array_equal(second[1].emb, [2.0, 2.0])
    np.testing.assert_array_equal(second[1].data, [1.0, 1.0])
    assert second == first


def test_without_features_dir_nothing_is_checkpointed(tmp_path, log):
    wrapper = mario.CheckpointWrapper(mario.SampleWrapper(AddOffset(log_path=log), OFFSETS))
    wrapper.transform(make_samples(2))
    wrapper.transform(make_samples(2))
    assert read_log(log) == [["transform", "2"], ["transform", "2"]]


def test_results_that_are_not_samples_are_a_clear_error(tmp_path):
    wrapper = mario.CheckpointWrapper(FunctionTransformer(lambda X: [1] * len(X)), str(tmp_path))
    with pytest.raises(InvalidArgumentError, match="SampleWrapper"):
        wrapper.transform(make_samples(1))


# ------------------------------------------------------------------------------ models


def test_model_saved_once_and_loaded_by_a_new_wrapper_without_fitting(tmp_path, log):
    model_path = tmp_path / "models" / "deep" / "model.pkl"  # parent folders are created
    samples = make_samples(4)

    def make():
        return mario.CheckpointWrapper(
            mario.SampleWrapper(Centerer(scale=2.0, log_path=log)), model_path=str(model_path)
        )

    first = make()
    assert first.fit(samples) is first
    assert model_path.is_file()
    assert [c[0] for c in read_log(log)] == ["fit"]
    expected = first.transform(samples)

    fresh = make()
    fresh.fit(samples)
    assert [c[0] for c in read_log(log)] == ["fit", "transform"]  # no second fit
    np.testing.assert_array_equal(fresh.estimator_.estimator_.mean_, [1.5, 1.5])
    assert fresh.transform(samples) == expected
    assert listing(model_path.parent) == ["model.pkl"]


def test_bare_model_path_in_the_working_directory(tmp_path, monkeypatch, log):
    monkeypatch.chdir(tmp_path)
    wrapper = mario.CheckpointWrapper(
        mario.SampleWrapper(Centerer(log_path=log)), model_path="model.pkl"
    )
    wrapper.fit(make_samples(2))
    assert (tmp_path / "model.pkl").is_file()


def test_force_refits_and_stateless_estimators_are_not_fitted(tmp_path, log):
    model_path = str(tmp_path / "model.pkl")
    samples = make_samples(2)
    mario.CheckpointWrapper(mario.SampleWrapper(Centerer(log_path=log)), model_path=model_path).fit(
        samples
    )
    forced = mario.CheckpointWrapper(
        mario.SampleWrapper(Centerer(log_path=log)), model_path=model_path, force=True
    )
    forced.fit(samples)
    assert [c[0] for c in read_log(log)] == ["fit", "fit"]

    stateless = mario.CheckpointWrapper(
        mario.SampleWrapper(Doubler()), model_path=str(tmp_path / "never.pkl")
    )
    assert stateless.fit(samples) is stateless
    assert not (tmp_path / "never.pkl").exists() and not hasattr(stateless, "estimator_")


def test_model_of_another_estimator_is_fitted_again(tmp_path):
    model_path = str(tmp_path / "model.pkl")
    mario.CheckpointWrapper(mario.SampleWrapper(Centerer()), model_path=model_path).fit(
        make_samples(2)
    )
    other = mario.CheckpointWrapper(Centerer(), model_path=model_path)
    with pytest.warns(StaleCheckpointWarning, match="SampleWrapper -> .*Centerer"):
        other.fit(np.zeros((2, 2)))
    assert type(other.estimator_) is Centerer
    assert type(load_pickle(model_path)) is Centerer


def test_failing_model_save_warns_and_keeps_the_model(tmp_path, log):
    wrapper = mario.CheckpointWrapper(
        mario.SampleWrapper(Centerer(log_path=log)), model_path=str(tmp_path / "m.pkl"), attempts=1
    )
    with (
        mock.patch(
            "checkpoint_magic.pipelines.checkpoint.save_pickle", side_effect=OSError("read-only")
        ),
        pytest.warns(StoreWriteWarning, match="fitted model"),
    ):
        wrapper.fit(make_samples(2))
    check_is_fitted(wrapper)
    assert listing(tmp_path) == ["calls.log"]


def test_checkpoint_wrapper_follows_sklearn_conventions(tmp_path):
    wrapper = mario.CheckpointWrapper(
        mario.SampleWrapper(PCA(1)), features_dir=tmp_path, model_path=None, attempts=3
    )
    params = wrapper.get_params()
    assert params["features_dir"] is tmp_path and params["attempts"] == 3
    assert params["estimator__estimator__n_components"] == 1
    cloned = clone(wrapper)
    assert cloned.features_dir == tmp_path and cloned.extension == ".h5"
    assert get_tags(wrapper).requires_fit is True
    assert get_tags(mario.CheckpointWrapper(KeyRecorder())).requires_fit is False


def test_checkpointed_pipeline_end_to_end(tmp_path, log):
    samples = make_samples(4)
    pipeline = mario.wrap(
        ["sample", "checkpoint"],
        make_pipeline(Centerer(log_path=log), Doubler(log_path=log)),
        features_dir=str(tmp_path / "features"),
        model_path=str(tmp_path / "models"),
    )
    out = pipeline.fit(samples).transform(samples)
    assert listing(tmp_path / "features") == [
        os.path.join(step, f"{i}.h5") for step in ("centerer", "doubler") for i in range(4)
    ]
    assert listing(tmp_path / "models") == ["centerer.pkl"]
    np.testing.assert_array_equal(out[3].data, [3.0, 3.0])  # (3 - 1.5) * 2

    calls = len(read_log(log))
    again = mario.wrap(
        ["sample", "checkpoint"],
        make_pipeline(Centerer(log_path=log), Doubler(log_path=log)),
        features_dir=str(tmp_path / "features"),
        model_path=str(tmp_path / "models"),
    )
    assert again.fit(samples).transform(samples) == out
    assert len(read_log(log)) == calls  # nothing fitted or computed the second time


# ============================================================================== wrap


class MyTransformer(AddOffset):
    pass


def test_wrap_builds_the_layers_and_passes_kwargs():
    transformer = mario.wrap(
        [MyTransformer, "sample", "checkpoint", "dask"],
        transform_extra_arguments=OFFSETS,
        features_dir="features",
        model_path="model.pkl",
    )
    assert isinstance(transformer, mario.DaskWrapper)
    checkpoint = transformer.estimator
    assert isinstance(checkpoint, mario.CheckpointWrapper)
    assert checkpoint.features_dir == "features" and checkpoint.model_path == "model.pkl"
    sample = checkpoint.estimator
    assert isinstance(sample, mario.SampleWrapper)
    assert sample.transform_extra_arguments is OFFSETS
    assert type(sample.estimator) is MyTransformer

    estimator = MyTransformer()
    same = mario.wrap([mario.SampleWrapper, "CHECKPOINT"], estimator, features_dir="f")
    assert same.estimator.estimator is estimator


def test_wrap_passes_a_kwarg_to_every_class_that_takes_it():
    class Tagged(mario.SampleWrapper):
        def __init__(self, estimator, features_dir=None):
            super().__init__(estimator)
            self.features_dir = features_dir

    wrapped = mario.wrap([Tagged, "checkpoint"], Doubler(), features_dir="f")
    assert wrapped.features_dir == "f" and wrapped.estimator.features_dir == "f"


def test_wrap_errors():
    with pytest.raises(ValueError, match="no wrapper takes: \\['features_dri'\\]"):
        mario.wrap(["sample", "checkpoint"], Doubler(), features_dri="typo")
    with pytest.raises(ValueError, match="Unknown wrapper 'samples'"):
        mario.wrap(["samples"], Doubler())
    with pytest.raises(ValueError, match="no estimator"):
        mario.wrap(["sample"])
    with pytest.raises(ValueError, match="npartitions"):  # ToDaskBag only joins pipelines
        mario.wrap(["sample", "dask"], Doubler(), npartitions=3)


def test_wrap_pipeline_wraps_each_step():
    original = make_pipeline(Centerer(), "passthrough", Doubler())
    wrapped = mario.wrap(
        ["sample", "checkpoint", "dask"],
        original,
        transform_extra_arguments=None,
        features_dir="features",
        model_path="models",
        npartitions=7,
    )
    assert isinstance(wrapped, Pipeline) and wrapped is not original
    assert [type(step) for _, step in original.steps] == [Centerer, str, Doubler]  # untouched
    names = [name for name, _ in wrapped.steps]
    assert names == ["ToDaskBag", "centerer", "passthrough", "doubler"]
    to_bag = wrapped.steps[0][1]
    assert isinstance(to_bag, mario.ToDaskBag) and to_bag.npartitions == 7
    assert wrapped.steps[2][1] == "passthrough"
    for name in ("centerer", "doubler"):
        step = wrapped.named_steps[name]
        assert isinstance(step, mario.DaskWrapper)
        assert step.estimator.features_dir == os.path.join("features", name)
        assert step.estimator.model_path == os.path.join("models", f"{name}.pkl")
        assert isinstance(step.estimator.estimator, mario.SampleWrapper)


def test_wrap_pipeline_seed_example():
    transformer1 = mario.wrap([MyTransformer, "sample"], transform_extra_arguments=OFFSETS)
    transformer2 = mario.wrap([MyTransformer, "sample"], transform_extra_arguments=OFFSETS)
    by_hand = make_pipeline(transformer1, transformer2)
    by_wrap = mario.wrap(
        ["sample"],
        make_pipeline(MyTransformer(), MyTransformer()),
        transform_extra_arguments=OFFSETS,
    )
    assert [repr(step) for _, step in by_hand.steps] == [repr(step) for _, step in by_wrap.steps]
    samples = make_samples(3)
    assert by_hand.fit(samples).transform(samples) == by_wrap.fit(samples).transform(samples)


# ============================================================================== requires fit


def test_estimator_requires_fit_sees_through_wrappers_and_pipelines():
    assert mario.estimator_requires_fit(PCA())
    assert not mario.estimator_requires_fit(FunctionTransformer())
    assert not mario.estimator_requires_fit(Doubler())
    assert not mario.estimator_requires_fit(mario.ToDaskBag())
    assert not mario.estimator_requires_fit("passthrough")
    assert mario.estimator_requires_fit(
        mario.DaskWrapper(mario.CheckpointWrapper(mario.SampleWrapper(PCA())))
    )
    assert not mario.estimator_requires_fit(
        mario.DaskWrapper(mario.CheckpointWrapper(KeyRecorder()))
    )
    assert not mario.estimator_requires_fit(
        make_pipeline(Doubler(), "passthrough", FunctionTransformer())
    )
    assert mario.estimator_requires_fit(make_pipeline(Doubler(), mario.SampleWrapper(PCA())))
    assert not mario.estimator_requires_fit(object())
    assert mario.is_wrapped(mario.DaskWrapper(mario.SampleWrapper(PCA())), mario.SampleWrapper)
    assert type(mario.unwrap(mario.DaskWrapper(mario.SampleWrapper(PCA())))) is PCA
