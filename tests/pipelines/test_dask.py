"""Tests of DaskWrapper and ToDaskBag: local scheduler, a 2-worker LocalCluster, no Dask."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.utils import get_tags

import checkpoint_magic.pipelines as mario  # noqa: E402
from tests.pipelines.helpers import (  # noqa: E402
    Centerer,
    DaskArraySum,
    Doubler,
    KeyRecorder,
    make_samples,
    read_log,
)

dask = pytest.importorskip("dask")
pytest.importorskip("dask.bag")


def tree(directory):
    """``{relative path: file bytes}`` of every file under ``directory``."""
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, directory)] = fh.read()
    return out


def wrapped_pipeline(log, features_dir=None, model_path=None, dask_=True):
    bases = ["sample", "checkpoint", "dask"] if dask_ else ["sample", "checkpoint"]
    kwargs = {"npartitions": 3} if dask_ else {}
    return mario.wrap(
        bases,
        make_pipeline(Centerer(scale=2.0, log_path=log), Doubler(log_path=log)),
        features_dir=features_dir,
        model_path=model_path,
        **kwargs,
    )


# ------------------------------------------------------------------------------ without Dask


def test_import_without_dask_or_h5py_works():
    code = textwrap.dedent(
        """
        import importlib.abc, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed", "h5py"):
                    raise ImportError(f"{name} is blocked for this test")

        sys.meta_path.insert(0, Block())
        import numpy as np
        import checkpoint_magic.pipelines as mario
        assert not any(m.split(".")[0] in ("dask", "distributed", "h5py") for m in sys.modules)

        import tempfile
        from sklearn.preprocessing import FunctionTransformer
        samples = [mario.Sample(np.ones(2) * i, key=str(i)) for i in range(3)]
        with tempfile.TemporaryDirectory() as d:
            wrapper = mario.CheckpointWrapper(
                mario.SampleWrapper(FunctionTransformer(np.sqrt)), d, extension=".npy",
                save_func=lambda x, p: np.save(p, x), load_func=np.load)
            wrapper.transform(samples)
            again = wrapper.transform(samples)
            assert isinstance(again[2], mario.DelayedSample) and again[2].data[0] > 1.41
        try:
            mario.DaskWrapper(FunctionTransformer()).transform(samples)
        except ImportError as exc:
            assert "checkpoint_magic[dask]" in str(exc), exc
        else:
            raise AssertionError("DaskWrapper without dask must raise ImportError")
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# ------------------------------------------------------------------------------ local scheduler


def test_to_dask_bag_partitions_and_needs_no_fit():
    samples = make_samples(10)
    bag = mario.ToDaskBag(npartitions=4).fit(samples).transform(samples)
    assert isinstance(bag, dask.bag.Bag) and bag.npartitions == 4
    assert mario.ToDaskBag(partition_size=5).transform(samples).npartitions == 2
    assert mario.ToDaskBag().transform(bag) is bag
    assert get_tags(mario.ToDaskBag()).requires_fit is False
    with dask.config.set(scheduler="sync"):
        assert bag.compute() == samples
    with pytest.raises(ValueError, match="not both"):
        mario.ToDaskBag(npartitions=2, partition_size=2).transform(samples)
    with pytest.raises(ValueError, match="positive integer"):
        mario.ToDaskBag(npartitions=0).transform(samples)
    empty = mario.ToDaskBag().transform([])
    assert empty.npartitions == 1 and empty.compute(scheduler="sync") == []


def test_dask_wrapper_local_scheduler_matches_plain_run(tmp_path):
    log = str(tmp_path / "calls.log")
    samples = make_samples(7)
    plain = wrapped_pipeline(None, dask_=False)
    expected = plain.fit(samples).transform(samples)

    pipeline = wrapped_pipeline(log)
    with dask.config.set(scheduler="sync"):
        pipeline.fit(samples)
        result = pipeline.transform(samples)
        assert isinstance(result, dask.bag.Bag)
        assert result.compute() == expected
    centerer = pipeline.named_steps["centerer"]
    np.testing.assert_array_equal(centerer.estimator_.estimator_.estimator_.mean_, [3.0, 3.0])
    # fitted once; the stateless Doubler is never fitted (its fit raises)
    assert [c[0] for c in read_log(log)].count("fit") == 1
    assert not hasattr(pipeline.named_steps["doubler"], "estimator_")


def test_dask_wrapper_accepts_plain_lists_and_sees_through_tags():
    wrapper = mario.DaskWrapper(mario.SampleWrapper(Doubler()))
    assert get_tags(wrapper).requires_fit is False
    assert wrapper.fit(make_samples(2)) is wrapper and not hasattr(wrapper, "estimator_")
    with dask.config.set(scheduler="sync"):
        out = wrapper.transform(make_samples(3)).compute()
    np.testing.assert_array_equal(out[2].data, [4.0, 4.0])
    assert not hasattr(mario.DaskWrapper(Doubler()), "predict")


# ------------------------------------------------------------------------------ LocalCluster


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        resources={"GPU": 1},  # for the resource tags of DaskWrapper
    )
    client = distributed.Client(cluster)
    # the workers must import the test estimators (they inherit sys.path; check it)
    client.run(__import__, "tests.pipelines.helpers")
    try:
        yield client
    finally:
        client.close()
        cluster.close()


