"""The entry index: listings from it always equal reading every manifest, whatever happened."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from checkpoint_magic import config
from checkpoint_magic.store import Store, index, layout
from checkpoint_magic.store.catalog import read_entries, scan_entries
from checkpoint_magic.store.usage import flush_usage
from checkpoint_magic.tools.inventory import du, list_entries, summarize, summarize_store
from checkpoint_magic.tools.maintenance import gc
from tests.store.helpers import age

NS = "m.f"


def commit(store: Store, key: str, *, code: str = "c1", blob: bytes | None = None) -> None:
    manifest = {"namespace": NS, "code": code, "inputs": {"x": key}, "duration": 1.5}
    if blob is not None:
        manifest["outputs"] = {"return": store.put_value(blob)}
    store.write_entry(NS, key, manifest)


def full(store: Store) -> tuple[list[dict], list[tuple[str, str]]]:
    """What reading every manifest and usage record gives."""
    flush_usage()
    scan = read_entries(store)
    return [e.to_dict() for e in scan.entries], scan.damaged


def listed(store: Store) -> tuple[list[dict], list[tuple[str, str]]]:
    scan = scan_entries(store)
    return [e.to_dict() for e in scan.entries], scan.damaged


def index_path(store: Store) -> Path:
    return store.root / layout.INDEX


def count_summing(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each time the index sums its rows up (not reusing kept totals), one item is appended."""
    computed: list[object] = []
    original = index.EntryIndex._summaries
    monkeypatch.setattr(
        index.EntryIndex, "_summaries", lambda self, ns: computed.append(ns) or original(self, ns)
    )
    return computed


@pytest.fixture
def store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "s")
    for i in range(5):
        commit(store, f"k{i}", blob=bytes([i]) * 20_000 if i % 2 else None)
    store.record_use(NS, "k1")
    store.set_pinned(NS, "k3")
    return store


def test_listing_from_the_index_equals_reading_every_manifest(store):
    assert listed(store) == full(store)
    assert index_path(store).is_file()
    age(store)
    assert listed(store) == full(store)  # built, then reused
    assert summarize_store(store) == summarize(list_entries(store))


@pytest.mark.parametrize("how", ["deleted", "garbage", "truncated", "foreign schema"])
def test_a_missing_damaged_or_foreign_index_is_rebuilt(store, caplog, how):
    expected = listed(store)
    path = index_path(store)
    if how == "deleted":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"not a database at all" * 100)
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
            db.execute("INSERT INTO meta VALUES ('schema', 'someone else 9')")
    with caplog.at_level(logging.WARNING, logger="checkpoint_magic.store.index"):
        assert listed(store) == expected
        assert listed(store) == expected
    if how != "deleted":
        assert "rebuilt" in caplog.text
    with sqlite3.connect(path) as db:  # a valid index again
        assert db.execute("SELECT count(*) FROM entries").fetchone()[0] == 5


def test_a_locked_index_falls_back_to_the_manifests(store, monkeypatch, caplog):
    listed(store)
    commit(store, "new")
    monkeypatch.setattr(index, "_BUSY_TIMEOUT", 0.05)
    holder = sqlite3.connect(index_path(store), isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with caplog.at_level(logging.INFO, logger="checkpoint_magic.store.index"):
            assert listed(store) == full(store)
            assert summarize_store(store) == summarize(read_entries(store).entries)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "locked" in caplog.text  # said once, not as a warning: another process holds it
    assert listed(store) == full(store)


def test_an_index_that_is_a_link_is_never_followed(store, tmp_path):
    elsewhere = tmp_path / "elsewhere.sqlite3"
    elsewhere.write_bytes(b"")
    os.symlink(elsewhere, index_path(store))
    assert listed(store) == full(store)
    assert elsewhere.read_bytes() == b""


def test_changes_by_another_process_are_seen(store, script):
    listed(store)
    age(store)  # the folders' signatures are trusted from now on
    assert listed(store) == full(store)
    script.run(
        f"""
        from checkpoint_magic.store import Store
        store = Store({str(store.root)!r})
        manifest = {{"namespace": "m.f", "code": "c2", "inputs": {{"x": "again"}}}}
        store.write_entry("m.f", "k0", manifest)          # rewritten
        store.write_entry("m.f", "added", manifest)       # added
        store.delete_entry("m.f", "k2")                   # removed
        store.record_use("m.f", "k4")                     # used
        store.set_pinned("m.f", "k3", False)              # unpinned
        """
    )
    entries, damaged = listed(store)
    assert (entries, damaged) == full(store)
    by_key = {e["key"]: e for e in entries}
    assert set(by_key) == {"k0", "k1", "k3", "k4", "added"}
    assert by_key["k0"]["code"] == "c2" and by_key["k4"]["hits"] == 1
    assert not by_key["k3"]["pinned"]


def test_a_manifest_damaged_after_indexing_is_reported(store):
    listed(store)
    path = store.root / layout.entry(NS, "k0")
    path.write_bytes(path.read_bytes()[:-5])
    entries, damaged = listed(store)
    assert (entries, damaged) == full(store)
    assert [name for name, _ in damaged] == [layout.entry(NS, "k0")]


def test_a_namespace_folder_removed_drops_its_rows(store):
    listed(store)
    shutil.rmtree(store.root / layout.entry_folder(NS))
    assert listed(store) == ([], [])


def test_setting_a_secret_re_reads_every_manifest(store, monkeypatch):
    assert scan_entries(store).unsigned == []
    age(store)
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "s3cret-for-the-test")
    scan = scan_entries(store)
    assert len(scan.unsigned) == 5 == len(read_entries(store).unsigned)


