"""Format 1 (flat) stores keep working as they are, and ``upgrade`` moves them into shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkpoint_magic.exceptions import StoreFormatError
from checkpoint_magic.store import Store, layout, upgrade
from checkpoint_magic.store.catalog import read_entries, scan_entries
from checkpoint_magic.store.leases import live_claims
from checkpoint_magic.store.usage import flush_usage
from checkpoint_magic.tools.cli import main
from checkpoint_magic.tools.inventory import list_entries
from checkpoint_magic.tools.maintenance import clear, gc, verify
from tests.store.helpers import write_flat

NS = "m.f"
KEYS = [f"{i:02x}" + "0" * 30 for i in (1, 2, 3, 0xAB)]


def flat_store(root: Path) -> Store:
    """A store of format 1, written by this version (which keeps it flat)."""
    root.mkdir(parents=True)
    (root / "FORMAT").write_text(json.dumps({"format": 1, "layout": "objects+entries"}) + "\n")
    store = Store(root)
    for i, key in enumerate(KEYS):
        record = store.put_value(bytes([i]) * 40_000)  # a blob each
        store.write_entry(NS, key, {"namespace": NS, "code": "c", "outputs": {"return": record}})
    store.set_pinned(NS, KEYS[0])
    store.record_use(NS, KEYS[1])
    flush_usage()
    return store


def files(root: Path, top: str) -> set[str]:
    found = {str(p.relative_to(root)) for p in (root / top).rglob("*") if p.is_file()}
    return {name for name in found if not name.startswith("state/.entry-index")}


def as_listed(store: Store) -> list[dict]:
    return [e.to_dict() | {"name": None, "path": None} for e in scan_entries(store).entries]


def test_a_format_1_store_is_read_and_written_flat_and_never_upgraded_silently(tmp_path):
    store = flat_store(tmp_path / "s")
    assert not store.sharded
    assert files(store.root, "entries") == {f"entries/{NS}/{k}" for k in KEYS}
    assert files(store.root, "state") == {
        f"state/{NS}/{KEYS[0]}.pin",
        f"state/{NS}/{KEYS[1]}.hits",
    }
    assert store.read_entry(NS, KEYS[2])["outputs"]["return"]["codec"]
    assert store.is_pinned(NS, KEYS[0]) and store.usage(NS, KEYS[1])[0] == 1
    entries = list_entries(store)
    assert [e.key for e in entries] == KEYS and entries[0].pinned and entries[1].hits == 1
    assert verify(store).problems == []
    assert gc(store, max_size=0, grace=0).evicted  # unpinned entries go, flat names and all
    assert json.loads((store.root / "FORMAT").read_text())["format"] == 1
    assert Store(store.root).sharded is False


def test_upgrade_moves_every_manifest_and_record_and_keeps_every_hit(tmp_path):
    store = flat_store(tmp_path / "s")
    before = as_listed(store)  # the index of the flat layout is built here...
    report = upgrade.upgrade_store(store)
    assert (report.format_before, report.format_after, report.entries, report.records) == (
        1,
        2,
        4,
        2,
    )
    assert store.sharded and Store(store.root).sharded
    assert files(store.root, "entries") == {layout.entry(NS, k) for k in KEYS}
    assert files(store.root, "state") == {
        layout.entry_state(NS, KEYS[0], layout.PIN),
        layout.entry_state(NS, KEYS[1], layout.HITS),
    }
    fresh = Store(store.root)
    for i, key in enumerate(KEYS):
        record = fresh.read_entry(NS, key, hot_only=True)["outputs"]["return"]
        assert fresh.get_value(record) == bytes([i]) * 40_000
    assert as_listed(store) == before  # ... and started over for the sharded one
    assert as_listed(store) == [
        e.to_dict() | {"name": None, "path": None} for e in read_entries(store).entries
    ]
    assert verify(store).problems == []
    again = upgrade.upgrade_store(store)
    assert (again.format_before, again.entries, again.records) == (2, 0, 0)


def test_upgrade_claims_the_blobs_before_moving_so_a_concurrent_gc_keeps_them(
    tmp_path, monkeypatch
):
    store = flat_store(tmp_path / "s")
    digests = {d for e in list_entries(store) for d in e.blobs}
    assert len(digests) == 4
    seen: list[set[str]] = []
    original = upgrade._move

    def move(store: Store, source: str, target: str) -> bool:
        seen.append(live_claims(store.backend)[0])  # what a gc would read now
        return original(store, source, target)

    monkeypatch.setattr(upgrade, "_move", move)
    upgrade.upgrade_store(store)
    assert seen and all(claimed >= digests for claimed in seen[:4])
    assert live_claims(store.backend)[0] == set()  # released


def test_upgrade_moves_entries_written_flat_meanwhile(tmp_path, monkeypatch):
    store = flat_store(tmp_path / "s")
    late = "cd" + "0" * 30
    original = upgrade._move_namespace
    calls: list[str] = []

    def move_namespace(store: Store, ns_dir: str, *args: object) -> None:
        original(store, ns_dir, *args)
        if not calls:  # an older version that read FORMAT before the upgrade commits, flat
            write_flat(store, NS, late, {"outputs": {}})
        calls.append(ns_dir)

    monkeypatch.setattr(upgrade, "_move_namespace", move_namespace)
    report = upgrade.upgrade_store(store)
    assert report.entries == 5
    assert (store.root / layout.entry(NS, late)).is_file()
    assert not (store.root / layout.entry(NS, late, sharded=False)).exists()


def test_a_manifest_already_in_its_shard_is_kept(tmp_path):
    store = flat_store(tmp_path / "s")
    newer = Store(store.root)
    newer._format_checked = newer._write_ready = True  # it read FORMAT after the upgrade
    newer.write_entry(NS, KEYS[3], {"namespace": NS, "code": "newer", "outputs": {}})
    upgrade.upgrade_store(store)
    assert Store(store.root).read_entry(NS, KEYS[3])["code"] == "newer"
    assert not (store.root / layout.entry(NS, KEYS[3], sharded=False)).exists()


def test_the_upgrade_command(tmp_path, capsys):
    store = flat_store(tmp_path / "s")
    assert main(["--store", str(store.root), "upgrade"]) == 0
    assert "from format 1 to 2: 4 manifests and 2 records moved" in capsys.readouterr().out
    assert main(["--store", str(store.root), "--json", "upgrade"]) == 0
    assert json.loads(capsys.readouterr().out)["format_after"] == 2


def test_a_store_of_a_newer_format_is_not_upgraded(tmp_path):
    root = tmp_path / "s"
    root.mkdir()
    (root / "FORMAT").write_text('{"format": 99}')
    with pytest.raises(Exception, match="format 99"):
        upgrade.upgrade_store(Store(root))
    assert (root / "FORMAT").read_text() == '{"format": 99}'


def test_a_new_store_is_sharded_from_the_start(tmp_path):
    store = Store(tmp_path / "s")
    store.write_entry(NS, KEYS[0], {"outputs": {}})
    assert files(store.root, "entries") == {f"entries/{NS}/01/{KEYS[0]}"}
    assert json.loads((store.root / "FORMAT").read_text())["format"] == 2
    assert upgrade.upgrade_store(store).entries == 0


def test_upgrade_again_moves_stray_flat_entries_of_a_process_started_before(tmp_path, capsys):
    store = flat_store(tmp_path / "s")
    upgrade.upgrade_store(store)
    late = "cd" + "0" * 30
    write_flat(store, NS, late, {"outputs": {}})  # an older version, still running
    assert Store(store.root).read_entry(NS, late) is None  # not seen: a miss, never wrong
    assert main(["--store", str(store.root), "upgrade"]) == 0
    assert "already in format 2; 1 stray flat file moved" in capsys.readouterr().out
    assert Store(store.root).read_entry(NS, late) == {"namespace": NS, "key": late, "outputs": {}}


def two_namespace_store(root: Path) -> tuple[Store, dict[tuple[str, str], bytes]]:
    """A format-1 store of two namespaces, each entry a blob of its own."""
    store = flat_store(root)
    values = {(NS, key): bytes([i]) * 40_000 for i, key in enumerate(KEYS)}
    for i, key in enumerate(KEYS):
        value = bytes([100 + i]) * 40_000
        record = store.put_value(value)
        store.write_entry(
            "m.g", key, {"namespace": "m.g", "code": "c", "outputs": {"return": record}}
        )
        values[("m.g", key)] = value
    return store, values


def assert_every_value_kept(root: Path, values: dict[tuple[str, str], bytes]) -> None:
    fresh = Store(root)
    for (ns, key), value in values.items():
        manifest = fresh.read_entry(ns, key)
        assert manifest is not None, (ns, key)
        assert fresh.get_value(manifest["outputs"]["return"]) == value, (ns, key)


def test_a_gc_started_during_the_upgrade_keeps_the_blobs_of_entries_not_moved_yet(
    tmp_path, monkeypatch
):
    store, values = two_namespace_store(tmp_path / "s")
    original = upgrade._move_namespace
    ran: list[object] = []

    def move_namespace(store: Store, ns_dir: str, *args: object) -> None:
        if not ran:  # FORMAT says 2: a gc started now lists shards, "m.g" is still flat
            ran.append(gc(Store(store.root), grace=0))
        original(store, ns_dir, *args)

    monkeypatch.setattr(upgrade, "_move_namespace", move_namespace)
    upgrade.upgrade_store(store)
    assert ran
    assert_every_value_kept(store.root, values)


def test_a_process_started_before_the_upgrade_follows_it_at_its_next_miss_or_commit(tmp_path):
    store = flat_store(tmp_path / "s")
    old = Store(store.root)  # read FORMAT 1 before the upgrade, and is still running
    old._write_ready = True
    assert old.read_entry(NS, KEYS[2], hot_only=True) is not None and not old.sharded
    upgrade.upgrade_store(store)
    assert old.read_entry(NS, KEYS[2], hot_only=True) is not None  # found in its shard
    assert old.sharded
    stale = Store(store.root)
    stale._sharded = False
    stale._format_checked = stale._write_ready = True
    late = "cd" + "0" * 30
    stale.write_entry(NS, late, {"namespace": NS, "outputs": {}})  # a commit looks first
    assert stale.sharded and (store.root / layout.entry(NS, late)).is_file()
    assert not (store.root / layout.entry(NS, late, sharded=False)).exists()


def test_a_gc_of_a_process_started_before_the_upgrade_keeps_the_moved_entries(tmp_path):
    store, values = two_namespace_store(tmp_path / "s")
    old = Store(store.root)  # read FORMAT 1 before the upgrade, and is still running
    assert not old.sharded
    upgrade.upgrade_store(store)
    gc(old, grace=0)  # say, the automatic gc after one of its commits
    assert_every_value_kept(store.root, values)
    fresh = Store(store.root)
    assert fresh.is_pinned(NS, KEYS[0]) and fresh.usage(NS, KEYS[1])[0] == 1


def test_a_gc_during_the_upgrade_keeps_the_records_of_entries_not_moved_yet(tmp_path, monkeypatch):
    store, _ = two_namespace_store(tmp_path / "s")
    store.set_pinned("m.g", KEYS[2])
    original = upgrade._move_namespace

    def move_namespace(store: Store, ns_dir: str, *args: object) -> None:
        if ns_dir == "m.g":  # "m.f" moved, "m.g" not yet: a gc started now lists shards
            gc(Store(store.root), grace=0)
        original(store, ns_dir, *args)

    monkeypatch.setattr(upgrade, "_move_namespace", move_namespace)
    upgrade.upgrade_store(store)
    assert Store(store.root).is_pinned("m.g", KEYS[2])


def test_the_claims_of_an_upgrade_of_many_blobs_stay_readable_to_a_gc(tmp_path, monkeypatch):
    root = tmp_path / "s"
    root.mkdir()
    (root / "FORMAT").write_text(json.dumps({"format": 1, "layout": "objects+entries"}) + "\n")
    store = Store(root)
    refs: dict[str, set[str]] = {}
    for i in range(40):  # 40,000 blobs: their digests alone take more than a lease holds
        key = f"{i:02x}" + "0" * 30
        outputs = {f"o{j}": {"digest": f"{i:04x}{j:028x}", "size": 1} for j in range(1000)}
        store.write_entry(NS, key, {"namespace": NS, "outputs": outputs})
        refs[layout.entry(NS, key, sharded=False)] = {o["digest"] for o in outputs.values()}
    original = upgrade._move
    uncovered: list[str] = []

    def move(store: Store, source: str, target: str) -> bool:
        claimed = live_claims(store.backend)[0]  # what a gc would read now
        if source in refs and not refs[source] <= claimed:
            uncovered.append(source)
        return original(store, source, target)

    monkeypatch.setattr(upgrade, "_move", move)
    assert upgrade.upgrade_store(store).entries == 40
    assert uncovered == []
    assert live_claims(store.backend) == (set(), [])


def test_an_s3_store_of_format_1_works_flat_and_upgrades(s3_store):
    store = Store(s3_store)
    store.backend.write(layout.FORMAT, json.dumps({"format": 1}).encode())
    store.refresh_format()
    for i, key in enumerate(KEYS):
        record = store.put_value(bytes([i]) * 40_000)
        store.write_entry(NS, key, {"namespace": NS, "code": "c", "outputs": {"return": record}})
    store.set_pinned(NS, KEYS[0])
    store.record_use(NS, KEYS[1])
    flush_usage()
    assert [e.key for e in list_entries(store)] == KEYS and verify(store).problems == []
    report = upgrade.upgrade_store(store)
    assert (report.entries, report.records) == (4, 2)
    fresh = Store(s3_store)
    listed = list_entries(fresh)
    assert [e.key for e in listed] == KEYS and listed[0].pinned and listed[1].hits == 1
    assert verify(fresh, fix=True).problems == []
    assert len(gc(fresh, max_size=0, grace=0).evicted) == 3  # the pinned one stays
    manifest = fresh.read_entry(NS, KEYS[0])
    assert fresh.get_value(manifest["outputs"]["return"]) == bytes([0]) * 40_000
    assert clear(fresh, force=True).removed == {NS: 1}
    assert [name for name, _ in fresh.backend.list_tree("")] == [".gitignore", "FORMAT"]


def test_hits_recorded_in_the_shard_during_the_upgrade_are_added_to_the_moved_record(
    tmp_path, monkeypatch
):
    store = flat_store(tmp_path / "s")
    for _ in range(4):
        store.record_use(NS, KEYS[1])
    flush_usage()
    assert store.usage(NS, KEYS[1])[0] == 5
    original = upgrade._move

    def move(store: Store, source: str, target: str) -> bool:
        if source.endswith(layout.HITS):  # the entry moved: a process started now hits it
            newer = Store(store.root)
            newer.record_use(NS, KEYS[1])
            flush_usage()
        return original(store, source, target)

    monkeypatch.setattr(upgrade, "_move", move)
    upgrade.upgrade_store(store)
    assert Store(store.root).usage(NS, KEYS[1])[0] == 6


def test_a_folder_that_is_not_a_store_is_refused_and_left_as_it_is(tmp_path, capsys):
    mine = tmp_path / "project" / "entries" / "notes" / "todo.txt"  # --store . by mistake
    mine.parent.mkdir(parents=True)
    mine.write_text("mine")
    with pytest.raises(StoreFormatError, match="not a checkpoint store"):
        upgrade.upgrade_store(Store(tmp_path / "project"))
    assert mine.read_text() == "mine"
    assert main(["--store", str(tmp_path / "nowhere"), "upgrade"]) != 0
    assert "not a checkpoint store" in capsys.readouterr().err


@pytest.mark.parametrize("hot_only", [False, True])
def test_a_thread_that_read_flat_while_another_followed_the_upgrade_still_hits(
    tmp_path, monkeypatch, hot_only
):
    # Two threads of a process started before the upgrade: one misses flat and switches the
    # store to shards while the other's read of the flat name (picked before) is failing.
    store = flat_store(tmp_path / "s")
    old = Store(store.root)
    old._write_ready = True
    assert old.read_entry(NS, KEYS[2], hot_only=hot_only) is not None and not old.sharded
    upgrade.upgrade_store(store)
    read_small = type(old.backend).read_small

    def racing(backend: object, name: str, *args: object, **kwargs: object) -> object:
        if name.startswith(f"{layout.ENTRIES}/") and not old._sharded:  # the other thread
            # follows the upgrade meanwhile
            old.refresh_format()
        return read_small(backend, name, *args, **kwargs)

    monkeypatch.setattr(type(old.backend), "read_small", racing)
    monkeypatch.setattr(type(old.backend), "version", lambda backend, name: None)
    assert old.read_entry(NS, KEYS[2], hot_only=hot_only) is not None  # not a miss
    assert old.sharded


SCRIPT = """
import json, sys
import numpy as np
from checkpoint_magic import checkpoint

