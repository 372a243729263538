"""Tests of checkpoint_magic.savers.builtin: the saver registry, the store adapter, objects pickle cannot handle."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from checkpoint_magic.core.checkpointer import Checkpointer
from checkpoint_magic.exceptions import InvalidArgumentError
from checkpoint_magic.savers import (
    NumpySaver,
    PandasSaver,
    PickleSaver,
    Saver,
    SklearnSaver,
    StripUnpicklableSaver,
    find_saver,
    register_saver,
    registered_savers,
    saver_for,
    strip_unpicklable,
    unregister_saver,
)
from checkpoint_magic.savers import builtin as savers_module
from checkpoint_magic.steps.runner import StepCheckpoint
from checkpoint_magic.store.codecs import serializers
from checkpoint_magic.store.core import Store

setups: list[int] = []


class QueueHolder:
    """Holds a multiprocessing.Queue (unpicklable); setup() rebuilds it."""

    def __init__(self, data):
        self.data = data
        self.queue = None
        self.setup()

    def setup(self):
        if self.queue is None:
            self.queue = multiprocessing.Queue()
            setups.append(id(self))
        return self

    def roundtrip(self, item):
        self.queue.put(item)
        return self.queue.get(timeout=10)

    def close(self):
        if self.queue is not None:
            self.queue.close()
            self.queue.join_thread()


@pytest.fixture
def holder():
    obj = QueueHolder({"weights": np.arange(5.0), "name": "w"})
    yield obj
    obj.close()


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "store")


def test_a_queue_holder_is_stored_and_restored_through_a_saver(store, holder):
    with pytest.raises(Exception):  # noqa: B017 - what the saver is for
        pickle.dumps(holder)
    record = store.put_value(holder)
    assert record["codec"] == "saver:checkpoint_magic.savers.StripUnpicklableSaver"
    setups.clear()
    restored = store.get_value(record)
    try:
        assert setups == [id(restored)]  # setup() rebuilt the queue
        assert restored.queue is not holder.queue
        assert restored.roundtrip("ping") == "ping"
        np.testing.assert_array_equal(restored.data["weights"], np.arange(5.0))
        assert holder.roundtrip("still mine") == "still mine"  # the original was not modified
    finally:
        restored.close()


def test_a_queue_holder_through_a_checkpointer(tmp_path, holder):
    cp = Checkpointer("function", "tests.queue_holder", store=tmp_path / "s")
    assert cp.save("code", {}, {"return": holder}, duration=0.1)
    hit = cp.load("code", {})
    assert hit is not None
    restored = hit.outputs["return"]
    try:
        assert restored.roundtrip(3) == 3 and restored.data["name"] == "w"
    finally:
        restored.close()


def test_a_queue_holder_as_a_step_output(tmp_path):
    class Steps(StepCheckpoint):
        def step_1(self, outputs):
            return QueueHolder([1, 2])

        def step_2(self, outputs):
            holder = outputs["step_1"]
            result = holder.roundtrip(sum(holder.data))
            holder.close()
            return result

    assert Steps(name="q", checkpoint_folder=tmp_path).run() == 3
    run = Steps(name="q", checkpoint_folder=tmp_path)
    assert run.run(start_from=2) == 3
    assert run.last_run.loaded == ["step_1"]
    restored = run.load_outputs()["step_1"]
    try:
        assert restored.roundtrip("x") == "x"
    finally:
        restored.close()


def test_strip_unpicklable_records_dropped_names_and_resets_is_initialized():
    class Step:
        def __init__(self):
            self.lock = threading.Lock()
            self.values = [1, 2]
            self.is_initialized = True

        def setup(self):
            self.lock = threading.Lock()
            self.is_initialized = True

    step = Step()
    payload, dropped = strip_unpicklable(step)
    assert dropped == ["lock"]
    clone = pickle.loads(payload)
    assert clone.lock is None and clone.values == [1, 2] and clone.is_initialized is False
    assert step.is_initialized is True and step.lock is not None


def test_strip_saver_without_setup_call(tmp_path):
    step = QueueHolder(1)
    try:
        StripUnpicklableSaver().save(step, str(tmp_path))
        setups.clear()
        lazy = StripUnpicklableSaver(call_setup=False).load(str(tmp_path))
        assert lazy.queue is None and setups == []
        eager = StripUnpicklableSaver().load(str(tmp_path))
        assert eager.queue is not None
        eager.close()
    finally:
        step.close()


class TreeSaver(Saver):
    """Writes several files, a sub-directory, an empty directory and a large file; checks links on load."""

    name = "tests.TreeSaver"
    seen_links: list[int] = []

    def can_save(self, obj):
        return isinstance(obj, dict) and obj.get("kind") == "tree"

    def save(self, obj, path):
        Path(path, "meta.txt").write_text(obj["label"])
        os.makedirs(os.path.join(path, "sub"))
        np.save(os.path.join(path, "sub", "big.npy"), obj["big"])
        os.makedirs(os.path.join(path, "empty"))

    def load(self, path):
        assert os.path.isdir(os.path.join(path, "empty"))
        big = os.path.join(path, "sub", "big.npy")
        TreeSaver.seen_links.append(os.stat(big).st_nlink)
        return {"kind": "tree", "label": Path(path, "meta.txt").read_text(), "big": np.load(big)}


def test_a_registered_saver_is_used_by_the_store_one_blob_per_file(store):
    saver = register_saver(TreeSaver())
    try:
        assert saver in registered_savers() and find_saver("tests.TreeSaver") is saver
        value = {"kind": "tree", "label": "hello", "big": np.arange(300_000, dtype=np.int64)}
        record = store.put_value(value)
        assert record["codec"] == "saver:tests.TreeSaver"
        assert record["meta"]["files"] == ["meta.txt", "sub/big.npy"]
        assert record["meta"]["dirs"] == ["empty"]
        assert len(record["blobs"]) == 2
        restored = store.get_value(record)
        assert restored["label"] == "hello"
        np.testing.assert_array_equal(restored["big"], value["big"])
        assert TreeSaver.seen_links[-1] == 1  # a private copy, never a link to the shared blob
        assert store.put_value({"kind": "other"})["codec"] == "pickle"
    finally:
        unregister_saver(saver)
    assert store.put_value(value)["codec"] == "pickle"
    assert find_saver("tests.TreeSaver") is None


class ScribblingSaver(Saver):
    """Its load opens the files it is given for writing ("r+" and "a"), as some libraries do."""

    name = "tests.ScribblingSaver"

    def can_save(self, obj):
        return isinstance(obj, dict) and obj.get("kind") == "scribble"

    def save(self, obj, path):
        np.save(os.path.join(path, "big.npy"), obj["big"])
        Path(path, "small.txt").write_text(obj["label"])

    def load(self, path):
        big = np.load(os.path.join(path, "big.npy"))
        with open(os.path.join(path, "big.npy"), "r+b") as f:
            f.seek(-8, os.SEEK_END)
            f.write(b"\xff" * 8)
        with open(os.path.join(path, "big.npy"), "ab") as f:
            f.write(b"appended")
        label = Path(path, "small.txt").read_text()
        with open(os.path.join(path, "small.txt"), "a") as f:
            f.write("!")
        return {"kind": "scribble", "label": label, "big": big}


def test_a_saver_that_writes_to_its_files_on_load_never_changes_the_store(store):
    saver = register_saver(ScribblingSaver())
    try:
        value = {"kind": "scribble", "label": "x", "big": np.arange(100_000, dtype=np.int64)}
        record = store.put_value(value)
        assert record["codec"] == "saver:tests.ScribblingSaver"
        blobs = {r["digest"]: store.blob_path(r["digest"]).read_bytes() for r in record["blobs"]}
        for _ in range(3):  # a modified blob would be a CorruptBlobError on the next load
            restored = store.get_value(record)
            assert restored["label"] == "x"
            np.testing.assert_array_equal(restored["big"], value["big"])
        assert {d: store.blob_path(d).read_bytes() for d in blobs} == blobs
    finally:
        unregister_saver(saver)


def test_savers_torch_imports_first_in_a_fresh_process_and_names_are_kept():
    code = (
        "import checkpoint_magic.savers.torch as t\n"
        "from checkpoint_magic import savers\n"
        "from checkpoint_magic.savers import base as _saver_base, dump as fulldump\n"
        "from checkpoint_magic.store.codecs import saver_codec as _saver_codec\n"
        "from checkpoint_magic.savers import Saver, TorchModuleSaver, saver_name\n"
        "assert TorchModuleSaver is t.TorchModuleSaver and issubclass(TorchModuleSaver, Saver)\n"
        "assert fulldump.class_path is _saver_codec.class_path is _saver_base.class_path\n"
        "print(saver_name(TorchModuleSaver()), saver_name(t.TorchTensorSaver()),\n"
        "      saver_name(savers.StripUnpicklableSaver()), saver_name(Saver()))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "checkpoint_magic.savers.TorchModuleSaver",
        "checkpoint_magic.savers.TorchTensorSaver",
        "checkpoint_magic.savers.StripUnpicklableSaver",
        "checkpoint_magic.savers.Saver",
    ]
    collect = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--doctest-modules",
            os.path.join(os.path.dirname(savers_module.__file__), "torch.py"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert collect.returncode == 0, collect.stdout + collect.stderr


def test_a_corrupt_saver_blob_is_a_miss_with_a_warning(tmp_path):
    from checkpoint_magic.exceptions import CorruptEntryWarning

    saver = register_saver(TreeSaver())
    try:
        cp = Checkpointer("function", "tests.tree", store=tmp_path / "s")
        value = {"kind": "tree", "label": "x", "big": np.arange(100_000)}
        assert cp.save("c", {}, {"return": value}, duration=0.0)
        record = cp.store.read_entry("tests.tree", cp.key("c", {}))["outputs"]["return"]
        blob = cp.store.blob_path(record["blobs"][1]["digest"])
        data = bytearray(blob.read_bytes())
        data[-1] ^= 0xFF
        blob.write_bytes(bytes(data))
        with pytest.warns(CorruptEntryWarning):
            assert cp.load("c", {}) is None
    finally:
        unregister_saver(saver)


def test_registering_a_non_saver_is_a_clear_error():
    with pytest.raises(InvalidArgumentError, match="can_save"):
        register_saver(object())


def test_a_failing_can_save_is_skipped_with_a_log_line(store, caplog):
    class Broken(Saver):
        name = "tests.Broken"

        def can_save(self, obj):
            raise RuntimeError("boom")

    saver = register_saver(Broken())
    try:
        with caplog.at_level(logging.WARNING, logger="checkpoint_magic.savers"):
            assert store.put_value([1])["codec"] == "pickle"
        assert "boom" in caplog.text
    finally:
        unregister_saver(saver)


def test_the_store_keeps_its_fast_codecs_for_numpy_pandas_and_sklearn():
    from sklearn.linear_model import LinearRegression

    assert serializers.codec_for(np.zeros(3)).name == "npy"
    assert serializers.codec_for(pd.DataFrame({"a": [1]})).name == "pickle"
    assert serializers.codec_for(LinearRegression()).name == "pickle"


@pytest.mark.parametrize(
    "value, saver_type",
    [
        (np.arange(6).reshape(2, 3), NumpySaver),
        (pd.DataFrame({"a": [1, 2], "s": ["x", None]}, index=["i", "j"]), PandasSaver),
        (pd.Series([1.5, 2.5], name="s"), PandasSaver),
        ({"any": (1, "thing")}, PickleSaver),
    ],
)
def test_builtin_savers_round_trip(tmp_path, value, saver_type):
    saver = saver_for(value)
    assert type(saver) is saver_type
    saver.save(value, str(tmp_path))
    restored = saver.load(str(tmp_path))
    if isinstance(value, np.ndarray):
        np.testing.assert_array_equal(restored, value)
    elif isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(restored, value)
    elif isinstance(value, pd.Series):
        pd.testing.assert_series_equal(restored, value)
    else:
        assert restored == value


def test_sklearn_saver_round_trip_and_version_check(tmp_path, caplog):
    from sklearn.linear_model import LinearRegression

    model = LinearRegression().fit([[0.0], [1.0]], [0.0, 2.0])
    saver = saver_for(model)
    assert type(saver) is SklearnSaver
    saver.save(model, str(tmp_path))
    assert saver.load(str(tmp_path)).predict([[2.0]]) == pytest.approx([4.0])
    (tmp_path / "sklearn.json").write_text('{"sklearn": "0.0.1"}')
    with caplog.at_level(logging.WARNING, logger="checkpoint_magic.savers"):
        saver.load(str(tmp_path))
    assert "0.0.1" in caplog.text


# ------------------------------------------------------------------ PyTorch (skipped without torch)


def test_torch_module_and_tensor_round_trip(store, tmp_path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(3, 3)
            self.b = torch.nn.Linear(3, 3)
            self.b.weight = self.a.weight  # tied
            self.register_buffer("steps", torch.tensor([7]))
            self.register_buffer("scratch", torch.ones(2), persistent=False)

        def forward(self, x):
            return self.b(self.a(x))

    net = Net()
    record = store.put_value(net)
    assert record["codec"] == "saver:checkpoint_magic.savers.TorchModuleSaver"
    restored = store.get_value(record)
    x = torch.randn(4, 3)
    assert torch.equal(restored(x), net(x))
    assert restored.b.weight is restored.a.weight
    assert isinstance(restored.a.weight, torch.nn.Parameter) and restored.a.weight.requires_grad
    assert torch.equal(restored.steps, net.steps) and torch.equal(restored.scratch, net.scratch)
    tensor = torch.arange(6.0).reshape(2, 3)
    record = store.put_value(tensor)
    assert record["codec"] == "saver:checkpoint_magic.savers.TorchTensorSaver"
    assert torch.equal(store.get_value(record), tensor)
    assert set(os.listdir(_saved(net, tmp_path / "dir"))) >= {"state_dict.pt", "skeleton.pkl"}


def _saved(obj, path: Path) -> Path:
    path.mkdir()
    saver_for(obj).save(obj, str(path))
    return path