def test_du_and_gc_agree_with_the_manifests(store, monkeypatch):
    with_index = du(store)
    monkeypatch.setattr("checkpoint_magic.store.catalog.open_index", lambda *a, **k: None)
    without = du(store)
    index_bytes = sum(
        (store.root / name).stat().st_size
        for name in layout.INDEX_FILES
        if (store.root / name).exists()
    )
    assert with_index.state_bytes == without.state_bytes + index_bytes
    assert (with_index.entries_bytes, with_index.reclaimable_files, with_index.objects_bytes) == (
        without.entries_bytes,
        without.reclaimable_files,
        without.objects_bytes,
    )
    monkeypatch.undo()
    report = gc(store, max_size=0)
    assert {e.key for e in report.evicted} == {"k0", "k1", "k2", "k4"}  # k3 is pinned
    assert [e["key"] for e in listed(store)[0]] == ["k3"] == [e["key"] for e in full(store)[0]]


def _every_field(scan) -> tuple[list[dict], list, list]:
    """Every field of every entry (the manifest as read on demand), damaged and refused ones."""
    rows = [
        {**{f: getattr(e, f) for f in e.__dataclass_fields__ if f not in ("manifest_data", "loader")}, "m": e.manifest}
        for e in scan.entries
    ]
    return rows, scan.damaged, [(e.key, why) for e, why in scan.unsigned]


@pytest.mark.parametrize("secret", [None, "s3cret-for-the-test"])
def test_every_field_listed_from_the_index_is_the_manifests(store, monkeypatch, secret):
    broken = store.root / layout.entry(NS, "broken")
    broken.parent.mkdir(exist_ok=True)
    broken.write_bytes(b"CMM1 not a manifest")
    store.write_entry(NS, "odd", {"namespace": NS, "outputs": {"b": {}, "a": {}}, "inputs": {"y": "2"}, "size": 3})
    if secret:
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", secret)
    flush_usage()
    for _ in range(2):  # built, then reused
        assert _every_field(scan_entries(store)) == _every_field(read_entries(store))
        age(store)
    assert len(scan_entries(store).entries) == 6 and scan_entries(store).entry_bytes == read_entries(store).entry_bytes


def test_entries_listed_from_the_index_share_no_list(store):
    commit(store, "k5", blob=b"x" * 100)
    commit(store, "k6", blob=b"y" * 100)
    by_key = {e.key: e for e in list_entries(store)}
    by_key["k5"].outputs.append("mine")  # the caller's to change
    by_key["k0"].outputs.append("mine")
    assert [e.outputs for e in list_entries(store)] == [[], ["return"], [], ["return"], [], ["return"], ["return"]]
    assert by_key["k6"].outputs == ["return"] and by_key["k2"].outputs == []


def test_the_whole_manifest_is_read_on_demand(store):
    (entry,) = [e for e in list_entries(store) if e.key == "k1"]
    assert entry.manifest["outputs"]["return"]["size"] > 20_000
    assert entry.path == store.root / layout.entry(NS, "k1")


