"""The Checkpointer's failure policy: store faults are warnings (persistent ones once per store and
process), values that would not come back as themselves are not stored, and a manifest is never
visible half-written."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import socket
import threading
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.exceptions import CheckpointWarning, StoreWriteWarning
from checkpoint_magic.store.backends import local as local_backend
from checkpoint_magic.store.core import Store
from checkpoint_magic.tools.maintenance import list_entries, verify


def _counted(store: Store, name: str = "t.f"):
    """A checkpointed function and the list of the calls that ran it (an ignored argument)."""
    calls: list[int] = []

    @checkpoint(store=store, name=name, ignore=["log"])
    def compute(n, log):
        log.append(n)
        return np.arange(n) * 2

    return (lambda n: compute(n, calls)), calls


def _calls_with_warnings(f, args):
    """Call ``f(a)`` for each ``a``; return the values and every warning they raised."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        values = [f(a) for a in args]
    return values, record


@contextlib.contextmanager
def _denied(root: Path, under: str = "", only: str | None = None):
    """Refuse access to ``root/under`` (the whole store if ``under`` is empty) with EACCES, as
    ``chmod 000`` would for a user who is not root (the tests run as root, where chmod does not)."""
    prefix = os.path.join(str(root), under) if under else str(root)
    real_open, real_stat, real_scandir, real_mkdir = os.open, os.stat, os.scandir, os.mkdir
    first = under.split("/")[0] if under else None

    def denied(path, dir_fd=None):
        if only is not None:  # one operation on one file
            return dir_fd is None and str(path) == prefix
        if dir_fd is not None:  # the backend walks folders relative to the root's descriptor
            return first is None or path == first
        return str(path) == prefix or str(path).startswith(prefix + os.sep)

    def fail(path):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    def guarded_open(path, flags, *args, dir_fd=None, **kwargs):
        if denied(path, dir_fd):
            fail(path)
        return real_open(path, flags, *args, dir_fd=dir_fd, **kwargs)

    def guarded_stat(path, *args, dir_fd=None, **kwargs):
        if only is None and denied(path, dir_fd):
            fail(path)
        return real_stat(path, *args, dir_fd=dir_fd, **kwargs)

    def guarded_scandir(path="."):
        if only is None and denied(path):
            fail(path)
        return real_scandir(path)

    def guarded_mkdir(path, *args, dir_fd=None, **kwargs):
        if only is None and denied(path, dir_fd):
            fail(path)
        return real_mkdir(path, *args, dir_fd=dir_fd, **kwargs)

    with (
        mock.patch("os.open", guarded_open),
        mock.patch("os.stat", guarded_stat),
        mock.patch("os.scandir", guarded_scandir),
        mock.patch("os.mkdir", guarded_mkdir),
    ):
        yield


def _blob_of(store: Store, n: int) -> str:
    [entry] = [e for e in list_entries(store) if len(e.blobs) and e.size >= n * 8]
    [digest] = entry.blobs
    return str(store.blob_path(digest))


@pytest.mark.parametrize(
    "fault",
    ["store unreadable", "entries unreadable", "manifest unreadable", "blob unreadable"],
)
def test_an_unreadable_store_warns_once_and_every_call_runs_uncached(tmp_path, fault):
    store = Store(tmp_path / "s")
    f, calls = _counted(store)
    f(30_000)  # a stored entry (one blob) the fault then hides
    target = {
        "store unreadable": {"under": ""},
        "entries unreadable": {"under": "entries"},
        "manifest unreadable": {"under": str(store.entry_path("t.f", list_entries(store)[0].key).relative_to(store.root)), "only": "open"},
        "blob unreadable": {"under": os.path.relpath(_blob_of(store, 30_000), store.root), "only": "open"},
    }[fault]
    with _denied(store.root, **target):
        values, record = _calls_with_warnings(f, [30_000, 30_000, 20_000, 30_000])
    for value, n in zip(values, [30_000, 30_000, 20_000, 30_000], strict=True):
        np.testing.assert_array_equal(value, np.arange(n) * 2)
    assert len(record) == 1, [str(w.message) for w in record]  # once per store and process
    assert issubclass(record[0].category, CheckpointWarning)
    assert "shown once per process" in str(record[0].message)
    assert record[0].filename == __file__  # attributed to the user's line
    assert calls == [30_000, 30_000, 30_000, 20_000, 30_000]  # every call ran: never a stale hit
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(f(30_000), np.arange(30_000) * 2)  # fixed: the store works again
    assert verify(store).problems == []


