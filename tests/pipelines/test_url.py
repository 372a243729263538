"""``CheckpointWrapper`` with ``features_dir`` / ``model_path`` at a URL (fsspec).

Every behaviour runs against ``memory://`` (in-process) and a real S3 server (moto, through
s3fs and the ``s3_store`` fixture). The seed example is also run twice in fresh processes
against S3.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import pytest

from checkpoint_magic.pipelines import CheckpointWrapper, Sample, SampleWrapper
from checkpoint_magic.pipelines.producer import DIGEST_BYTES, StaleCheckpointWarning
from checkpoint_magic.pipelines.remote import url_fs

from .helpers import AddOffset, Centerer, read_log

SEED_ARGS = [("sample_specific_offsets", "offset")]


@pytest.fixture(params=["memory", "s3"])
def prefix(request: pytest.FixtureRequest) -> str:
    """A fresh parent prefix: ``memory://...`` or ``s3://bucket/<test>-<id>``."""
    if request.param == "memory":
        return f"memory://checkpoint-magic-tests/{uuid.uuid4().hex[:12]}"
    return str(request.getfixturevalue("s3_store"))


def seed_samples() -> list[Sample]:
    X = np.zeros((3, 2))
    offsets = np.arange(3).reshape((3, 1))
    return [Sample(x, offset=o, key=str(i)) for i, (x, o) in enumerate(zip(X, offsets, strict=True))]


def names_under(url: str) -> list[str]:
    """Relative names of every object under ``url``."""
    fs, root = url_fs(url)
    root = root.rstrip("/")
    return sorted(p[len(root) + 1 :] for p in fs.find(root))


