"""Listing a namespace's manifests and records: the same answer on a local and an S3 store."""

from __future__ import annotations

import pytest

from checkpoint_magic.store import Store, layout
from checkpoint_magic.store.walk import entry_files, entry_folders, state_files

NS = "m.f"
KEYS = ["0a" + "1" * 30, "0a" + "2" * 30, "ff" + "0" * 30]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path) -> Store:
    location = tmp_path / "s" if request.param == "local" else request.getfixturevalue("s3_store")
    store = Store(location)
    for key in KEYS:
        store.write_entry(NS, key, {"namespace": NS, "outputs": {}})
    store.set_pinned(NS, KEYS[2])
    store.write_record(NS, layout.LAST_MISS, b"{}")
    return store


def test_entry_files_lists_every_shard_by_key(store):
    assert [key for key, _ in entry_files(store.backend, NS, sharded=True)] == KEYS
    assert entry_folders(store.backend, NS, sharded=True) == [
        f"entries/{NS}/0a",
        f"entries/{NS}/ff",
    ]


def test_state_files_lists_the_namespace_records_and_the_entries_records(store):
    found = {(leaf, name) for leaf, name, _ in state_files(store.backend, NS, sharded=True)}
    assert found == {
        (layout.LAST_MISS, f"state/{NS}/{layout.LAST_MISS}"),
        (KEYS[2] + layout.PIN, layout.entry_state(NS, KEYS[2], layout.PIN)),
    }


def test_list_tree_gives_names_below_the_folder(store):
    names = [name for name, _ in store.backend.list_tree(f"entries/{NS}")]
    assert names == [f"{layout.shard(k)}/{k}" for k in KEYS]
    assert store.backend.list_tree("entries/nothing-here") == []


def test_what_the_layout_never_writes_is_left_out(store):
    backend = store.backend
    backend.write(f"entries/{NS}/0a/{'ff' + '9' * 30}", b"in the wrong shard")
    backend.write(f"entries/{NS}/0a/.hidden", b"a dot file")
    backend.write(f"entries/{NS}/{'0a' + '9' * 30}", b"flat, in a sharded store")
    backend.write(f"entries/{NS}/0a/deeper/{'0a' + '8' * 30}", b"too deep")
    assert [key for key, _ in entry_files(backend, NS, sharded=True)] == KEYS
    flat = [key for key, _ in entry_files(backend, NS, sharded=False)]
    assert flat == ["0a" + "9" * 30]
