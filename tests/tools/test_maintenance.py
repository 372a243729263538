"""Maintenance: listing, sizes, gc budgets (LRU by recorded use, pins, shared blobs, versions, age), pins, clear."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.core.checkpointer import Checkpointer
from checkpoint_magic.exceptions import InvalidArgumentError
from checkpoint_magic.store import budget, layout
from checkpoint_magic.store.core import Store, flush_usage
from checkpoint_magic.tools.maintenance import (
    clear,
    du,
    find_entry,
    gc,
    list_entries,
    parse_age,
    parse_size,
    pin,
    resolve_namespace,
    stored_size,
    summarize,
    unpin,
    verify,
)

DAY = 86400.0


def commit(store: Store, ns: str, code: str, x: int, value, duration: float = 1.0) -> str:
    """Store ``value`` as the entry of code ``code`` and input ``x`` in namespace ``ns``; return its key."""
    cp = Checkpointer("function", ns, store)
    inputs = cp.fingerprint_inputs({"x": x})
    assert cp.save(code, inputs, {"return": value}, duration=duration, code_parts={ns: code})
    return cp.key(code, inputs)


def used(store: Store, ns: str, key: str, when: float, hits: int = 1) -> None:
    """Record ``hits`` uses of an entry, the last one at ``when``."""
    for _ in range(hits):
        store.record_use(ns, key)
    flush_usage()
    path = store.root / layout.entry_state(ns, key, layout.HITS)
    hits_now = int(path.read_text().split()[0])
    path.write_text(f"{hits_now} {when}\n")
    os.utime(path, (when, when))


def age_files(store: Store, seconds: float) -> None:
    """Make every file and directory of the store look ``seconds`` old (as if written that long ago)."""
    when = time.time() - seconds
    for path in store.root.rglob("*"):
        os.utime(path, (when, when))


def big(seed: int, n: int = 20_000) -> np.ndarray:
    return np.random.default_rng(seed).random(n)  # 160 kB: a blob, not inline


def keys(store: Store) -> set[str]:
    return {e.key for e in list_entries(store)}


# ---------------------------------------------------------------------------------------- parsing
@pytest.mark.parametrize(
    "text, expected",
    [
        ("10GB", 10 * 10**9),
        ("500MiB", 500 * 2**20),
        ("1.5G", int(1.5 * 2**30)),
        ("2 kb", 2000),
        ("2K", 2048),
        ("100", 100),
        ("7B", 7),
        (4096, 4096),
        ("0", 0),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "10XB", "-1GB", "1e9", "ten"])
def test_parse_size_rejects_with_a_clear_message(text):
    with pytest.raises(InvalidArgumentError, match="invalid size .* e.g. 500MB"):
        parse_size(text)
    with pytest.raises(InvalidArgumentError, match="negative"):
        parse_size(-5)
    with pytest.raises(InvalidArgumentError, match="KiB"):
        parse_size("10iB")


@pytest.mark.parametrize("text, expected", [("30d", 30 * DAY), ("12h", 43200), ("90m", 5400), ("90min", 5400), ("45s", 45), ("2w", 14 * DAY), ("1.5h", 5400)])
def test_parse_age(text, expected):
    assert parse_age(text) == expected


@pytest.mark.parametrize("text", ["30", "d", "3 years", "-1d"])
def test_parse_age_rejects_with_a_clear_message(text):
    with pytest.raises(InvalidArgumentError, match="invalid age .* 30d"):
        parse_age(text)


# ---------------------------------------------------------------------------------------- listing
def test_list_entries_reports_what_ls_shows(tmp_path):
    store = Store(tmp_path / "s")
    k1 = commit(store, "m.f", "c1", 1, big(1), duration=2.0)
    k2 = commit(store, "m.f", "c2", 1, big(2), duration=0.5)
    k3 = commit(store, "m.g", "c1", 5, {"small": 1})
    store.set_pinned("m.f", k2)
    when = time.time() - 100
    used(store, "m.f", k1, when, hits=3)
    by_key = {e.key: e for e in list_entries(store)}
    e1 = by_key[k1]
    assert (e1.namespace, e1.kind, e1.code, list(e1.inputs), e1.outputs) == ("m.f", "function", "c1", ["x"], ["return"])
    assert e1.size > 160_000 and e1.hits == 3 and e1.duration == 2.0 and e1.saved == 6.0
    assert e1.last_used == pytest.approx(when) and not e1.pinned
    assert by_key[k2].pinned and by_key[k2].hits == 0 and by_key[k2].last_used == by_key[k2].created
    assert by_key[k3].blobs == {}  # small values live inside the manifest
    groups = {g.namespace: g for g in summarize(by_key.values())}
    assert (groups["m.f"].entries, groups["m.f"].versions, groups["m.f"].hits, groups["m.f"].pinned) == (2, 2, 3, 1)
    assert groups["m.f"].saved == 6.0 and groups["m.g"].versions == 1
    assert [e.key for e in list_entries(store, "m.g")] == [k3]


def test_listing_never_unpickles_and_skips_damaged_manifests(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f", "c1", 1, big(1))
    other = commit(store, "m.f", "c1", 2, big(2))
    path = store.entry_path("m.f", other)
    path.write_bytes(path.read_bytes()[:-10])
    assert keys(store) == {key}
    assert path.exists()  # listing reports nothing and removes nothing; verify does
    assert [p.kind for p in verify(store).problems] == ["damaged manifest"]


def test_du_counts_every_area_and_reclaimable_blobs(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f", "c1", 1, big(1))
    orphan = store.put_blob([b"x" * 1000])
    (store.tmp / "leftover").write_bytes(b"y" * 10)
    report = du(store)
    blob = find_entry(store, key).blobs
    assert report.objects_files == 2 and report.objects_bytes == sum(blob.values()) + 1000
    assert report.reclaimable_files == 1 and report.reclaimable_bytes == orphan["size"]
    assert report.entries_files == 1 and report.tmp_bytes == 10
    assert report.total_bytes == report.objects_bytes + report.entries_bytes + report.tmp_bytes + report.state_bytes


def test_du_finds_the_blobs_of_entries_with_escaped_or_damaged_manifests(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f\u00e9", "c1", 1, big(1))  # a name JSON writes as \u escapes
    commit(store, "m.g", "c1", 1, 1)  # a tiny result: no blob
    damaged = commit(store, "m.h", "c1", 1, big(2))
    store.entry_path("m.h", damaged).write_bytes(b"garbage")
    report = du(store)
    kept = find_entry(store, key).blobs
    assert report.entries_files == 3
    assert report.reclaimable_files == 1  # only the blob of the damaged manifest
    assert report.objects_bytes - report.reclaimable_bytes == sum(kept.values())


def test_stored_size_follows_every_change(tmp_path):
    store = Store(tmp_path / "s")

    def exact() -> int:
        r = du(store)
        return r.objects_bytes + r.entries_bytes

    assert stored_size(store) == 0
    k1 = commit(store, "m.f", "c1", 1, big(1))
    assert stored_size(store) == exact()
    commit(store, "m.f", "c1", 2, big(2))
    commit(store, "m.g", "c1", 2, big(2))  # a shared blob
    assert stored_size(store) == exact()
    age_files(store, 3600)  # directories older than the "racy" window: the cache is trusted
    assert stored_size(store) == exact()
    clear(store, "m.g")
    store.delete_entry("m.f", k1)
    assert stored_size(store) == exact()


def test_resolve_namespace_accepts_a_unique_last_part(tmp_path):
    store = Store(tmp_path / "s")
    commit(store, "__main__.fit_model", "c", 1, 1)
    commit(store, "pkg.a.score", "c", 1, 1)
    commit(store, "pkg.b.score", "c", 1, 1)
    assert resolve_namespace(store, "fit_model") == "__main__.fit_model"
    assert resolve_namespace(store, "pkg.a.score") == "pkg.a.score"
    with pytest.raises(InvalidArgumentError, match="ambiguous"):
        resolve_namespace(store, "score")
    with pytest.raises(InvalidArgumentError, match="no function, block or cell named 'nope'"):
        resolve_namespace(store, "nope")


# ---------------------------------------------------------------------------------------- pins
def test_pin_and_unpin_by_unique_key_prefix(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f", "c1", 1, 1)
    others = [commit(store, "m.f", "c1", 2, 2)]
    while others[-1][0] != key[0]:  # an entry whose key shares a prefix with key's
        others.append(commit(store, "m.f", "c1", len(others) + 2, 0))
    other = others[-1]
    prefix = next(key[:n] for n in range(1, 33) if not any(o.startswith(key[:n]) for o in others))
    assert pin(store, prefix).key == key
    assert store.is_pinned("m.f", key) and not store.is_pinned("m.f", other)
    assert not unpin(store, key).pinned and not store.is_pinned("m.f", key)
    common = os.path.commonprefix([key, other])
    with pytest.raises(InvalidArgumentError, match="ambiguous"):
        pin(store, common)
    with pytest.raises(InvalidArgumentError, match="no entry key starts with"):
        pin(store, "zz")  # keys are hex
    with pytest.raises(InvalidArgumentError, match="give an entry key"):
        pin(store, "")


# ---------------------------------------------------------------------------------------- gc
def test_gc_evicts_least_recently_used_first_by_recorded_use(tmp_path):
    store = Store(tmp_path / "s")
    now = time.time()
    oldest = commit(store, "m.f", "c1", 1, big(1))
    middle = commit(store, "m.f", "c1", 2, big(2))
    newest = commit(store, "m.f", "c1", 3, big(3))
    used(store, "m.f", oldest, now - 10)  # created first, used last: kept
    used(store, "m.f", middle, now - 3000)
    used(store, "m.f", newest, now - 2000)
    # File access times say the opposite: they must not count.
    for key, atime in ((oldest, now - 9000), (middle, now), (newest, now)):
        entry = find_entry(store, key)
        for path in [entry.path, *(store.blob_path(d) for d in entry.blobs)]:
            os.utime(path, ns=(int(atime * 1e9), os.stat(path).st_mtime_ns))
    one = find_entry(store, oldest).size
    report = gc(store, max_size=int(2.5 * one), grace=0)
    assert [e.key for e in report.evicted] == [middle]
    assert keys(store) == {oldest, newest}
    report = gc(store, max_size=int(1.5 * one), grace=0)
    assert [e.key for e in report.evicted] == [newest]
    assert keys(store) == {oldest}
    assert report.freed_blobs == 1 and report.size_after <= 1.5 * one
    assert du(store).reclaimable_files == 0


def test_gc_never_evicts_a_pinned_entry(tmp_path):
    store = Store(tmp_path / "s")
    kept = commit(store, "m.f", "c1", 1, big(1))
    gone = commit(store, "m.f", "c1", 2, big(2))
    used(store, "m.f", kept, time.time() - 30 * DAY)  # the least recently used...
    pin(store, kept)  # ...but pinned
    report = gc(store, max_size=0, max_age="1d", keep_versions=1)
    assert [e.key for e in report.evicted] == [gone]
    assert keys(store) == {kept} and report.over_budget
    cp = Checkpointer("function", "m.f", store)
    assert np.array_equal(cp.load("c1", cp.fingerprint_inputs({"x": 1})).outputs["return"], big(1))


def test_shared_blobs_are_freed_only_when_no_entry_refers_to_them(tmp_path):
    store = Store(tmp_path / "s")
    value = big(7)
    first = commit(store, "m.f", "c1", 1, value)
    second = commit(store, "m.g", "c9", 2, value.copy())  # equal content: one blob
    assert find_entry(store, first).blobs == find_entry(store, second).blobs
    assert du(store).objects_files == 1
    used(store, "m.g", second, time.time())
    now = du(store)
    gc(store, max_size=now.objects_bytes + now.entries_bytes - 100)  # evicting one manifest is enough
    assert keys(store) == {second}
    assert du(store).objects_files == 1  # still referred to by the second entry
    cp = Checkpointer("function", "m.g", store)
    assert np.array_equal(cp.load("c9", cp.fingerprint_inputs({"x": 2})).outputs["return"], value)
    gc(store, max_size=0, grace=0)
    assert keys(store) == set() and du(store).objects_files == 0


def test_keep_versions_keeps_the_most_recently_used_code_versions_per_name(tmp_path):
    store = Store(tmp_path / "s")
    now = time.time()
    v1 = [commit(store, "m.f", "v1", x, x) for x in (1, 2)]
    v2 = commit(store, "m.f", "v2", 1, 1)
    v3 = commit(store, "m.f", "v3", 1, 1)
    used(store, "m.f", v1[0], now - 10)  # v1 is the most recently used version
    used(store, "m.f", v2, now - 5000)
    used(store, "m.f", v3, now - 1000)
    other = [commit(store, "m.g", code, 1, 1) for code in ("a", "b")]
    report = gc(store, keep_versions=2, dry_run=True)
    assert {e.key for e in report.evicted} == {v2}
    assert keys(store) == {*v1, v2, v3, *other}  # dry run: nothing removed
    gc(store, keep_versions=1)
    assert keys(store) == {*v1, other[1]}  # m.g's versions: "b" was committed last
    with pytest.raises(InvalidArgumentError, match="keep_versions"):
        gc(store, keep_versions=0)


def test_max_age_evicts_entries_unused_for_that_long(tmp_path):
    store = Store(tmp_path / "s")
    now = time.time()
    stale = commit(store, "m.f", "c", 1, big(1))
    fresh = commit(store, "m.f", "c", 2, big(2))
    never_used = commit(store, "m.f", "c", 3, big(3))
    used(store, "m.f", stale, now - 40 * DAY)
    used(store, "m.f", fresh, now - 2 * DAY)
    report = gc(store, max_age="30d")
    assert [e.key for e in report.evicted] == [stale]
    assert keys(store) == {fresh, never_used}  # never used: its creation time counts
    gc(store, max_age="1d")
    assert keys(store) == {never_used}


def test_orphans_and_leftovers_wait_for_the_grace_period(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f", "c", 1, big(1))
    orphan = store.put_blob([b"z" * 5000])["digest"]
    (store.tmp / f"123-{'0' * 32}").write_bytes(b"partial")  # a staging file of a crashed commit
    used(store, "ghost.ns", "deadbeef" * 4, time.time())  # a usage record of no entry
    report = gc(store, grace=600)
    assert (report.freed_blobs, report.removed_tmp, report.removed_state) == (0, 0, 0)
    assert store.blob_path(orphan).exists()
    report = gc(store)  # grace 0 by default
    assert (report.freed_blobs, report.removed_tmp, report.removed_state) == (1, 1, 1)
    assert not store.blob_path(orphan).exists() and list(store.tmp.iterdir()) == []
    assert keys(store) == {key} and verify(store, grace=0).garbage == []


def test_a_blob_reused_by_a_commit_in_progress_survives_eviction(tmp_path):
    store = Store(tmp_path / "s")
    value = big(3)
    key = commit(store, "m.f", "c", 1, value)
    age_files(store, 60)
    digest = next(iter(find_entry(store, key).blobs))
    with store.commit():  # another process starts committing the same value: blobs first...
        store.put_value(value)
        gc(store, max_size=0)
        assert keys(store) == set()
        assert store.blob_path(digest).exists()  # ...so its manifest will find the blob
    gc(store, max_size=0)
    assert not store.blob_path(digest).exists()


def test_dry_run_removes_nothing(tmp_path):
    store = Store(tmp_path / "s")
    for x in range(3):
        commit(store, "m.f", "c", x, big(x))
    def files() -> list[Path]:  # the entry index (a cache of the manifests) may be written
        return sorted(p for p in store.root.rglob("*") if not p.name.startswith(".entry-index"))

    before = files()
    report = gc(store, max_size=0, dry_run=True, grace=0)
    assert len(report.evicted) == 3 and report.freed_blobs == 3 and report.dry_run
    assert files() == before


def test_gc_removes_usage_records_of_evicted_entries(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f", "c", 1, big(1))
    used(store, "m.f", key, time.time() - 100)
    gc(store, max_size=0)
    assert not (store.root / layout.entry_state("m.f", key, layout.HITS)).exists()


def test_size_only_gc_within_budget_is_a_cheap_check(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")
    commit(store, "m.f", "c", 1, big(1))
    calls = []
    real = budget.scan_entries
    monkeypatch.setattr(budget, "scan_entries", lambda *a, **k: calls.append(1) or real(*a, **k))
    report = gc(store, max_size="1GB")
    assert not report.full_scan and calls == [] and report.size_before == du(store).objects_bytes + du(store).entries_bytes
    assert gc(store, max_size="1GB", full=True).full_scan and calls == [1]
    assert gc(store, max_size=0).evicted and calls == [1, 1]


def test_automatic_gc_after_each_commit_keeps_the_store_within_the_budget(tmp_path, monkeypatch):
    store_dir = tmp_path / "s"
    one = 20_000 * 8
    monkeypatch.setenv("CHECKPOINT_MAGIC_MAX_SIZE", str(int(3.5 * one)))

    @checkpoint(store=store_dir, ignore=["log"])
    def compute(seed, log):
        log.append(seed)
        return big(seed)

    log: list[int] = []
    for seed in range(6):
        compute(seed, log)
        usage = du(Store(store_dir))  # evicted blobs wait for the grace period: they do not count
        kept = usage.objects_bytes - usage.reclaimable_bytes + usage.entries_bytes
        assert kept <= 3.5 * one + 1024 * 8  # values + small manifests
    store = Store(store_dir)
    assert len(list_entries(store)) == 3
    gc(store, grace=0)  # once the grace period is over, the disk use is within the budget too
    assert stored_size(store) <= 3.5 * one + 1024 * 8
    np.testing.assert_array_equal(compute(5, log), big(5))  # the newest entries were kept
    assert log == list(range(6))
    assert verify(store, grace=0).ok


def test_invalid_budget_in_the_environment_warns_and_keeps_the_result(tmp_path, monkeypatch):
    from checkpoint_magic.exceptions import StoreWriteWarning

    monkeypatch.setenv("CHECKPOINT_MAGIC_MAX_SIZE", "a lot")

    @checkpoint(store=tmp_path / "s")
    def compute(seed):
        return seed + 1

    with pytest.warns(StoreWriteWarning, match="invalid size 'a lot'"):
        assert compute(1) == 2


# ---------------------------------------------------------------------------------------- clear
def test_clear_one_name_frees_only_the_blobs_it_alone_used(tmp_path):
    store = Store(tmp_path / "s")
    shared = big(1)
    commit(store, "m.f", "c", 1, shared)
    commit(store, "m.f", "c", 2, big(2))
    kept = commit(store, "m.g", "c", 1, shared.copy())
    report = clear(store, "m.f", grace=0)
    assert report.removed == {"m.f": 2} and report.freed_blobs == 1
    assert keys(store) == {kept} and du(store).objects_files == 1
    report = clear(store, grace=0)
    assert report.removed == {"m.g": 1} and report.freed_blobs == 1
    assert du(store).objects_files == 0 and list_entries(store) == []


def test_every_maintenance_call_refuses_a_newer_store_format(tmp_path):
    from checkpoint_magic.exceptions import StoreFormatError

    root = tmp_path / "s"
    root.mkdir()
    (root / "FORMAT").write_text('{"format": 99}')
    (root / "objects").mkdir()
    (root / "objects" / "precious").write_text("data of a newer version")
    store = Store(root)
    for call in (list_entries, du, verify, clear, lambda s: gc(s, max_size=0, grace=0), lambda s: gc(s, max_size="1GB")):
        with pytest.raises(StoreFormatError, match="newer checkpoint_magic"):
            call(store)
    assert (root / "objects" / "precious").read_text() == "data of a newer version"
    assert sorted(p.name for p in Path(root).iterdir()) == ["FORMAT", "objects"]


# ---------------------------------------------------------------------------------------- safety
def _user_files(root: Path) -> list[Path]:
    """Files a user keeps where a store has its folders, two hours old: never the store's to remove."""
    digest = "ab" + "0" * 30
    files = [
        root / "tmp" / "notes.txt",
        root / "tmp" / "123-partial",  # close to a staging name, but not one
        root / "objects" / "ab" / "report.csv",
        root / "objects" / "cd" / digest,  # a digest in the wrong folder
        root / "state" / "x" / "y.pin",
        root / "state" / "x" / ".mine.tmp",
        root / "state" / "x" / "notes.hits",
    ]
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("user data")
    when = time.time() - 7200
    for path in files:
        os.utime(path, (when, when))
    return files