def test_a_store_path_that_is_a_regular_file_warns_once_and_leaves_the_file_alone(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a store")
    f, calls = _counted(Store(path))
    values, record = _calls_with_warnings(f, [10, 20_000, 10])
    assert [len(v) for v in values] == [10, 20_000, 10] and calls == [10, 20_000, 10]
    assert [w.category for w in record] == [StoreWriteWarning]
    assert "not a directory" in str(record[0].message)
    assert path.read_text() == "not a store"


def test_a_foreign_format_file_is_one_warning_not_an_exception(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "FORMAT").write_text("[[[[ this is some other tool's file")
    f, calls = _counted(Store(root))
    values, record = _calls_with_warnings(f, [10, 10])
    assert [len(v) for v in values] == [10, 10] and calls == [10, 10]
    assert len(record) == 1 and "not a checkpoint_magic FORMAT" in str(record[0].message)
    assert sorted(p.name for p in root.iterdir()) == ["FORMAT"]


def test_transient_faults_warn_on_every_call(tmp_path):
    """Only faults that persist are said once: a full disk is worth saying each time it bites."""
    store = Store(tmp_path / "s")
    f, _ = _counted(store)
    f(5)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch.object(local_backend, "write_full", full):
        values, record = _calls_with_warnings(f, [40_000, 50_000])
    assert [len(v) for v in values] == [40_000, 50_000]
    assert [w.category for w in record] == [StoreWriteWarning] * 2


# ---------------------------------------------------------------------------------------- round trip
def _stored_then_hit(store: Store, make):
    made: list[object] = []

    @checkpoint(store=store, name="t.rt", ignore=["log", "make"])
    def produce(i, log, make):
        log.append(i)
        return make()

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first, second = produce(1, made, make), produce(1, made, make)
    return first, second, made, record


def test_a_function_returning_an_open_file_gets_a_file_back_not_a_stringio(tmp_path):
    """cloudpickle stores a text file open for reading as its content: the hit returned an
    io.StringIO, silently. Now it is not stored: each call returns the real file, with a warning."""
    text = tmp_path / "data.txt"
    text.write_text("hello\n")
    store = Store(tmp_path / "s")
    opened: list[io.TextIOWrapper] = []

    def make():
        opened.append(open(text))  # noqa: SIM115 - the value under test is an open file
        return opened[-1]

    first, second, made, record = _stored_then_hit(store, make)
    try:
        assert type(first) is type(second) is io.TextIOWrapper and second.read() == "hello\n"
        assert made == [1, 1]
        assert [w.category for w in record] == [StoreWriteWarning] * 2
        assert "open file" in str(record[0].message)
        assert list_entries(store) == []
    finally:
        for f in opened:
            f.close()


@pytest.mark.parametrize(
    "make",
    [
        lambda: socket.socket(),
        lambda: (i for i in range(3)),
        lambda: threading.Lock(),
        lambda: {"nested": [open(os.devnull)]},  # noqa: SIM115
    ],
    ids=["socket", "generator", "lock", "nested-file"],
)
def test_values_that_cannot_be_restored_are_returned_uncached_with_a_warning(tmp_path, make):
    store = Store(tmp_path / "s")
    first, second, made, record = _stored_then_hit(store, make)
    assert type(first) is type(second) and made == [1, 1]
    assert [w.category for w in record] == [StoreWriteWarning] * 2
    assert list_entries(store) == []
    for value in (first, second):
        with contextlib.suppress(AttributeError):
            value.close()
        if isinstance(value, dict):
            value["nested"][0].close()


def test_a_value_decoded_as_another_type_is_a_miss(tmp_path):
    from checkpoint_magic.store.codecs.serializers import PickleCodec

    store = Store(tmp_path / "s")
    record = store.put_value({"a": 1})
    record["meta"] = {**record.get("meta", {}), "type": "builtins.list"}
    with pytest.raises(TypeError, match="builtins.list was stored but a builtins.dict came back"):
        store.get_value(record)
    assert PickleCodec().encode(io.BytesIO(b"x")).meta["type"] == "_io.BytesIO"  # in-memory files are fine


# ---------------------------------------------------------------------------------------- mutation gap
def test_a_failure_while_writing_the_manifest_leaves_no_partial_manifest(tmp_path):
    """The manifest is published by an atomic rename: a failure half-way through writing its
    bytes (not the blob's) never shows a partial manifest, and the result is returned."""
    store = Store(tmp_path / "s")
    f, calls = _counted(store)
    f(5)
    real_stage = local_backend.LocalBackend._stage
    seen: list[tuple[bool, list[str]]] = []

    def half_written_manifest(self, name, views, *, fsync, small):
        data = b"".join(bytes(v) for v in views)
        if not data.startswith(b"CMM1"):
            return real_stage(self, name, views, fsync=fsync, small=small)
        staged = real_stage(self, name, [memoryview(data[: len(data) // 2])], fsync=fsync, small=small)
        entries = sorted(str(p.relative_to(store.root)) for p in store.entries.rglob("*") if p.is_file())
        seen.append((os.path.exists(self.path(staged.name)), entries))
        self.discard(staged)
        raise OSError(errno.ENOSPC, "No space left on device")

    before = {e.key for e in list_entries(store)}
    with (
        mock.patch.object(local_backend.LocalBackend, "_stage", half_written_manifest),
        pytest.warns(StoreWriteWarning, match="No space") as record,
    ):
        value = f(40_000)
    np.testing.assert_array_equal(value, np.arange(40_000) * 2)
    assert len([w for w in record if issubclass(w.category, CheckpointWarning)]) == 1
    [(staged_existed, entries_then)] = seen
    assert staged_existed  # half the manifest was on disk, under a staging name only
    assert len(entries_then) == 1  # only the earlier entry's manifest was visible
    assert {e.key for e in list_entries(store)} == before
    assert list(store.tmp.iterdir()) == [] and verify(store).problems == []
    assert calls == [5, 40_000]


def test_key_is_make_key_also_after_the_namespace_is_reassigned():
    from checkpoint_magic.core.checkpointer import Checkpointer, make_key

    checkpointer = Checkpointer("function", "m.f")
    fps = {"b": "2", "a": "1", "ab": "3"}
    assert checkpointer.key("c", fps) == make_key("function", "m.f", "c", fps)
    checkpointer.namespace = "m.g"  # the key prefix is cached: it must follow
    assert checkpointer.key("c", fps) == make_key("function", "m.g", "c", fps)
    assert checkpointer.key("c", fps) != make_key("function", "m.f", "c", fps)
