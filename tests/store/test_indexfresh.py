"""Refreshing the entry index: a commit makes the next listing read one shard folder again."""

from __future__ import annotations

import contextlib
import logging
import os
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


# -------------------------------------------------------------------------------------------
# a store without folders (S3): one listing per namespace, only new or changed objects read
# -------------------------------------------------------------------------------------------


@pytest.fixture
def remote(s3_store, monkeypatch) -> Store:
    """An S3 store whose objects are trusted at once (moto's clock is this machine's)."""
    from checkpoint_magic.store import indexrows

    monkeypatch.setattr(indexrows, "RACY_SECONDS", 0.0)
    store = Store(s3_store)
    for key in KEYS[:12]:
        store.write_entry(NS, key, {"namespace": NS, "code": "c", "inputs": {"x": key}})
    store.record_use(NS, KEYS[0])
    store.set_pinned(NS, KEYS[1])
    store.write_record(NS, layout.LAST_MISS, b"{}")
    flush_usage()
    return store


@pytest.fixture
def remote_reads(monkeypatch) -> list[str]:
    """The objects of a URL store read from now on (in batches or one by one)."""
    from checkpoint_magic.store.backends.url import FsspecBackend

    seen: list[str] = []
    many, one = FsspecBackend.read_many, FsspecBackend.open_read

    def read_many(self, names, limit):  # type: ignore[no-untyped-def]
        seen.extend(names)
        return many(self, names, limit)

    def open_read(self, name):  # type: ignore[no-untyped-def]
        seen.append(name)
        return one(self, name)

    monkeypatch.setattr(FsspecBackend, "read_many", read_many)
    monkeypatch.setattr(FsspecBackend, "open_read", open_read)
    return seen


def test_a_remote_store_is_listed_from_an_index_in_the_local_cache(remote, remote_reads):
    import os

    assert listed(remote) == full(remote)
    path = remote.backend.index_file()
    assert path is not None and os.path.isfile(path)
    assert path.startswith(str(remote.backend.cache.folder))
    remote_reads.clear()
    assert listed(remote) == full(remote)
    remote_reads.clear()
    rows = listed(remote)
    assert remote_reads == []  # nothing changed: nothing read
    assert rows == full(remote)
    assert {r["key"]: r["hits"] for r in rows}[KEYS[0]] == 1
    assert [r["pinned"] for r in rows if r["key"] == KEYS[1]] == [True]


def test_a_remote_index_reads_exactly_what_changed(remote, remote_reads):
    listed(remote)
    remote.write_entry(NS, KEYS[20], {"namespace": NS, "code": "new", "inputs": {}})  # added
    remote.write_entry(NS, KEYS[2], {"namespace": NS, "code": "again", "inputs": {}})  # replaced
    remote.delete_entry(NS, KEYS[3])  # removed
    remote.record_use(NS, KEYS[4])
    flush_usage()
    remote_reads.clear()
    rows = listed(remote)
    assert sorted(remote_reads) == sorted(
        [
            layout.entry(NS, KEYS[20]),
            layout.entry(NS, KEYS[2]),
            layout.entry_state(NS, KEYS[4], layout.HITS),
        ]
    )
    assert rows == full(remote)
    codes = {r["key"]: r["code"] for r in rows}
    assert codes[KEYS[20]] == "new" and codes[KEYS[2]] == "again" and KEYS[3] not in codes
    assert summarize_store(remote) == summarize(read_entries(remote).entries)


def test_a_remote_index_keeps_no_totals_across_a_change(remote, remote_reads):
    before = summarize_store(remote)
    assert before == summarize(read_entries(remote).entries)
    remote.write_entry(NS, KEYS[30], {"namespace": NS, "code": "c2", "inputs": {}})
    after = summarize_store(remote)
    assert after == summarize(read_entries(remote).entries)
    assert after[0].entries == before[0].entries + 1


def test_recent_remote_objects_are_read_again_until_they_are_old_enough(s3_store, remote_reads):
    store = Store(s3_store)  # the racily-clean rule of the local index, by the server's times
    store.write_entry(NS, KEYS[0], {"namespace": NS, "code": "c", "inputs": {}})
    listed(store)
    remote_reads.clear()
    assert listed(store) == full(store)
    assert layout.entry(NS, KEYS[0]) in remote_reads  # written within RACY_SECONDS


def test_damaged_remote_manifests_are_listed_as_damaged(remote):
    name = layout.entry(NS, KEYS[5])
    data = bytearray(remote.backend.read_bytes(name))
    data[-3] ^= 1
    remote.backend.write(name, bytes(data))
    scan = scan_entries(remote)
    assert [n for n, _ in scan.damaged] == [name]
    assert [e.to_dict() for e in scan.entries] == full(remote)


