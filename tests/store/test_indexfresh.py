"""Refreshing the entry index: a commit makes the next listing read one shard folder again."""

from __future__ import annotations

import shutil

import pytest

from checkpoint_magic.store import Store, layout
from checkpoint_magic.store.backends.local import LocalBackend
from checkpoint_magic.store.catalog import read_entries, scan_entries
from checkpoint_magic.store.usage import flush_usage
from checkpoint_magic.store.walk import entry_files, state_files
from checkpoint_magic.tools.inventory import summarize, summarize_store
from tests.store.helpers import age

NS = "m.f"
KEYS = [f"{i:02x}{j:030x}" for i in range(0, 256, 5) for j in range(3)]  # 52 shards


def listed(store: Store) -> list[dict]:
    return [e.to_dict() for e in scan_entries(store).entries]


def full(store: Store) -> list[dict]:
    flush_usage()
    return [e.to_dict() for e in read_entries(store).entries]


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(tmp_path / "s")
    for key in KEYS:
        store.write_entry(NS, key, {"namespace": NS, "code": "c", "inputs": {"x": key}})
    store.record_use(NS, KEYS[0])
    flush_usage()
    age(store)
    assert listed(store) == full(store)
    return store


@pytest.fixture
def listings(monkeypatch) -> list[str]:
    """The folders listed file by file from now on."""
    seen: list[str] = []
    original = LocalBackend.list_files

    def list_files(self: LocalBackend, folder: str):  # type: ignore[no-untyped-def]
        seen.append(folder)
        return original(self, folder)

    monkeypatch.setattr(LocalBackend, "list_files", list_files)
    return seen


def test_an_unchanged_store_lists_no_folder(store, listings):
    rows = listed(store)
    assert [f for f in listings if f.startswith(("entries/", "state/"))] == []
    assert rows == full(store)


def test_a_commit_lists_only_its_shard_folder_again(store, listings):
    new = "0a" + "f" * 30  # shard 0a exists already
    store.write_entry(NS, new, {"namespace": NS, "code": "c2", "inputs": {"x": new}})
    listings.clear()
    rows = listed(store)
    assert [f for f in listings if f.startswith("entries/")] == [f"entries/{NS}/0a"]
    assert [f for f in listings if f.startswith("state/")] == []
    assert rows == full(store) and len(rows) == len(KEYS) + 1


def test_a_commit_into_a_new_shard_lists_the_namespace_folder_and_that_shard(store, listings):
    new = "ff" + "f" * 30
    store.write_entry(NS, new, {"namespace": NS, "code": "c2", "inputs": {"x": new}})
    listings.clear()
    rows = listed(store)
    assert [f for f in listings if f.startswith("entries/")] == [f"entries/{NS}/ff"]
    assert rows == full(store)


def test_hits_list_only_the_shards_of_their_records(store, listings):
    store.record_use(NS, KEYS[1])  # shard 00, which has a record already
    flush_usage()
    listings.clear()
    rows = listed(store)
    assert [f for f in listings if f.startswith(("state/", "entries/"))] == [f"state/{NS}/00"]
    assert rows == full(store)
    age(store)  # shard 00 changed too recently to be trusted: it would be listed again
    listed(store)
    store.record_use(NS, KEYS[-1])  # a new shard folder: the namespace's is listed too
    flush_usage()
    listings.clear()
    rows = listed(store)
    shard = layout.shard(KEYS[-1])
    assert sorted(f for f in listings if f.startswith(("state/", "entries/"))) == [
        f"state/{NS}",
        f"state/{NS}/{shard}",
    ]
    assert rows == full(store)


def test_a_shard_folder_removed_drops_its_rows(store):
    shutil.rmtree(store.root / "entries" / NS / "05")
    shutil.rmtree(store.root / "state" / NS / "00")
    rows = listed(store)
    assert rows == full(store) and len(rows) == len(KEYS) - 3
    assert not any(r["key"].startswith("05") for r in rows)
    assert summarize_store(store) == summarize(read_entries(store).entries)


def test_files_the_layout_never_writes_are_not_entries(store):
    (store.root / "entries" / NS / "0a" / ("ff" + "0" * 30)).write_text("in the wrong shard")
    (store.root / "entries" / NS / "0a" / ".hidden").write_text("a dot file")
    (store.root / "entries" / NS / ("0a" + "1" * 30)).write_text("flat, in a sharded store")
    assert listed(store) == full(store) and len(listed(store)) == len(KEYS)
    assert len(entry_files(store.backend, NS, sharded=True)) == len(KEYS)


def test_state_files_lists_namespace_records_and_shard_records(store):
    store.write_record(NS, layout.LAST_MISS, b"{}")
    names = {leaf for leaf, _, _ in state_files(store.backend, NS, sharded=True)}
    assert names == {layout.LAST_MISS, KEYS[0] + layout.HITS}


def test_totals_are_kept_while_no_shard_changed_and_follow_a_commit(store):
    before = summarize_store(store)
    assert summarize_store(store) == before
    store.write_entry(NS, "0a" + "e" * 30, {"namespace": NS, "code": "c", "inputs": {"x": 1}})
    after = summarize_store(store)
    assert after[0].entries == before[0].entries + 1
    assert after == summarize(read_entries(store).entries)
