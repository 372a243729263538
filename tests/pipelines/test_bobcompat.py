"""The behaviours bob.pipelines' own tests exercise, run against this package as ``mario``.

Our own tests of what bob.pipelines' ``test_samples``, ``test_utils`` and ``test_wrappers``
check (sample-wise checkpointing, not its xarray or database modules), written for
``import checkpoint_magic.pipelines as mario``.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import checkpoint_magic.pipelines as mario  # noqa: E402
from checkpoint_magic.pipelines import getattr_nested  # noqa: E402
from tests.pipelines.helpers import (  # noqa: E402
    AllFailing,
    DaskArraySum,
    HalfFailing,
    PlusOne,
    TaggedAnnotator,
    TaggedReader,
)


def ones(n: int = 10, dim: int = 2) -> np.ndarray:
    return np.ones((n, dim), dtype=int)


# ------------------------------------------------------------------------------ samples


def test_sample_set_is_a_mutable_sequence_with_metadata():
    samples = [mario.Sample(np.full(2, i), key=str(i)) for i in range(3)]
    sset = mario.SampleSet(samples, key="set", subject="a")
    assert len(sset) == 3 and sset[1].key == "1"
    sset.insert(0, mario.Sample(np.zeros(2), key="new"))
    del sset[1]
    sset[0] = mario.Sample(np.ones(2), key="first")
    assert [s.key for s in sset] == ["first", "1", "2"]
    child = mario.SampleSet([], parent=sset)
    assert (child.key, child.subject, len(child)) == ("set", "a", 0)


def test_delayed_attributes_are_loaded_on_access_and_inherited():
    delayed = mario.DelayedSample(lambda: 0, delayed_attributes={"annot": lambda: "annotation"})
    assert delayed.data == 0 and delayed.annot == "annotation"
    child = mario.Sample(1, parent=delayed)  # a plain sample loads its parent's attributes
    assert vars(child) == {"data": 1, "annot": "annotation"}

    read = []
    grandchild = mario.DelayedSample(
        lambda: 0,
        parent=delayed,
        delayed_attributes={
            "annot": lambda: "variant",  # overrides the parent's delayed attribute
            "new_annot": lambda: "annotation",
            "read_check": lambda: read.append(1) or "read",
        },
    )
    assert grandchild.annot == "variant" and grandchild.new_annot == "annotation"
    assert read == []
    assert grandchild.read_check == "read" and read == [1]
    assert delayed.annot == "annotation"  # the parent is untouched
    delayed.annot = "changed"
    assert delayed.annot == "changed"


def test_delayed_sample_from_sample_loads_nothing():
    delayed = mario.DelayedSample.from_sample(mario.Sample(1), annot="test")
    assert delayed.data == 1 and delayed.annot == "test"

    allowed = False

    def never_load():
        if not allowed:
            raise AssertionError("loaded too early")
        return 0

    source = mario.DelayedSample(never_load, delayed_attributes={"annot": never_load})
    child = mario.DelayedSample.from_sample(source)
    allowed = True
    assert child.data == 0 and child.annot == 0


def test_a_name_both_plain_and_delayed_is_a_value_error():
    with pytest.raises(ValueError):
        mario.DelayedSample(
            lambda: 0, delayed_attributes={"annotations": lambda: "x"}, annotations="y"
        )
    parent = mario.DelayedSample(
        lambda: 0, delayed_attributes={"annotation": lambda: "x"}, non_delayed=4
    )
    child = mario.DelayedSample(lambda: 12, parent=parent, annotation=100)
    assert (child.data, child.annotation, child.non_delayed) == (12, 100, 4)
    assert child.delayed_attributes == {}


def test_delayed_sample_set_cached_loads_once():
    calls = []

    def load():
        calls.append(1)
        return [mario.Sample(i) for i in range(3)]

    cached = mario.DelayedSampleSetCached(load, key="s")
    uncached = mario.DelayedSampleSet(load, key="s")
    assert [s.data for s in cached] == [0, 1, 2] and len(cached) == 3
    assert len(calls) == 1
    assert len(uncached) == 3 and [s.data for s in uncached] == [0, 1, 2]
    assert len(calls) == 3
    assert isinstance(cached, mario.DelayedSampleSet) and cached.key == "s"


# ------------------------------------------------------------------------------ utilities


def test_is_pipeline_wrapped_follows_each_layer(tmp_path):
    pipe = make_pipeline(FunctionTransformer(np.sqrt), FunctionTransformer(np.square))
    for wrapper in (mario.SampleWrapper, mario.CheckpointWrapper, mario.DaskWrapper):
        assert mario.is_pipeline_wrapped(pipe, wrapper) == [False, False]
    pipe = mario.wrap(["sample"], pipe)
    assert mario.is_pipeline_wrapped(pipe, mario.SampleWrapper) == [True, True]
    assert mario.is_pipeline_wrapped(pipe, mario.CheckpointWrapper) == [False, False]
    pipe = mario.wrap(["checkpoint"], pipe, features_dir=str(tmp_path))
    assert mario.is_pipeline_wrapped(pipe, mario.SampleWrapper) == [True, True]
    assert mario.is_pipeline_wrapped(pipe, mario.CheckpointWrapper) == [True, True]
    pipe = mario.wrap(["dask"], pipe)
    for wrapper in (mario.SampleWrapper, mario.CheckpointWrapper, mario.DaskWrapper):
        assert mario.is_pipeline_wrapped(pipe, wrapper) == [False, True, True]


def test_is_instance_nested():
    class A:
        pass

    class B:
        def __init__(self, o):
            self.o = o

    nested = B(B(A()))
    assert mario.is_instance_nested(nested, "o", B)
    assert mario.is_instance_nested(nested, "o", A)
    assert not mario.is_instance_nested(B(B(object)), "o", A)


def test_flatten_samplesets_gives_one_sample_per_set():
    rng = random.Random(10)
    samplesets = [
        mario.SampleSet(
            [mario.Sample(x, key=str(i), tag=rng.choice("abc")) for i, x in enumerate(ones())],
            key=str(j),
            set_tag=rng.choice("abc"),
        )
        for j in range(10)
    ]
    flat = mario.flatten_samplesets(samplesets)
    assert len(flat) == 100 and all(len(s) == 1 for s in flat)
    assert flat[13].key == "1-3" and flat[13].set_tag == samplesets[1].set_tag
    assert flat[13][0] is samplesets[1][3]
    assert len({s.key for s in flat}) == 100
    with pytest.raises(ValueError, match="no key"):
        mario.flatten_samplesets([mario.SampleSet([mario.Sample(1)])])


def test_check_parameter_for_validity():
    valid = ["accept", "true"]
    assert mario.check_parameter_for_validity("accept", "param", valid) == "accept"
    assert mario.check_parameter_for_validity(["true"], "param", valid) == "true"
    assert mario.check_parameter_for_validity(None, "param", valid, "accept") == "accept"
    for bad in ("false", None, ["accept", "true"], ["false"]):
        with pytest.raises(ValueError):
            mario.check_parameter_for_validity(bad, "param", valid)


def test_check_parameters_for_validity():
    valid = ["accept", "true"]
    assert mario.check_parameters_for_validity("accept", "p", valid) == ["accept"]
    assert mario.check_parameters_for_validity(("accept", "true"), "p", valid) == valid
    assert mario.check_parameters_for_validity(None, "p", valid) == valid
    assert mario.check_parameters_for_validity([], "p", valid, ["true"]) == ["true"]
    for bad in ("false", ["accept", "false"], {"nope"}):
        with pytest.raises(ValueError):
            mario.check_parameters_for_validity(bad, "p", valid)


def test_getattr_nested_finds_fitted_attributes():
    samples = [mario.Sample(x) for x in np.arange(6.0).reshape(3, 2)]
    wrapped = mario.wrap([StandardScaler, "sample"])
    wrapped.fit(samples)
    np.testing.assert_allclose(getattr_nested(wrapped, "mean_"), [2.0, 3.0])
    assert getattr_nested(wrapped, "no_such_attribute") is None


# ------------------------------------------------------------------------------ tags


def test_tags_configure_the_sample_wrapper():
    X = ones()
    samples = [mario.Sample(x) for x in X]
    annotator = mario.wrap([TaggedAnnotator, "sample"])
    assert annotator.output_attribute is None  # parameters stay as given
    features = annotator.transform(samples)
    np.testing.assert_array_equal([s.annotations for s in features], X + 1)
    np.testing.assert_array_equal([s.data for s in features], X)
    annotator.fit(features)  # fit gets y=data and extra=annotations from the tags
    assert annotator.estimator_.fitted_

    assert features[0] is samples[0]  # annotations are set on the input samples
    reader = mario.wrap([TaggedReader, "sample"])
    out = reader.transform(samples)
    np.testing.assert_array_equal([s.annotations_2 for s in out], X + 2)
    np.testing.assert_array_equal([s.data for s in out], X)
    reader.fit(features)
    assert reader.estimator_.fitted_


def test_explicit_arguments_win_over_tags():
    samples = [mario.Sample(x) for x in ones(3)]
    wrapper = mario.SampleWrapper(
        TaggedAnnotator(),
        output_attribute="result",
        transform_extra_arguments=[("first", "data"), ("second", "data")],
    )
    out = wrapper.transform(samples)
    np.testing.assert_array_equal([s.result for s in out], ones(3) + 1)
    assert not hasattr(out[0], "annotations")


def test_requires_fit_declared_in_more_tags_is_honoured():
    class Child(PlusOne):  # inherits requires_fit=False, as with scikit-learn's old tags
        def _more_tags(self):
            return {"bob_output": "x"}

    assert not mario.estimator_requires_fit(PlusOne())
    assert not mario.estimator_requires_fit(Child())
    assert mario.bob_tags(Child()) == {"bob_output": "x"}
    assert mario.estimator_requires_fit(DaskArraySum())
    assert not mario.estimator_requires_fit(mario.wrap([PlusOne, "sample", "checkpoint"]))


def test_function_transformer_needs_no_fit_on_any_scikit_learn(monkeypatch):
    from checkpoint_magic.pipelines import base

    # scikit-learn < 1.6 has no get_tags and tags FunctionTransformer requires_fit=True
    monkeypatch.setattr(base, "_get_tags", None)
    monkeypatch.setattr(FunctionTransformer, "_get_tags", lambda self: {"requires_fit": True},
                        raising=False)  # fmt: skip
    assert not mario.estimator_requires_fit(FunctionTransformer(np.sqrt))
    assert not mario.estimator_requires_fit(mario.wrap(["sample"], FunctionTransformer()))


def test_fit_transform_of_a_function_transformer_writes_no_model(tmp_path):
    from checkpoint_magic.pipelines import base

    model = tmp_path / "model.pkl"
    wrapper = mario.wrap(
        ["sample", "checkpoint"], FunctionTransformer(np.square), model_path=str(model),
        features_dir=str(tmp_path / "f"),
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base, "_get_tags", None)  # as on scikit-learn < 1.6
        out = wrapper.fit_transform([mario.Sample(np.full(2, 3.0), key="a")])
    assert not model.exists()
    np.testing.assert_array_equal(out[0].data, [9.0, 9.0])


# ------------------------------------------------------------------------------ failed samples


def expected_half_failed(n: int = 10) -> list:
    # step 1 fails positions 0, 2, 4...; step 2 gets 1, 3, 5, 7, 9 and fails 1, 5, 9
    return [None if i % 2 == 0 or i % 4 == 1 else 2.0 for i in range(n)]


def first_values(features) -> list:
    return [None if f.data is None else float(np.asarray(f.data)[0]) for f in features]


def test_failed_samples_skip_the_next_step_and_keep_their_place():
    samples = [mario.Sample(x) for x in np.zeros((10, 2))]
    pipe = Pipeline([("1", mario.wrap([HalfFailing, "sample"])), ("2", mario.wrap([HalfFailing, "sample"]))])  # fmt: skip
    assert first_values(pipe.transform(samples)) == expected_half_failed()
    pipe = Pipeline([("1", mario.wrap([AllFailing, "sample"])), ("2", mario.wrap([AllFailing, "sample"]))])  # fmt: skip
    out = pipe.transform(samples)
    assert len(out) == 10 and all(s.data is None for s in out)


def test_failed_samples_in_sample_sets_keep_the_sets_consistent():
    sets = [mario.SampleSet([mario.Sample(np.zeros(2)) for _ in range(4)], key=str(k)) for k in range(2)]  # fmt: skip
    out = mario.wrap(["sample"], make_pipeline(HalfFailing(), HalfFailing())).transform(sets)
    assert [len(s) for s in out] == [4, 4]
    assert [first_values(s) for s in out] == [[None, None, None, 2.0]] * 2


def test_failed_samples_are_not_fitted_on():
    samples = [mario.Sample(None), mario.Sample(np.arange(2.0)), mario.Sample(np.arange(2.0) + 2)]
    wrapper = mario.wrap([StandardScaler, "sample"]).fit(samples)
    np.testing.assert_allclose(wrapper.estimator_.mean_, [1.0, 2.0])


def test_failed_samples_are_not_checkpointed_and_computed_again(tmp_path):
    samples = [mario.Sample(x, key=i) for i, x in enumerate(np.zeros((10, 2)))]
    dirs = [str(tmp_path / "f1"), str(tmp_path / "f2")]

    def pipeline():
        return Pipeline(
            [
                (str(i), mario.wrap([HalfFailing, "sample", "checkpoint"], features_dir=d))
                for i, d in enumerate(dirs)
            ]
        )

    assert first_values(pipeline().transform(samples)) == expected_half_failed()
    assert sorted(os.listdir(dirs[0])) == [f"{i}.h5" for i in (1, 3, 5, 7, 9)]
    assert sorted(os.listdir(dirs[1])) == ["3.h5", "7.h5"]
    # again: the saved samples are loaded, the failed ones are computed again; HalfFailing
    # now gets 0, 2, 4, 6, 8 and fails at its even positions (0, 4, 8), so 2 and 6 succeed
    step = pipeline().steps[0][1]
    out = step.transform(samples)
    assert [isinstance(s, mario.DelayedSample) for s in out] == [i % 2 == 1 for i in range(10)]
    assert first_values(out) == [None if i in (0, 4, 8) else 1.0 for i in range(10)]
    assert sorted(os.listdir(dirs[0])) == [f"{i}.h5" for i in (1, 2, 3, 5, 6, 7, 9)]

    all_failed = Pipeline([("1", mario.wrap([AllFailing, "sample", "checkpoint"], features_dir=str(tmp_path / "g")))])  # fmt: skip
    assert all(s.data is None for s in all_failed.transform(samples))
    assert not os.path.exists(tmp_path / "g") or os.listdir(tmp_path / "g") == []


# ------------------------------------------------------------------------------ checkpointing


def test_checkpointed_function_transformer_saves_features_and_no_model(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    samples = [mario.Sample(x, key=str(i)) for i, x in enumerate(X)]
    features_dir, model = str(tmp_path / "f"), str(tmp_path / "model.pkl")
    transformer = mario.wrap(
        [FunctionTransformer, "sample", "checkpoint"], func=np.square,
        features_dir=features_dir, model_path=model,
    )  # fmt: skip
    out = transformer.fit_transform(samples)
    np.testing.assert_array_equal([s.data for s in out], X**2)
    assert not os.path.exists(model)
    assert sorted(os.listdir(features_dir)) == sorted(f"{i}.h5" for i in range(10))
    again = transformer.transform(samples)
    assert all(isinstance(s, mario.DelayedSample) for s in again)
    np.testing.assert_array_equal([s.data for s in again], X**2)


def test_checkpointed_fittable_transformer_saves_the_model(tmp_path):
    X = np.arange(20.0).reshape(10, 2)
    samples = [mario.Sample(x, key=str(i)) for i, x in enumerate(X)]
    model = str(tmp_path / "model.pkl")
    transformer = mario.wrap(
        [StandardScaler, "sample", "checkpoint"], model_path=model,
        features_dir=str(tmp_path / "f"),
    )  # fmt: skip
    oracle = StandardScaler().fit_transform(X)
    np.testing.assert_allclose([s.data for s in transformer.fit_transform(samples)], oracle)
    assert os.path.isfile(model)
    loaded = mario.wrap([StandardScaler, "sample", "checkpoint"], model_path=model)
    loaded.fit(None)  # loads the model: the data is not even looked at
    np.testing.assert_allclose(getattr_nested(loaded, "mean_"), X.mean(axis=0))


def test_checkpointed_pipeline_force_recomputes(tmp_path):
    X = np.arange(8.0).reshape(4, 2)
    samples = [mario.Sample(x, key=str(i)) for i, x in enumerate(X)]
    make = lambda force: mario.wrap(  # noqa: E731
        ["sample", "checkpoint"], make_pipeline(PlusOne(), PlusOne()),
        features_dir=str(tmp_path), force=force,
    )  # fmt: skip
    make(False).transform(samples)
    assert sorted(os.listdir(tmp_path)) == ["plusone-1", "plusone-2"]
    out = make(False).transform(samples)
    assert all(isinstance(s, mario.DelayedSample) for s in out)
    forced = make(True).transform(samples)
    assert not any(isinstance(s, mario.DelayedSample) for s in forced)
    np.testing.assert_array_equal([s.data for s in forced], X + 2)


def test_checkpointed_sample_sets(tmp_path):
    sets = [
        mario.SampleSet(
            [mario.Sample(np.full(2, 2.0 * k + j), key=f"{k}-{j}") for j in range(2)], key=str(k)
        )  # fmt: skip
        for k in range(3)
    ]
    pipe = mario.wrap(
        ["sample", "checkpoint"], make_pipeline(PlusOne()), features_dir=str(tmp_path)
    )
    out = pipe.transform(sets)
    assert [s.key for s in out] == ["0", "1", "2"]
    assert sorted(os.listdir(tmp_path / "plusone")) == sorted(f"{k}-{j}.h5" for k in range(3) for j in range(2))  # fmt: skip
    again = pipe.transform(sets)
    assert all(isinstance(s, mario.DelayedSample) for sset in again for s in sset)
    assert [[float(s.data[0]) for s in sset] for sset in again] == [[1, 2], [3, 4], [5, 6]]


# ------------------------------------------------------------------------------ Dask


def test_dask_fit_gets_a_dask_array_from_the_tag():
    dask = pytest.importorskip("dask")
    X = ones()
    bag = mario.ToDaskBag(npartitions=3).transform([mario.Sample(x) for x in X])
    with dask.config.set(scheduler="sync"):
        transformer = mario.wrap([DaskArraySum, "sample", "dask"]).fit(bag)
    np.testing.assert_array_equal(getattr_nested(transformer, "model_"), X.sum(axis=0))


def test_dask_fit_on_a_dask_array_is_checkpointed(tmp_path):
    dask = pytest.importorskip("dask")
    X = ones()
    bag = mario.ToDaskBag(npartitions=2).transform([mario.Sample(x, key=str(i)) for i, x in enumerate(X)])  # fmt: skip
    model = str(tmp_path / "ckpt.pkl")
    with dask.config.set(scheduler="sync"):
        mario.wrap([DaskArraySum, "sample", "checkpoint", "dask"], model_path=model).fit(bag)
        again = mario.wrap([DaskArraySum, "sample", "checkpoint", "dask"], model_path=model)
        again.fit(None)  # loaded from the checkpoint
    np.testing.assert_array_equal(getattr_nested(again, "model_"), X.sum(axis=0))


def test_fit_supports_dask_array_parameter_passes_targets_as_arrays():
    dask = pytest.importorskip("dask")
    samples = [mario.Sample(np.full(2, float(i)), target=i % 2) for i in range(6)]
    bag = mario.ToDaskBag(npartitions=2).transform(samples)
    wrapper = mario.wrap(
        ["sample", "dask"], DaskArraySum(), fit_supports_dask_array=True,
        fit_extra_arguments=[("y", "target")],
    )  # fmt: skip
    with dask.config.set(scheduler="sync"):
        wrapper.fit(bag)
    assert getattr_nested(wrapper, "n_targets_") == 6
    with pytest.raises(ValueError, match="fit_extra_arguments"):
        wrapper.fit(bag, y=np.zeros(6))