def test_concurrent_writers_and_listers(tmp_path, script):
    root = tmp_path / "s"
    store = Store(root)
    commit(store, "seed")
    writer = f"""
        import sys
        from checkpoint_magic.store import Store
        from checkpoint_magic.tools.inventory import list_entries
        store = Store({str(root)!r})
        me = sys.argv[1] if len(sys.argv) > 1 else "w"
        for i in range(60):
            store.write_entry("m.f", f"{{me}}{{i}}", {{"namespace": "m.f", "inputs": {{"i": str(i)}}}})
            if i % 3 == 0:
                store.delete_entry("m.f", f"{{me}}{{i // 2}}")
            if i % 10 == 0:
                list_entries(store)   # refreshes the index while others write
        """
    script.write(writer, "writer.py")
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), os.environ.get("PYTHONPATH", "")])}
    procs = [
        subprocess.Popen([sys.executable, "writer.py", name], cwd=tmp_path, env=env)
        for name in ("a", "b", "c")
    ]
    deadline = time.monotonic() + 120
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        listed(store)
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert listed(store) == full(store)
    assert len(listed(store)[0]) == 1 + 3 * (60 - 20)


def test_a_url_store_keeps_its_index_in_the_local_read_cache(s3_store):
    store = Store(s3_store)
    commit(store, "k0", blob=bytes(30_000))
    commit(store, "k1")
    opened = index.open_index(store)
    assert opened is not None
    opened.close()
    assert opened.path == store.backend.index_file()
    assert opened.path.startswith(str(store.backend.cache.folder) + os.sep)
    assert listed(store) == full(store)
    assert [s.entries for s in summarize_store(store)] == [2]
    assert du(store).entries_files == 2
    assert store.backend.cache.total() == 0  # the index is no cached blob: never trimmed


def test_gc_of_a_url_store_evicts_what_its_index_lists(s3_store):
    store = Store(s3_store)
    for i in range(4):
        commit(store, f"k{i}", blob=bytes([i]) * 30_000)
    report = gc(store, max_size=40_000, grace=0)  # the entries were listed from the index
    assert len(report.evicted) == 3 and report.freed_blobs == 3
    assert [e.key for e in list_entries(store)] == ["k3"]
    assert listed(store) == full(store)