RUNS = []

@checkpoint
def step(n):
    RUNS.append(n)
    return np.arange(n) * 2

values = [int(step(n).sum()) for n in (10, 20_000, 10)]
print(json.dumps({"runs": RUNS, "values": values}))
"""


def test_a_script_run_on_a_format_1_store_hits_before_and_after_the_upgrade(script):
    root = script.workdir / ".Lutil-checkpoint"
    root.mkdir()
    (root / "FORMAT").write_text(json.dumps({"format": 1, "layout": "objects+entries"}) + "\n")
    runs = [json.loads(script.run(SCRIPT).stdout) for _ in range(2)]
    assert [r["runs"] for r in runs] == [[10, 20_000], []]  # the second run is all hits
    assert runs[0]["values"] == runs[1]["values"] == [90, 399_980_000, 90]
    entries = [p for p in (root / "entries").rglob("*") if p.is_file()]
    assert len(entries) == 2 and all(p.parent.parent.name == "entries" for p in entries)  # flat
    assert main(["--store", str(root), "upgrade"]) == 0
    after = json.loads(script.run(SCRIPT).stdout)
    assert after == runs[1]  # every entry hits in its shard
    assert all(len(p.parent.name) == 2 for p in (root / "entries").rglob("*") if p.is_file())
    assert json.loads((root / "FORMAT").read_text())["format"] == 2