def test_seed_example_twice_writes_three_files_and_computes_once(prefix, tmp_path):
    log = str(tmp_path / "calls.log")
    features = f"{prefix}/features"
    samples = seed_samples()
    first = CheckpointWrapper(SampleWrapper(AddOffset(log), SEED_ARGS), features_dir=features)
    out1 = first.transform(samples)
    assert names_under(features) == ["0.h5", "1.h5", "2.h5"]
    # a second wrapper (as a second run would build): nothing is computed, everything loads
    again = CheckpointWrapper(SampleWrapper(AddOffset(log), SEED_ARGS), features_dir=features)
    out2 = again.transform(samples)
    assert read_log(log) == [["transform", "3"]]
    assert names_under(features) == ["0.h5", "1.h5", "2.h5"]
    for a, b in zip(out1, out2, strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(out2[2].data, [2.0, 2.0])


def test_a_changed_parameter_recomputes_and_replaces(prefix, tmp_path):
    log = str(tmp_path / "calls.log")
    features = f"{prefix}/features"
    samples = [Sample(np.array([float(i), 1.0]), key=f"s{i}") for i in range(3)]

    def run(scale: float) -> list[Any]:
        wrapper = CheckpointWrapper(SampleWrapper(Centerer(scale, log)), features_dir=features)
        return np.array([s.data for s in wrapper.fit(samples).transform(samples)])

    base = run(1.0)
    np.testing.assert_array_equal(run(1.0), base)
    assert [c[0] for c in read_log(log)].count("transform") == 1
    with pytest.warns(StaleCheckpointWarning, match="scale"):
        doubled = run(2.0)
    assert [c[0] for c in read_log(log)].count("transform") == 2
    np.testing.assert_allclose(doubled, base * 2)
    np.testing.assert_array_equal(run(2.0), doubled)  # the replaced files are current
    assert [c[0] for c in read_log(log)].count("transform") == 2
    assert names_under(features) == ["s0.h5", "s1.h5", "s2.h5"]


def test_model_path_round_trips_a_fitted_model(prefix, tmp_path):
    log = str(tmp_path / "calls.log")
    model = f"{prefix}/models/centerer.pkl"
    samples = [Sample(np.array([float(i), 2.0 * i]), key=str(i)) for i in range(4)]

    def fit(scale: float) -> Any:
        wrapper = CheckpointWrapper(SampleWrapper(Centerer(scale, log)), model_path=model)
        return wrapper.fit(samples).estimator_

    fitted = fit(1.0)
    loaded = fit(1.0)
    assert [c[0] for c in read_log(log)] == ["fit"]
    assert loaded is not fitted
    np.testing.assert_array_equal(loaded.estimator_.mean_, [1.5, 3.0])
    assert names_under(f"{prefix}/models") == ["centerer.pkl"]
    with pytest.warns(StaleCheckpointWarning, match="scale"):
        fit(3.0)
    assert [c[0] for c in read_log(log)] == ["fit", "fit"]


def test_second_pass_is_one_small_ranged_read_per_sample(monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    features = f"memory://checkpoint-magic-tests/{uuid.uuid4().hex[:12]}/features"
    samples = seed_samples()
    wrapper = CheckpointWrapper(SampleWrapper(AddOffset(), SEED_ARGS), features_dir=features)
    wrapper.transform(samples)
    reads: list[tuple[Any, Any]] = []
    original = MemoryFileSystem.cat_file

    def counting(self: Any, path: str, start: Any = None, end: Any = None, **kw: Any) -> bytes:
        reads.append((start, end))
        return original(self, path, start=start, end=end, **kw)

    monkeypatch.setattr(MemoryFileSystem, "cat_file", counting)
    out = wrapper.transform(samples)
    assert reads == [(0, DIGEST_BYTES)] * 3  # nothing else until a value is used
    np.testing.assert_array_equal(out[1].data, [1.0, 1.0])
    assert len(reads) == 4  # the value is one download


def test_custom_save_and_load_funcs_keep_their_record_beside_the_file(tmp_path):
    log = str(tmp_path / "calls.log")
    features = f"memory://checkpoint-magic-tests/{uuid.uuid4().hex[:12]}/npy"
    samples = seed_samples()

    def make() -> CheckpointWrapper:
        return CheckpointWrapper(
            SampleWrapper(AddOffset(log), SEED_ARGS),
            features_dir=features,
            extension=".npy",
            save_func=lambda data, path: np.save(path, data),
            load_func=np.load,
        )

    make().transform(samples)
    out = make().transform(samples)
    assert read_log(log) == [["transform", "3"]]
    assert names_under(features) == [
        ".0.npy.producer", ".1.npy.producer", ".2.npy.producer", "0.npy", "1.npy", "2.npy"
    ]
    np.testing.assert_array_equal(out[2].data, [2.0, 2.0])


SEED_SCRIPT = """
import os
import numpy as np
from sklearn.base import TransformerMixin, BaseEstimator
import checkpoint_magic.pipelines as mario

class MyTransformer(TransformerMixin, BaseEstimator):
    def transform(self, X, sample_specific_offsets):
        print(f"Transforming {len(X)} samples ...")
        return np.array(X) + np.array(sample_specific_offsets)

    def fit(self, X):
        print("Fit was called!")
        return self

sample_transformer = mario.SampleWrapper(MyTransformer(), [("sample_specific_offsets", "offset")])
X = np.zeros((3, 2))
offsets = np.arange(3).reshape((3, 1))
samples = [mario.Sample(x, offset=o, key=str(i)) for i, (x, o) in enumerate(zip(X, offsets, strict=True))]
prefix = os.environ["SEED_PREFIX"]
mario.CheckpointWrapper(sample_transformer, model_path=prefix + "/model.pkl").fit(samples)
wrapper = mario.CheckpointWrapper(sample_transformer, features_dir=prefix + "/features")
print([s.data.tolist() for s in wrapper.transform(samples)])
"""


def test_seed_example_in_fresh_processes_against_s3(s3_store, script):
    def run() -> str:
        return script.run(SEED_SCRIPT, env={"SEED_PREFIX": s3_store}).stdout

    first = run()
    assert "Fit was called!" in first and "Transforming 3 samples ..." in first
    second = run()
    assert "Fit was called!" not in second and "Transforming" not in second
    expected = str([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    assert first.splitlines()[-1] == second.splitlines()[-1] == expected
    assert names_under(f"{s3_store}/features") == ["0.h5", "1.h5", "2.h5"]
    assert names_under(s3_store) == ["features/0.h5", "features/1.h5", "features/2.h5", "model.pkl"]


def test_an_unreachable_url_is_a_clear_error_and_a_failed_upload_a_warning(monkeypatch):
    from fsspec.implementations.memory import MemoryFileSystem

    from checkpoint_magic.exceptions import StoreWriteWarning
    from checkpoint_magic.store.backends.url import StoreUnreachableError

    features = f"memory://checkpoint-magic-tests/{uuid.uuid4().hex[:12]}/features"
    samples = seed_samples()
    wrapper = CheckpointWrapper(
        SampleWrapper(AddOffset(), SEED_ARGS), features_dir=features, attempts=2
    )

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError("connection refused")

    with monkeypatch.context() as patch:
        patch.setattr(MemoryFileSystem, "put_file", refuse)
        with pytest.warns(StoreWriteWarning, match="Could not save 3 of 3"):
            out = wrapper.transform(samples)
    np.testing.assert_array_equal(out[2].data, [2.0, 2.0])
    assert names_under(features) == []
    monkeypatch.setattr(MemoryFileSystem, "cat_file", refuse)
    with pytest.raises(StoreUnreachableError, match=r"0\.h5 cannot be reached.*AWS_ENDPOINT_URL"):
        wrapper.transform(samples)