def test_a_directory_without_a_format_file_is_never_changed(tmp_path):
    from checkpoint_magic.exceptions import StoreFormatError

    files = _user_files(tmp_path / "d")
    store = Store(tmp_path / "d")
    calls = [
        lambda s: gc(s, grace=0),
        lambda s: gc(s, max_size=0, grace=0),
        lambda s: gc(s, max_size="1GB"),
        lambda s: verify(s, fix=True, grace=0),
        lambda s: verify(s, drop_unsigned=True),
        lambda s: clear(s, grace=0, force=True),
        lambda s: pin(s, "ab"),
    ]
    for call in calls:
        with pytest.raises(StoreFormatError, match="not a checkpoint store .*no FORMAT file.*nothing was changed"):
            call(store)
    (tmp_path / "d" / "FORMAT").write_text("not json")
    with pytest.raises(StoreFormatError, match="not a checkpoint_magic FORMAT file"):
        gc(Store(tmp_path / "d"), grace=0)
    assert all(path.read_text() == "user data" for path in files)
    assert verify(Store(tmp_path / "e")).ok  # checking (without changing) an empty place is fine


def test_maintenance_removes_only_the_names_the_store_writes(tmp_path):
    store = Store(tmp_path / "s")
    key = commit(store, "m.f", "c", 1, big(1))
    files = _user_files(store.root)
    gone = [
        store.tmp / f"{os.getpid()}-{'0' * 32}",  # a crashed commit's staging file
        store.blob_path(store.put_blob([b"orphan"])["digest"]),
        store.state / "gone.ns" / f"{'e' * 32}.hits",  # usage and pin records of removed entries
        store.state / "gone.ns" / f"{'e' * 32}.pin",
        store.state / "gone.ns" / "last-miss.json",  # records of a namespace without entries
        store.state / "gone.ns" / "latest-output.json",
        store.state / "m.f" / ".last-miss.4242.tmp",  # the temporary names of their writers
        store.state / "m.f" / f"latest-output.json.4242-{'a' * 32}.tmp",
    ]
    for path in gone:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    for path in [*files, *gone]:
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    report = verify(store, grace=60)
    assert {p.kind for p in report.garbage} == {"unreferenced blob", "staging leftover", "stale state"}
    assert report.problems == [] and not any("user" in p.path or "notes" in p.path for p in report.garbage)
    report = gc(store, grace=60)
    assert (report.freed_blobs, report.removed_tmp, report.removed_state) == (1, 1, 6)
    assert not any(path.exists() for path in gone)
    verify(store, fix=True, grace=0)
    clear(store, grace=0)
    assert keys(store) == set() and not store.entry_path("m.f", key).exists()
    assert all(path.read_text() == "user data" for path in files)


