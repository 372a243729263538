"""Usage records: hits counted in memory and written per store in batches."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from checkpoint_magic.store import Store, layout
from checkpoint_magic.store.backends.base import StoreBackend
from checkpoint_magic.store.usage import _usage_writer, add_many_hits, flush_usage

NS = "m.f"
KEYS = [f"{i:02x}{'0' * 30}" for i in range(0, 250, 10)]


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    location = tmp_path / "s" if request.param == "local" else request.getfixturevalue("s3_store")
    store = Store(location)
    for key in KEYS:
        store.write_entry(NS, key, {"namespace": NS, "outputs": {}})
    return store


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """The batched reads and writes of every backend from now on: (what, how many names)."""
    seen: list[tuple[str, int]] = []
    for cls in {type(b) for b in _backends()}:
        read_many, write_many = cls.read_many, cls.write_many

        def counted_read(self, names, limit, _f=read_many):  # type: ignore[no-untyped-def]
            seen.append(("read", len(names)))
            return _f(self, names, limit)

        def counted_write(self, items, _f=write_many):  # type: ignore[no-untyped-def]
            seen.append(("write", len(items)))
            return _f(self, items)

        monkeypatch.setattr(cls, "read_many", counted_read)
        monkeypatch.setattr(cls, "write_many", counted_write)
    return seen


def _backends() -> list[StoreBackend]:
    from checkpoint_magic.store.backends.local import LocalBackend
    from checkpoint_magic.store.backends.url import FsspecBackend

    return [LocalBackend.__new__(LocalBackend), FsspecBackend.__new__(FsspecBackend)]


def test_a_flush_reads_and_writes_each_store_s_records_in_one_batch(store, batches):
    flush_usage()  # what earlier tests left pending
    batches.clear()
    with _usage_writer._flush_lock:  # the writer's thread may not flush half of the hits
        for key in KEYS:
            store.record_use(NS, key)
        store.record_use(NS, KEYS[0])
    flush_usage()
    assert batches == [("read", len(KEYS)), ("write", len(KEYS))]
    assert store.usage(NS, KEYS[0])[0] == 2 and store.usage(NS, KEYS[1])[0] == 1
    for key in KEYS[:3]:
        store.record_use(NS, key)
    flush_usage()  # added to what is recorded
    assert [store.usage(NS, k)[0] for k in KEYS[:4]] == [3, 2, 2, 1]
    assert store.usage(NS, KEYS[0])[1] is not None


def test_a_record_of_the_earlier_format_is_counted_on(store):
    name = layout.entry_state(NS, KEYS[0], layout.HITS)
    store.backend.write(name, b"...")  # one dot per hit, no time
    store.record_use(NS, KEYS[0])
    flush_usage()
    hits, last = store.usage(NS, KEYS[0])
    assert hits == 4 and last is not None and last > 1e9


def test_a_record_the_store_refuses_costs_only_itself(tmp_path):
    store = Store(tmp_path / "s")
    for key in KEYS[:3]:
        store.write_entry(NS, key, {"namespace": NS, "outputs": {}})
    planted = store.root / layout.entry_state(NS, KEYS[1], layout.HITS)
    planted.parent.mkdir(parents=True, exist_ok=True)
    target = tmp_path / "elsewhere"
    target.write_bytes(b"untouched")
    os.symlink(target, planted)  # a link where a record goes: never written through
    for key in KEYS[:3]:
        store.record_use(NS, key)
    flush_usage()
    assert [store.usage(NS, k)[0] for k in (KEYS[0], KEYS[2])] == [1, 1]
    assert target.read_bytes() == b"untouched"


def test_no_record_is_written_into_a_store_deleted_meanwhile(tmp_path):
    import shutil

    store = Store(tmp_path / "s")
    store.write_entry(NS, KEYS[0], {"namespace": NS, "outputs": {}})
    shutil.rmtree(store.root)
    add_many_hits(store.backend, [(layout.entry_state(NS, KEYS[0], layout.HITS), 1, 1.0)])
    assert not store.root.exists()


@pytest.mark.parametrize("location", ["local", "memory"])
def test_a_batch_that_fails_half_way_counts_each_hit_once(location, tmp_path, monkeypatch):
    # A write refused in the middle of a batch (an S3 PUT throttled among a thousand sent at
    # once, say): the records written before it must not be added to again one by one.
    import uuid

    store = Store(tmp_path / "s" if location == "local" else f"memory://usage-{uuid.uuid4().hex}")
    for key in KEYS[:3]:
        store.write_entry(NS, key, {"namespace": NS, "outputs": {}})
    names = [layout.entry_state(NS, key, layout.HITS) for key in KEYS[:3]]
    failed: list[str] = []
    if location == "local":
        write = store.backend.write

        def flaky(name, data, *args, **kwargs):  # type: ignore[no-untyped-def]
            if name == names[1] and not failed:
                failed.append(name)
                raise OSError("refused once")
            return write(name, data, *args, **kwargs)

        monkeypatch.setattr(store.backend, "write", flaky)
    else:
        fs = store.backend.fs
        pipe_file = fs.pipe_file

        def flaky_pipe(path, value, *args, **kwargs):  # type: ignore[no-untyped-def]
            if path.endswith(names[1]) and not failed:
                failed.append(path)
                raise OSError("refused once")
            return pipe_file(path, value, *args, **kwargs)

        monkeypatch.setattr(fs, "pipe_file", flaky_pipe)
    add_many_hits(store.backend, [(name, 1, 10.0) for name in names])
    assert failed
    assert [store.usage(NS, key)[0] for key in KEYS[:3]] == [1, 1, 1]


def test_a_record_of_the_earlier_format_was_last_used_when_it_was_written(store):
    # Such a record has no time: its mtime is its last use (not 1970 where a store's read
    # in one request does not tell the mtime).
    name = layout.entry_state(NS, KEYS[0], layout.HITS)
    store.backend.write(name, b"..")
    written = store.backend.stat(name).mtime
    assert written > 1e9
    assert store.usage(NS, KEYS[0]) == (2, written)


def test_a_store_whose_batch_breaks_costs_no_other_store_its_hits(tmp_path, monkeypatch):
    stores = [Store(tmp_path / name) for name in ("a", "b")]
    for store in stores:
        store.write_entry(NS, KEYS[0], {"namespace": NS, "outputs": {}})

    def broken(names, limit):  # type: ignore[no-untyped-def]
        raise RuntimeError("a backend's bug")

    monkeypatch.setattr(stores[0].backend, "read_many", broken)
    monkeypatch.setattr(stores[0].backend, "read_small", broken)
    flush_usage()
    with _usage_writer._flush_lock:  # one flush holds both
        for store in stores:
            store.record_use(NS, KEYS[0])
    flush_usage()
    assert stores[1].usage(NS, KEYS[0])[0] == 1