def test_a_damaged_remote_index_is_rebuilt(remote, caplog):
    listed(remote)
    path = remote.backend.index_file()
    with open(path, "wb") as f:
        f.write(b"not a database" * 100)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
    with caplog.at_level(logging.WARNING):
        assert listed(remote) == full(remote)
    assert "rebuilt" in caplog.text
    assert listed(remote) == full(remote)


def test_a_link_in_place_of_the_remote_index_is_refused(remote, tmp_path, caplog):
    path = remote.backend.index_file()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    target = tmp_path / "elsewhere.sqlite3"
    target.write_bytes(b"")
    os.symlink(target, path)
    with caplog.at_level(logging.INFO):
        assert listed(remote) == full(remote)  # from the manifests
    assert target.read_bytes() == b""  # nothing written through the link
    assert os.path.islink(path)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_remote_index_always_lists_what_the_objects_say(remote, seed):
    """Random writes, rewrites, deletions, hits, pins and damage between listings."""
    import random

    rng = random.Random(seed)
    keys = KEYS[:40]
    for _ in range(6):
        for _ in range(rng.randint(1, 6)):
            key, op = rng.choice(keys), rng.random()
            if op < 0.35:
                code = "c" * rng.randint(1, 3)  # same size or not
                remote.write_entry(NS, key, {"namespace": NS, "code": code, "inputs": {"x": op}})
            elif op < 0.5:
                remote.delete_entry(NS, key)
            elif op < 0.7:
                remote.record_use(NS, key)
            elif op < 0.8:
                remote.set_pinned(NS, key, rng.random() < 0.5)
            elif op < 0.9 and remote.entry_exists(NS, key):
                remote.backend.write(layout.entry(NS, key), b"CMM1 damaged\n{}")
            else:
                remote.write_record(NS, layout.LAST_MISS, str(op).encode())
        flush_usage()
        scan = scan_entries(remote)
        assert [e.to_dict() for e in scan.entries] == full(remote)
        assert sorted(scan.damaged) == sorted(read_entries(remote).damaged)
        assert summarize_store(remote) == summarize(read_entries(remote).entries)


@pytest.mark.parametrize("what", ["entry", "pin"])
def test_totals_of_a_remote_store_listed_by_two_processes_at_once_stay_right(
    what, tmp_path, monkeypatch
):
    """Another process adds an object and refreshes the shared index while this one refreshes
    from an older listing; once that object is gone again, the listing is the older one,
    whose digest the totals were kept under: they must not count the object."""
    import uuid

    from checkpoint_magic.store import indexrows
    from checkpoint_magic.store.backends.url import FsspecBackend

    monkeypatch.setattr(indexrows, "RACY_SECONDS", 0.0)
    monkeypatch.setenv("CHECKPOINT_MAGIC_CACHE", str(tmp_path / "cache"))
    url = f"memory://two-listings-{uuid.uuid4().hex}"
    store, other = Store(url), Store(url)  # other: a second process of this machine
    for key in KEYS[:3]:
        store.write_entry(NS, key, {"namespace": NS, "code": "c", "inputs": {}})
    store.record_use(NS, KEYS[0])
    flush_usage()
    assert summarize_store(store) == summarize(read_entries(store).entries)
    real, fired = FsspecBackend.read_many, []

    def meanwhile(self, names, limit):  # type: ignore[no-untyped-def]
        if names and not fired:  # once this process listed the folder that changed
            fired.append(names)
            if what == "entry":
                other.write_entry(NS, KEYS[9], {"namespace": NS, "code": "k", "inputs": {}})
            else:
                other.set_pinned(NS, KEYS[1])
            scan_entries(other)
        return real(self, names, limit)

    # Something for this process to read, in the folder the other one changes.
    if what == "entry":
        store.write_entry(NS, KEYS[3], {"namespace": NS, "code": "x", "inputs": {}})
    else:
        store.record_use(NS, KEYS[0])
        flush_usage()
    monkeypatch.setattr(FsspecBackend, "read_many", meanwhile)
    summarize_store(store)
    monkeypatch.setattr(FsspecBackend, "read_many", real)
    assert fired
    if what == "entry":
        store.delete_entry(NS, KEYS[9])  # the listing is the older one again
    else:
        store.set_pinned(NS, KEYS[1], False)
    assert summarize_store(store) == summarize(read_entries(store).entries)
    assert listed(store) == full(store)
