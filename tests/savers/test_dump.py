"""Tests of checkpoint_magic.savers.dump: estimator trees through savers, setup on first use, fresh processes."""

from __future__ import annotations

import json
import multiprocessing
import os
from unittest import mock

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

import checkpoint_magic
from checkpoint_magic.exceptions import CheckpointError, InvalidArgumentError, StoreFormatError
from checkpoint_magic.savers.dump import INDEX_NAME, dump, load, loaded, setup_pending, teardown

events: list[str] = []


class Squares(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.mean_ = np.asarray(X).mean(axis=0)
        return self

    def transform(self, X):
        return (np.asarray(X) - self.mean_) ** 2


class QueueStep(BaseEstimator, TransformerMixin):
    """A step holding a multiprocessing.Queue, built by setup() and released by teardown()."""

    def __init__(self, parent=None):
        self.parent = parent

    def setup(self):
        if getattr(self, "queue", None) is None:
            self.queue = multiprocessing.Queue()
            events.append("setup")
        return self

    def teardown(self):
        if getattr(self, "queue", None) is not None:
            self.queue.close()
            self.queue.join_thread()
            self.queue = None
            events.append("teardown")

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        self.queue.put(len(X))
        return np.asarray(X)[: self.queue.get(timeout=10)]


@pytest.fixture(autouse=True)
def _events():
    events.clear()
    yield
    events.clear()


def _data():
    X = np.random.RandomState(0).normal(size=(30, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 3.0


@pytest.fixture
def fitted():
    X, y = _data()
    queue_step = QueueStep().setup()
    pipe = Pipeline(
        [
            ("ct", ColumnTransformer([("num", StandardScaler(), [0, 1]), ("sq", Squares(), [2])])),
            ("union", FeatureUnion([("scale", StandardScaler()), ("squares", Squares())])),
            ("queue", queue_step),
            ("model", TransformedTargetRegressor(regressor=LinearRegression())),
        ]
    ).fit(X, y)
    events.clear()
    yield pipe, X
    for step in (queue_step, *_queue_steps_in(pipe)):
        step.teardown()


def _queue_steps_in(pipe):
    return [s for _, s in pipe.steps if isinstance(s, QueueStep)]


def test_every_step_goes_through_its_saver_and_sets_up_on_first_use(fitted, tmp_path):
    pipe, X = fitted
    expected = pipe.predict(X)
    path = dump(pipe, tmp_path / "model", teardown=False)
    index = json.loads((path / INDEX_NAME).read_text())
    labels = {info["label"]: info for info in index["nodes"].values()}
    for label in (
        "ct",
        "num",
        "sq",
        "union",
        "scale",
        "squares",
        "queue",
        "model",
        "regressor",
        "regressor_",
    ):
        assert label in labels, label
    assert labels["queue"]["saver"] == "checkpoint_magic.savers.StripUnpicklableSaver"
    assert labels["num"]["saver"] == "checkpoint_magic.savers.SklearnSaver"
    assert sorted(p.name for p in (path / "steps").iterdir()) == sorted(index["nodes"])
    assert events == []  # teardown=False

    restored = load(path)
    step = restored.named_steps["queue"]
    assert step.queue is None and setup_pending(step)
    np.testing.assert_allclose(restored.predict(X), expected)
    assert events == ["setup"] and not setup_pending(step)
    assert restored.named_steps["queue"] is step
    restored.named_steps["queue"].teardown()


def test_dump_tears_steps_down_and_the_live_pipeline_sets_up_again(fitted, tmp_path):
    pipe, X = fitted
    expected = pipe.predict(X)
    dump(pipe, tmp_path / "model")
    step = pipe.named_steps["queue"]
    assert events == ["teardown"] and step.queue is None and setup_pending(step)
    np.testing.assert_allclose(pipe.predict(X), expected)
    assert events == ["teardown", "setup"]
    np.testing.assert_allclose(checkpoint_magic.load(tmp_path / "model").predict(X), expected)


def test_loaded_context_manager_and_teardown(fitted, tmp_path):
    pipe, X = fitted
    dump(pipe, tmp_path / "model")
    events.clear()
    with loaded(tmp_path / "model") as restored:
        restored.predict(X)
        step = restored.named_steps["queue"]
    assert events == ["setup", "teardown"] and step.queue is None
    restored.predict(X)
    teardown(restored)
    assert events == ["setup", "teardown", "setup", "teardown"]
    teardown(restored)  # nothing set up: nothing to do
    assert events[-1] == "teardown" and len(events) == 4


def test_top_level_exports(tmp_path):
    assert checkpoint_magic.load is load
    # the top-level name is the function, whatever was imported before
    path = checkpoint_magic.dump({"x": 1}, tmp_path / "d")
    assert checkpoint_magic.load(path) == {"x": 1}
    assert "dump" in checkpoint_magic.__all__ and "load" in checkpoint_magic.__all__


def test_a_dump_replaces_an_earlier_one_and_refuses_other_directories(tmp_path):
    first = dump(StandardScaler().fit([[0.0], [2.0]]), tmp_path / "m")
    dump(StandardScaler().fit([[0.0], [4.0]]), first)
    assert load(first).mean_.tolist() == [2.0]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no leftovers
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="not a checkpoint_magic dump"):
        dump([1], other)
    assert (other / "keep.txt").exists()
    with pytest.raises(InvalidArgumentError, match="not a checkpoint_magic dump"):
        load(other)


def test_a_newer_format_is_refused(tmp_path):
    path = dump({"a": 1}, tmp_path / "d")
    index = json.loads((path / INDEX_NAME).read_text())
    index["format"] = 99
    (path / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(StoreFormatError, match="format 99"):
        load(path)


def _damage_index(path, damage):
    text = (path / INDEX_NAME).read_text()
    if callable(damage):
        index = json.loads(text)
        damage(index)
        text = json.dumps(index)
    else:
        text = damage
    (path / INDEX_NAME).write_text(text)


def _drop(key):
    return lambda index: index.pop(key)


def _first_node(change):
    return lambda index: change(index["nodes"][index["root"]])


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ('{"format": 1, "root": "000-di', "not valid JSON"),
        ("[1, 2]", "format None"),
        (_drop("nodes"), "no 'root' step or no 'nodes'"),
        (_drop("root"), "no 'root' step or no 'nodes'"),
        (lambda index: index.update(root="999-gone"), "missing or cyclic"),
        (lambda index: index.update(nodes={index["root"]: "text"}), "no saver for step"),
        (_first_node(lambda node: node.pop("saver")), "no saver for step"),
        (
            lambda index: index.update(nodes={"../x": {"saver": "s"}}, root="../x"),
            "not a file of the dump",
        ),
        (_first_node(lambda node: node.update(saver_pickle="/etc/x")), "not a file of the dump"),
    ],
)
def test_a_damaged_index_is_a_store_format_error(tmp_path, damage, message):
    path = dump({"a": np.arange(3)}, tmp_path / "d")
    if message == "not a file of the dump":
        # saver_pickle is read only for a saver that is not found here: name a missing one
        index = json.loads((path / INDEX_NAME).read_text())
        index["nodes"][index["root"]]["saver"] = "no.such.Saver"
        (path / INDEX_NAME).write_text(json.dumps(index))
    _damage_index(path, damage)
    with pytest.raises(StoreFormatError, match=message):
        load(path)


def test_a_missing_step_directory_or_file_is_a_store_format_error(tmp_path):
    path = dump(StandardScaler().fit([[0.0], [2.0]]), tmp_path / "d")
    (step_dir,) = (path / "steps").iterdir()
    (step_file,) = [f for f in step_dir.iterdir() if f.suffix == ".pkl"]
    step_file.unlink()
    with pytest.raises(StoreFormatError, match="is missing"):
        load(path)
    for f in step_dir.iterdir():
        f.unlink()
    step_dir.rmdir()
    with pytest.raises(StoreFormatError, match="is missing"):
        load(path)


def test_a_failed_replacement_keeps_the_earlier_dump(tmp_path):
    first = dump(StandardScaler().fit([[0.0], [2.0]]), tmp_path / "m")
    real_replace = os.replace

    def failing(src, dst):
        if ".tmp-" in os.fspath(src):
            raise OSError("disk gone")
        return real_replace(src, dst)

    with (
        mock.patch("checkpoint_magic.savers.dump.os.replace", side_effect=failing),
        pytest.raises(OSError, match="disk gone"),
    ):
        dump(StandardScaler().fit([[0.0], [4.0]]), first)
    assert load(first).mean_.tolist() == [1.0]
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no leftovers


def test_a_step_referring_back_to_its_pipeline_is_a_clear_error(tmp_path):
    step = QueueStep()
    pipe = Pipeline([("queue", step)])
    step.parent = pipe
    with pytest.raises(CheckpointError, match="cycle"):
        dump(pipe, tmp_path / "d", teardown=False)
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------ classes without source, fresh processes

PRODUCER = """
import json, multiprocessing, os
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler
import checkpoint_magic
from checkpoint_magic.savers import Saver, register_saver

def centred_square(X, mean):          # a helper the class calls: travels with it
    return (np.asarray(X) - mean) ** 2

class Squares(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.mean_ = np.asarray(X).mean(axis=0)
        return self
    def transform(self, X):
        return centred_square(X, self.mean_)

class QueueStep(BaseEstimator, TransformerMixin):
    def setup(self):
        if getattr(self, "queue", None) is None:
            self.queue = multiprocessing.Queue()
        return self
    def fit(self, X, y=None):
        return self
    def transform(self, X):
        self.queue.put(len(X))
        return np.asarray(X)[: self.queue.get(timeout=10)]

class Shift(BaseEstimator, TransformerMixin):
    def fit(self, X, y=None):
        self.offset_ = 0.25
        return self
    def transform(self, X):
        return np.asarray(X) + self.offset_

class ShiftSaver(Saver):               # a user saver: must travel with the dump too
    def can_save(self, obj):
        return isinstance(obj, Shift)
    def save(self, obj, path):
        with open(os.path.join(path, "offset.txt"), "w") as f:
            f.write(repr(obj.offset_))
    def load(self, path):
        step = Shift()
        with open(os.path.join(path, "offset.txt")) as f:
            step.offset_ = float(f.read())
        return step

register_saver(ShiftSaver(), store=False)
X = np.random.RandomState(0).normal(size=(40, 3))
y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(int)
pipe = Pipeline([
    ("features", FeatureUnion([("squares", Squares()), ("scale", StandardScaler())])),
    ("queue", QueueStep().setup()),
    ("shift", Shift()),
    ("model", LogisticRegression()),
]).fit(X, y)
checkpoint_magic.dump(pipe, "model", teardown=False)
with open("expected.json", "w") as f:
    json.dump({"X": X.tolist(), "expected": pipe.predict_proba(X).tolist()}, f)
"""

CONSUMER = """
import json, sys
import numpy as np
import checkpoint_magic
from checkpoint_magic.savers import registered_savers

assert not any(type(s).__name__ == "ShiftSaver" for s in registered_savers())
pipe = checkpoint_magic.load("model")
with open("expected.json") as f:
    data = json.load(f)
queue_step = pipe.named_steps["queue"]
assert queue_step.queue is None, "setup() runs on first use, not before"
np.testing.assert_allclose(pipe.predict_proba(np.array(data["X"])), data["expected"])
assert type(queue_step.queue).__name__ == "Queue"
squares = pipe.named_steps["features"].transformer_list[0][1]
assert type(squares).__name__ == "Squares" and not hasattr(sys.modules["__main__"], "Squares")
print("loaded without source:", type(squares).__module__)
"""


SCRIPT_PRODUCER = """
import json, multiprocessing, os
import numpy as np
import checkpoint_magic
from checkpoint_magic.savers import Saver, register_saver

def centred_square(X, mean):          # a helper the classes call: travels with them
    return (np.asarray(X) - mean) ** 2

class Step:                           # Neuraxle-style steps, no scikit-learn
    def fit(self, X, y=None):
        return self
    def transform(self, X):
        return X

class Squares(Step):
    def fit(self, X, y=None):
        self.mean_ = np.asarray(X).mean(axis=0)
        return self
    def transform(self, X):
        return np.hstack([X, centred_square(X, self.mean_)])

class QueueStep(Step):
    def __init__(self):
        self.queue = multiprocessing.Queue()
    def setup(self):
        if self.queue is None:
            self.queue = multiprocessing.Queue()
    def transform(self, X):
        self.queue.put(len(X))
        return np.asarray(X)[: self.queue.get(timeout=10)]

class Shift(Step):
    def fit(self, X, y=None):
        self.offset_ = 0.25
        return self
    def transform(self, X):
        return np.asarray(X) + self.offset_

class ShiftSaver(Saver):               # a user saver: must travel with the dump too
    def can_save(self, obj):
        return isinstance(obj, Shift)
    def save(self, obj, path):
        with open(os.path.join(path, "offset.txt"), "w") as f:
            f.write(repr(obj.offset_))
    def load(self, path):
        step = Shift()
        with open(os.path.join(path, "offset.txt")) as f:
            step.offset_ = float(f.read())
        return step

class Linear(Step):
    def fit(self, X, y=None):
        self.coef_ = np.linalg.lstsq(np.asarray(X), y, rcond=None)[0]
        return self
    def predict(self, X):
        return np.asarray(X) @ self.coef_

class MiniPipeline:
    def __init__(self, steps):
        self.steps = steps
    def fit(self, X, y):
        for _, step in self.steps[:-1]:
            X = step.fit(X, y).transform(X)
        self.steps[-1][1].fit(X, y)
        return self
    def predict(self, X):
        for _, step in self.steps[:-1]:
            X = step.transform(X)
        return self.steps[-1][1].predict(X)

register_saver(ShiftSaver(), store=False)
X = np.random.RandomState(0).normal(size=(40, 3))
y = X @ np.array([1.0, -2.0, 0.5])
pipe = MiniPipeline([("squares", Squares()), ("queue", QueueStep()), ("shift", Shift()), ("model", Linear())])
pipe.fit(X, y)
checkpoint_magic.dump(pipe, "model")
with open("expected.json", "w") as f:
    json.dump({"X": X.tolist(), "expected": pipe.predict(X).tolist()}, f)
"""

SCRIPT_CONSUMER = """
import json, sys
import numpy as np
import checkpoint_magic
from checkpoint_magic.savers import registered_savers

assert not any(type(s).__name__ == "ShiftSaver" for s in registered_savers())
pipe = checkpoint_magic.load("model")
with open("expected.json") as f:
    data = json.load(f)
queue_step = dict(pipe.steps)["queue"]
assert queue_step.queue is None, "setup() runs on first use, not before"
np.testing.assert_allclose(pipe.predict(np.array(data["X"])), data["expected"])
assert type(queue_step.queue).__name__ == "Queue"
assert type(pipe).__name__ == "MiniPipeline" and not hasattr(sys.modules["__main__"], "MiniPipeline")
print("loaded without source:", type(pipe).__module__, type(dict(pipe.steps)["shift"]).__name__)
"""


def test_a_pipeline_of_main_classes_loads_in_a_process_without_their_source(script, tmp_path):
    script.run(SCRIPT_PRODUCER, "producer.py")
    (tmp_path / "producer.py").unlink()  # the consumer cannot import it
    index = json.loads((tmp_path / "model" / INDEX_NAME).read_text())
    assert {info["label"] for info in index["nodes"].values()} >= {
        "squares",
        "queue",
        "shift",
        "model",
    }
    out = script.run(SCRIPT_CONSUMER, "consumer.py").stdout
    assert "loaded without source: __main__ Shift" in out


def test_a_pipeline_defined_in_a_notebook_loads_in_a_plain_python_process(
    script, tmp_path, tmp_path_factory
):
    nbhelpers = pytest.importorskip("tests.nbhelpers", reason="needs nbclient, nbformat and ipykernel")
    ksm = nbhelpers.write_kernelspec(tmp_path_factory.mktemp("kernelspec"))
    nb = nbhelpers.execute(
        nbhelpers.notebook([PRODUCER, "print(type(pipe).__name__)"]), ksm, cwd=tmp_path, timeout=60
    )
    assert nbhelpers.stream_text(nb.cells[-1]).strip() == "Pipeline"
    assert (tmp_path / "model" / INDEX_NAME).is_file()
    out = script.run(CONSUMER, "consumer.py").stdout
    assert "loaded without source: __main__" in out
