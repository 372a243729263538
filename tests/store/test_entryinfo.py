"""Reading one manifest into an EntryInfo: a listing's reader gives what read_entry_file gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from checkpoint_magic.store import Store, layout
from checkpoint_magic.store.entryinfo import EntryInfo, entry_reader, read_entry_file
from checkpoint_magic.store.walk import entry_files

NS = "m.f"


def _fields(info: EntryInfo | None) -> dict | None:
    """Every field but the loader (a new function each time)."""
    return None if info is None else {f.name: getattr(info, f.name) for f in dataclasses.fields(info) if f.name != "loader"}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "s")
    blob = store.put_value(bytes(30_000))
    store.write_entry(NS, "plain", {"namespace": NS, "code": "c", "inputs": {"x": "1", "y": 2}, "duration": 1.5})
    store.write_entry(NS, "blob", {"namespace": NS, "outputs": {"b": blob, "a": blob}, "size": 7, "created": 5})
    store.write_entry("odd <ns>", "k", {"namespace": "odd <ns>", "outputs": {}, "kind": "cell"})
    return store


def _listing(store: Store) -> list[tuple[str, str]]:
    return [
        (ns, key)
        for ns in store.backend.list_folders("entries")
        for key, _ in entry_files(store.backend, ns, sharded=True)
    ]


def _path(store: Store, ns_dir: str, key: str) -> Path:
    return store.root / layout.entry_in(ns_dir, key)


def _copy(store: Store, source: Path, ns_dir: str, key: str, data: bytes | None = None) -> None:
    target = _path(store, ns_dir, key)
    target.parent.mkdir(exist_ok=True)
    target.write_bytes(source.read_bytes() if data is None else data)


def _damage(store: Store) -> None:
    """A manifest written for another key, one for another namespace, one with flipped bytes."""
    _copy(store, _path(store, NS, "plain"), NS, "moved")
    _copy(store, store.root / layout.entry("odd <ns>", "k"), NS, "k")
    data = bytearray(_path(store, NS, "blob").read_bytes())
    data[-2] ^= 1
    _copy(store, _path(store, NS, "blob"), NS, "flipped", bytes(data))


@pytest.mark.parametrize("secret", [None, "our secret"])
def test_a_reader_reads_every_manifest_as_read_entry_file_does(store, monkeypatch, secret):
    _damage(store)
    if secret:  # the entries were written unsigned: each is refused, and still listed
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", secret)
    read, lean = entry_reader(store), entry_reader(store, keep_manifest=False)
    outcomes = []
    for ns, key in _listing(store):
        st = store.backend.stat(layout.entry_in(ns, key))
        (info, problem), (other, why) = read(ns, key, st), lean(ns, key, st)
        single, said = read_entry_file(store, ns, key, st)
        assert (_fields(info), problem) == (_fields(single), said)
        assert why == problem and (info is None) == (other is None)
        if info is not None:
            assert other is not None and other.manifest_data is None and other.manifest == info.manifest
            assert _fields(other) == {**_fields(info), "manifest_data": info.manifest}
        outcomes.append((key, info is not None, problem))
    unsigned = "not signed, and CHECKPOINT_MAGIC_SECRET requires signed entries" if secret else ""
    assert sorted(outcomes) == [
        ("blob", True, unsigned),
        ("flipped", False, "checksum mismatch (flipped or truncated bytes)"),
        ("k", False, "written for entry odd <ns>/k"),
        ("k", True, unsigned),
        ("moved", False, "written for entry m.f/plain"),
        ("plain", True, unsigned),
    ]


def test_what_a_reader_makes_of_a_manifest(store):
    st = store.backend.stat(layout.entry_in(NS, "blob"))
    info, _ = entry_reader(store)(NS, "blob", st)
    [ref] = info.manifest["outputs"]["a"]["blobs"]
    assert (info.outputs, info.size, info.created, info.blobs) == (["a", "b"], 7, 5.0, {ref["digest"]: ref["size"]})
    st = store.backend.stat(layout.entry_in(NS, "plain"))
    info, _ = entry_reader(store)(NS, "plain", st)
    assert (info.inputs, info.duration, info.created, info.size, info.ns_dir) == ({"x": "1", "y": "2"}, 1.5, st.mtime, 0, NS)
    assert info.path == _path(store, NS, "plain")


def test_a_reader_of_a_removed_manifest_raises_file_not_found(store):
    st = store.backend.stat(layout.entry_in(NS, "plain"))
    _path(store, NS, "plain").unlink()
    with pytest.raises(FileNotFoundError):
        entry_reader(store)(NS, "plain", st)


def test_ns_dir_is_the_folder_of_the_name_else_of_the_namespace():
    info = EntryInfo("odd <ns>", "k", "", "", {}, [], 0, 0.0, 0.0, 0, 0.0, False)
    assert info.ns_dir.startswith("odd__ns_-")
    assert dataclasses.replace(info, name="entries/f/k/k").ns_dir == "f"
    assert dataclasses.replace(info, name="entries/f/k").ns_dir == "f"  # format 1


@pytest.mark.parametrize(
    ("created", "duration", "expected"),
    [(12.5, 0.25, (12.5, 0.25)), (12, 3, (12.0, 3.0)), (True, False, (None, 0.0)), ("12", "3", (None, 0.0)), (None, None, (None, 0.0))],
)
def test_times_that_are_not_numbers_fall_back(store, created, duration, expected):
    store.write_entry(NS, "t", {"namespace": NS, "outputs": {}, "created": created, "duration": duration})
    st = store.backend.stat(layout.entry_in(NS, "t"))
    info, _ = entry_reader(store)(NS, "t", st)
    assert (info.created, info.duration) == (st.mtime if expected[0] is None else expected[0], expected[1])
    assert type(info.created) is float and type(info.duration) is float


@pytest.mark.parametrize("local_reads", [True, False])
def test_a_reader_without_a_stat_takes_the_stat_of_the_file_it_reads(store, monkeypatch, local_reads):
    _damage(store)
    if not local_reads:  # as on an object store: the bytes, then a stat of the name
        monkeypatch.setattr(store.backend, "files_are_local", False)
    read, lean = entry_reader(store), entry_reader(store, keep_manifest=False)
    for ns, key in _listing(store):
        st = store.backend.stat(layout.entry_in(ns, key))
        (info, problem), (without, why) = read(ns, key, st), lean(ns, key, None)
        assert why == problem and (info is None) == (without is None)
        if info is not None:
            assert _fields(without) == {**_fields(info), "manifest_data": None}
            assert (without.version, without.file_size, without.created) == (info.version, info.file_size, info.created)
    _path(store, NS, "plain").unlink()
    with pytest.raises(FileNotFoundError):
        lean(NS, "plain", None)


def test_may_reference_blobs_is_false_only_without_digest_or_unicode_escape():
    from checkpoint_magic.store.entryinfo import may_reference_blobs

    assert may_reference_blobs(b'{"digest": "ab"}')
    assert may_reference_blobs(b'{"\\u0064igest": "ab"}')  # "digest" spelled with an escape
    assert may_reference_blobs(b'{"a": "\\\\", "\\u0064igest": 1}')
    assert not may_reference_blobs(b'{"a": "\\\\n", "digests": 1}')  # a backslash, no \u
    assert not may_reference_blobs(b'{"a": 1}')