@pytest.mark.slow
def test_local_cluster_gives_equal_results_and_files(client, tmp_path):
    from distributed import get_task_stream

    samples = make_samples(12)
    plain_dir, dask_dir = tmp_path / "plain", tmp_path / "dask"
    plain = wrapped_pipeline(None, str(plain_dir / "features"), str(plain_dir / "models"), False)
    expected = plain.fit(samples).transform(samples)

    log = str(tmp_path / "cluster.log")
    pipeline = wrapped_pipeline(log, str(dask_dir / "features"), str(dask_dir / "models"))
    with get_task_stream(client) as stream:
        pipeline.fit(samples)
        result = pipeline.transform(samples).compute()
    workers = {task["worker"] for task in stream.data}
    assert len(workers) == 2  # the work was spread over both workers
    assert result == expected

    plain_files, dask_files = tree(plain_dir), tree(dask_dir)
    assert sorted(dask_files) == sorted(plain_files)
    assert sorted(dask_files) == sorted(
        [os.path.join("models", "centerer.pkl")]
        + [
            os.path.join("features", s, f"{i}.h5")
            for s in ("centerer", "doubler")
            for i in range(12)
        ]
    )
    from checkpoint_magic.pipelines.files import load_hdf5

    for name in plain_files:
        if name.endswith(".h5"):
            np.testing.assert_array_equal(
                load_hdf5(str(dask_dir / name)), load_hdf5(str(plain_dir / name))
            )
    calls = read_log(log)
    assert [c[0] for c in calls].count("fit") == 1
    assert sum(int(c[1]) for c in calls if c[0] == "transform") == 2 * 12  # each step once

    # a second run on the cluster loads the model and every feature: no estimator call
    again = wrapped_pipeline(log, str(dask_dir / "features"), str(dask_dir / "models"))
    again.fit(samples)
    assert again.transform(samples).compute() == expected
    assert read_log(log) == calls


@pytest.mark.slow
def test_local_cluster_recomputes_only_missing_keys(client, tmp_path):
    log = str(tmp_path / "keys.log")
    features = tmp_path / "features"
    pipeline = mario.wrap(
        ["checkpoint", "dask"],
        make_pipeline(KeyRecorder(log_path=log)),
        features_dir=str(features),
        npartitions=2,
    )
    samples = make_samples(6)
    first = pipeline.transform(samples).compute()
    os.remove(features / "keyrecorder" / "4.h5")
    second = pipeline.transform(samples).compute()
    assert second == first
    recomputed = [c[1:] for c in read_log(log)][-1]
    assert recomputed == ["4"]
    assert sorted(os.listdir(features / "keyrecorder")) == [f"{i}.h5" for i in range(6)]


@pytest.mark.slow
def test_local_cluster_fit_on_dask_arrays(client, tmp_path):
    samples = [mario.Sample(np.full(3, float(i)), key=str(i), target=i) for i in range(10)]
    model = str(tmp_path / "model.pkl")
    pipeline = mario.wrap(
        ["sample", "checkpoint", "dask"],
        make_pipeline(DaskArraySum()),
        model_path=str(tmp_path),
        fit_extra_arguments=[("y", "target")],
        npartitions=3,
    )
    pipeline.fit(samples)
    fitted = mario.getattr_nested(pipeline.steps[1][1], "model_")
    np.testing.assert_array_equal(fitted, np.full(3, 45.0))
    assert mario.getattr_nested(pipeline.steps[1][1], "n_targets_") == 10
    assert os.path.isfile(os.path.join(str(tmp_path), "daskarraysum.pkl")) and not os.path.exists(
        model
    )
    out = pipeline.transform(samples).compute()
    np.testing.assert_array_equal(out[2].data, np.full(3, 47.0))


@pytest.mark.slow
def test_local_cluster_resource_tags_restrict_where_tasks_run(client):
    import distributed

    samples = make_samples(6)

    def tagged(tag):
        return mario.wrap(
            ["sample", "dask"], make_pipeline(Doubler()), transform_tag=tag, npartitions=2
        )

    pipeline = tagged("GPU")
    bag = pipeline.transform(samples)
    assert mario.dask_tags(pipeline) == {tuple(bag.__dask_keys__()): {"GPU": 1}}
    # the workers have a GPU: the tagged tasks run there ...
    assert bag.compute(optimize_graph=False)[5].data.tolist() == [10.0, 10.0]
    assert mario.compute_with_progress(bag, progress=False)[5].data.tolist() == [10.0, 10.0]
    # ... and a resource no worker has keeps them waiting: the tags reach the scheduler
    future = client.compute(tagged("TPU").transform(samples), optimize_graph=False)
    with pytest.raises(distributed.TimeoutError):
        future.result(timeout=1)
    future.cancel()


@pytest.mark.slow
def test_local_cluster_fit_tag(client):
    wrapper = mario.DaskWrapper(mario.SampleWrapper(Centerer()), fit_tag="GPU")
    wrapper.fit(mario.ToDaskBag(npartitions=2).transform(make_samples(4)))
    np.testing.assert_array_equal(wrapper.estimator_.estimator_.mean_, [1.5, 1.5])
    assert list(mario.dask_tags(wrapper).values()) == [{"GPU": 1}]


@pytest.mark.slow
def test_local_cluster_compute_with_progress(client, capsys):
    bag = mario.wrap(["sample", "dask"], make_pipeline(Doubler()), npartitions=3).transform(
        make_samples(6)
    )
    out = mario.compute_with_progress(bag, progress=True, desc="doubling")
    assert [s.data[0] for s in out] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    err = capsys.readouterr().err
    assert "doubling" in err and "/3 [" in err
