"""Listing a namespace's manifests and records: the same answer on a local and an S3 store."""

from __future__ import annotations

import os

import pytest

from checkpoint_magic.store import Store, layout
from checkpoint_magic.store.walk import (
    entry_files,
    entry_folders,
    entry_keys,
    state_files,
    state_names,
)

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


def test_state_names_are_the_state_files_a_local_listing_without_stats(store):
    backend = store.backend
    backend.write(f"state/{NS}/0a/{'ff' + '9' * 30}.hits", b"in the wrong shard")
    backend.write(f"state/{NS}/0a/deeper/{'0a' + '8' * 30}.hits", b"too deep")
    backend.write(f"state/{NS}/.dot/{'0a' + '8' * 30}.hits", b"in a dot folder")
    for sharded in (True, False):
        with_stats = state_files(backend, NS, sharded=sharded)
        names = state_names(backend, NS, sharded=sharded)
        assert sorted(n[:2] for n in names) == sorted(n[:2] for n in with_stats)
        stats = {st for _, _, st in names}
        assert stats == ({None} if backend.files_are_local else {st for _, _, st in with_stats})


def test_list_names_are_the_names_of_list_files(store, tmp_path):
    backend = store.backend
    backend.write(f"entries/{NS}/0a/.hidden", b"a dot file")
    for folder in (f"entries/{NS}/0a", f"entries/{NS}", "entries/nothing-here", f"entries/{NS}/0a/{KEYS[0]}"):
        assert backend.list_names(folder) == [name for name, _ in backend.list_files(folder)]
    if backend.files_are_local:  # no links, no folders, nothing but regular files
        shard = store.root / f"entries/{NS}/0a"
        (shard / ("0a" + "7" * 30)).symlink_to(shard / KEYS[0])
        (shard / ("0a" + "6" * 30)).symlink_to(tmp_path)
        os.mkfifo(shard / ("0a" + "5" * 30))
        (shard / ("0a" + "4" * 30)).mkdir()
        assert backend.list_names(f"entries/{NS}/0a") == [".hidden", KEYS[0], KEYS[1]]


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
    backend.write(f"entries/{NS}/.dot/{'0a' + '7' * 30}", b"in a dot folder")
    backend.write(f"entries/{NS}/.0a/{'.0' + '7' * 30}", b"a dot file in a dot folder")
    backend.write(f"entries/{NS}/{'.0' + '6' * 30}", b"a flat dot file")
    for sharded in (True, False):  # entry_keys lists the same files, by key
        keys = entry_keys(backend, NS, sharded=sharded)
        with_stats = entry_files(backend, NS, sharded=sharded)
        assert [key for key, _ in keys] == [key for key, _ in with_stats]
        stats = [st for _, st in keys]
        assert stats == ([None] * len(keys) if backend.files_are_local else [st for _, st in with_stats])