def test_gc_evicts_where_listings_tell_times_finer_than_a_head(s3_store, monkeypatch):
    # MinIO and Ceph list LastModified to the millisecond; a HEAD's Last-Modified header is
    # to the second. gc checks the signature an entry was listed with against a HEAD before
    # removing it: both must agree for an unchanged object, or nothing is ever evicted.
    import datetime

    store = Store(s3_store)
    for i in range(4):
        commit(store, f"k{i}", blob=bytes([i]) * 30_000)
    fs = store.backend.fs
    find = fs.find

    def finer(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        found = find(path, *args, **kwargs)
        for info in found.values() if isinstance(found, dict) else ():
            if isinstance(info.get("LastModified"), datetime.datetime):
                info["LastModified"] += datetime.timedelta(milliseconds=123)
        return found

    monkeypatch.setattr(fs, "find", finer)
    report = gc(store, max_size=40_000, grace=0)
    assert len(report.evicted) == 3
    assert [e.key for e in list_entries(store)] == ["k3"]


def test_a_url_store_without_a_local_cache_lists_without_an_index(s3_store, monkeypatch):
    monkeypatch.setenv(config.ENV_CACHE_SIZE, "0")
    store = Store(s3_store)
    commit(store, "k0", blob=bytes(30_000))
    commit(store, "k1")
    assert store.backend.index_file() is None
    assert index.open_index(store) is None
    assert listed(store) == full(store)
    assert [s.entries for s in summarize_store(store)] == [2]
    assert du(store).entries_files == 2


def test_unchanged_manifests_are_not_read_again(store, monkeypatch):
    from checkpoint_magic.store import catalog

    listed(store)
    age(store)
    listed(store)  # records the folders' (now trusted) signatures
    reads: list[str] = []
    original = catalog.entry_reader

    def counting(s, **kw):  # every manifest read, whether by the index or the full scan
        read = original(s, **kw)
        return lambda ns, key, *a: reads.append(key) or read(ns, key, *a)

    monkeypatch.setattr(catalog, "entry_reader", counting)
    assert listed(store) == full(store) and len(reads) == 5  # the full scan reads them all
    reads.clear()
    assert listed(store)[0] and reads == []
    commit(store, "k5")  # the folder changes: only the new manifest is read
    assert listed(store) == full(store) and reads[0] == "k5"
    reads.clear()
    assert listed(store)[0] and reads in ([], ["k5"])  # k5 is re-read while racily recent


def test_listing_a_location_with_no_store_creates_nothing(tmp_path):
    store = Store(tmp_path / "nothing-here")
    assert list_entries(store) == [] and summarize_store(store) == [] and du(store).total_bytes == 0
    assert not (tmp_path / "nothing-here").exists()


def test_an_index_that_cannot_be_written_falls_back(store, monkeypatch, caplog):
    expected = full(store)

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(index.sqlite3, "connect", refuse)
    with caplog.at_level(logging.INFO, logger="checkpoint_magic.store.index"):
        assert listed(store) == expected
        assert [s.entries for s in summarize_store(store)] == [5]
    assert caplog.text.count("readonly") == 1  # said once per store and process


def test_the_totals_of_an_unchanged_store_are_kept_and_follow_every_change(store, monkeypatch):
    """ls sums up an unchanged store without reading its rows; any change is seen."""
    computed = count_summing(monkeypatch)
    summarize_store(store)
    age(store)
    first = summarize_store(store)  # folders listed again (now trusted): computed and kept
    computed.clear()
    assert summarize_store(store) == first == summarize(list_entries(store)) and computed == []
    commit(store, "k9", code="c2")  # a new entry and a new code version
    assert summarize_store(store) == summarize(list_entries(store)) and computed
    age(store)
    summarize_store(store)
    computed.clear()
    assert summarize_store(store)[0].versions == 2 and computed == []
    store.record_use(NS, "k9")  # a hit: its count is in the state folder
    flush_usage()
    age(store)
    assert summarize_store(store)[0].hits == 2 and computed  # k1's hit and k9's
    store.set_pinned(NS, "k0")
    age(store)
    assert summarize_store(store)[0].pinned == 2
    with sqlite3.connect(index_path(store)) as db:  # damaged totals are computed again
        db.execute("UPDATE meta SET value = 'not json' WHERE name = 'summaries'")
    assert summarize_store(store) == summarize(list_entries(store))


def test_the_totals_are_kept_for_a_name_never_hit_nor_pinned(tmp_path, monkeypatch):
    """A name without a state folder (no hit, no pin yet) does not stop ls keeping its totals."""
    store = Store(tmp_path / "s")
    commit(store, "k1")
    store.write_entry("m.g", "k1", {"namespace": "m.g", "code": "c1"})
    store.record_use(NS, "k1")  # m.f has a state folder, m.g has none
    flush_usage()
    assert not (store.root / layout.state_folder(layout.namespace_dir("m.g"))).exists()
    computed = count_summing(monkeypatch)
    summarize_store(store)
    age(store)
    first = summarize_store(store)  # folders listed again (now trusted): computed and kept
    computed.clear()
    assert summarize_store(store) == first == summarize(list_entries(store)) and computed == []
    store.record_use("m.g", "k1")  # its state folder appears: seen
    flush_usage()
    age(store)
    assert [s.hits for s in summarize_store(store)] == [1, 1] and computed


def test_an_index_failing_while_summing_up_is_reported_as_what_failed(store, monkeypatch, caplog):
    """SQLite may end the read transaction itself on an error: that error is the one reported."""
    listed(store)

    def failing(self, namespace):
        self.db.execute("ROLLBACK")  # as SQLite does on some errors (SQLITE_IOERR, _NOMEM...)
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(index.EntryIndex, "_summaries", failing)
    with caplog.at_level(logging.INFO, logger="checkpoint_magic.store.index"):
        assert summarize_store(store) == summarize(read_entries(store).entries)
    assert "damaged" in caplog.text and "locked" not in caplog.text


def test_a_state_folder_appearing_during_its_listing_is_listed_again(store, monkeypatch):
    """Missing at the stat, present at the listing, then removed: its records are forgotten."""
    state = layout.state_folder(layout.namespace_dir(NS))
    original = type(store.backend).stat_folder
    monkeypatch.setattr(  # as if the folder was created between its stat and its listing
        type(store.backend),
        "stat_folder",
        lambda self, folder: None if folder == state else original(self, folder),
    )
    assert summarize_store(store)[0].hits == 1
    monkeypatch.undo()
    shutil.rmtree(store.root / state)
    age(store)
    assert summarize_store(store) == summarize(read_entries(store).entries)
    assert summarize_store(store)[0].hits == 0