def test_blobs_of_evicted_or_cleared_entries_wait_for_the_grace_period(tmp_path):
    store = Store(tmp_path / "s")
    commit(store, "m.f", "c", 1, big(1))
    commit(store, "m.g", "c", 1, big(2))
    report = gc(store, max_size=0, grace=600)  # an explicit grace period keeps young garbage
    assert len(report.evicted) == 2 and (report.freed_blobs, report.pending_blobs) == (0, 2)
    assert du(store).objects_files == 2 and not report.over_budget  # garbage does not count
    assert gc(store).freed_blobs == 2  # by default (grace 0) garbage is freed at once
    commit(store, "m.f", "c", 1, big(1))
    report = clear(store, grace=600)
    assert report.removed == {"m.f": 1} and (report.freed_blobs, report.pending_blobs) == (0, 1)
    age_files(store, 3600)
    assert gc(store, grace=600).freed_blobs == 1 and du(store).objects_files == 0


@pytest.mark.parametrize("grace", [-1, float("nan"), float("inf"), "soon", True])
def test_the_grace_period_must_be_a_finite_number_of_seconds(tmp_path, grace):
    store = Store(tmp_path / "s")
    commit(store, "m.f", "c", 1, 1)
    for call in (gc, verify, clear):
        with pytest.raises(InvalidArgumentError, match="invalid grace period"):
            call(store, grace=grace)
    assert len(keys(store)) == 1


def test_clear_keeps_pinned_entries_unless_forced_and_removes_the_state_of_what_it_removes(tmp_path):
    from checkpoint_magic.core.explain import record_miss

    store = Store(tmp_path / "s")
    pinned = commit(store, "m.f", "c", 1, big(1))
    other = commit(store, "m.f", "c", 2, big(2))
    pin(store, pinned)
    used(store, "m.f", other, time.time())
    record_miss(store, "m.f", "input changed: x", time.time())
    report = clear(store, "m.f", grace=0)
    assert report.removed == {"m.f": 1} and report.kept_pinned == 1 and report.freed_blobs == 1
    assert keys(store) == {pinned} and not (store.root / layout.entry_state("m.f", other, layout.HITS)).exists()
    assert (store.state / "m.f" / "last-miss.json").exists()  # the name still has an entry
    report = clear(store, grace=0, force=True)
    assert report.removed == {"m.f": 1} and report.kept_pinned == 0 and report.freed_blobs == 1
    assert keys(store) == set() and du(store).objects_files == 0
    # Pin and last-miss records went with them (empty shard folders are kept: a commit may be
    # about to write into one).
    assert [p for p in (store.state / "m.f").rglob("*") if not p.is_dir()] == []
