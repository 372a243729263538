"""The store: layout, dedup, verified reads, damaged files, format versions, concurrent writers."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from checkpoint_magic import config
from checkpoint_magic.exceptions import StoreFormatError
from checkpoint_magic.store import layout
from checkpoint_magic.store.core import (
    FORMAT_VERSION,
    CorruptBlobError,
    CorruptManifestError,
    Store,
    get_store,
)


def test_layout_is_created_on_first_write_only(store_dir):
    store = Store(store_dir)
    assert not store_dir.exists()
    store.put_blob([b"hello"])
    assert json.loads((store_dir / "FORMAT").read_text())["format"] == FORMAT_VERSION == 2
    assert {p.name for p in store_dir.iterdir()} == {
        "FORMAT",
        ".gitignore",
        "objects",
        "entries",
        "state",
        "tmp",
        "leases",
    }
    assert list((store_dir / "tmp").iterdir()) == []


def test_blob_named_by_content_and_deduplicated(store_dir):
    store = Store(store_dir)
    a = store.put_blob([b"abc", b"def"])
    b = store.put_blob([b"abcdef"])
    assert a == b and a["size"] == 6
    files = [p for p in (store_dir / "objects").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name == a["digest"]


def test_equal_values_share_one_blob(store_dir):
    store = Store(store_dir)
    big = np.arange(100_000.0)
    r1, r2 = store.put_value(big), store.put_value(big.copy())
    assert r1["blobs"] == r2["blobs"]
    assert len([p for p in (store_dir / "objects").rglob("*") if p.is_file()]) == 1


@pytest.mark.parametrize("size", [100_000, 40 << 20])  # small read, and the pipelined read path
def test_verified_read_detects_flipped_bytes_and_removes_the_blob(store_dir, size):
    store = Store(store_dir)
    data = np.random.default_rng(0).integers(0, 255, size, dtype=np.uint8)
    record = store.put_value(data)
    ref = record["blobs"][0]
    path = store.blob_path(ref["digest"])
    with open(path, "r+b") as f:
        f.seek(size // 2)
        byte = f.read(1)
        f.seek(size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptBlobError, match="does not match"):
        store.get_value(record)
    assert not path.exists()


def test_truncated_and_missing_blobs(store_dir):
    store = Store(store_dir)
    record = store.put_value(np.arange(50_000))
    path = store.blob_path(record["blobs"][0]["digest"])
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.raises(CorruptBlobError, match="size"):
        store.get_value(record)
    with pytest.raises(CorruptBlobError, match="missing"):
        store.get_value(record)


def test_manifest_roundtrip_and_checksum(store_dir):
    store = Store(store_dir)
    store.write_entry("pkg.mod.func", "k" * 32, {"outputs": {}, "note": "é"})
    assert store.read_entry("pkg.mod.func", "k" * 32)["note"] == "é"
    assert store.read_entry("pkg.mod.func", "missing") is None
    path = store.entry_path("pkg.mod.func", "k" * 32)
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptManifestError):
        store.read_entry("pkg.mod.func", "k" * 32)
    assert not path.exists()  # removed so it can be rewritten


@pytest.mark.parametrize("content", [b"", b"garbage", b"CMM1 00\n{}", b"CMM1\n"])
def test_garbage_manifests_are_corrupt_not_crashes(store_dir, content):
    store = Store(store_dir)
    store.write_entry("ns", "key", {"outputs": {}})
    store.entry_path("ns", "key").write_bytes(content)
    with pytest.raises(CorruptManifestError):
        store.read_entry("ns", "key")


def test_namespace_directories_are_safe_and_distinct(store_dir):
    store = Store(store_dir)
    for ns in ["a/b", "a_b", "../../etc", "<ipython-input-1>.f", "x" * 300]:
        store.write_entry(ns, "k", {"ns": ns})
        path = store.entry_path(ns, "k")
        assert store_dir / "entries" in path.parents
        assert store.read_entry(ns, "k")["ns"] == ns
    assert len(list(store.iter_entry_keys())) == 5


def test_newer_format_is_a_clear_error_and_nothing_is_overwritten(store_dir):
    store_dir.mkdir()
    (store_dir / "FORMAT").write_text(json.dumps({"format": 99}))
    store = Store(store_dir)
    with pytest.raises(StoreFormatError, match="newer checkpoint_magic"):
        store.read_entry("ns", "key")
    with pytest.raises(StoreFormatError):
        store.put_blob([b"x"])
    assert json.loads((store_dir / "FORMAT").read_text()) == {"format": 99}
    assert sorted(p.name for p in store_dir.iterdir()) == ["FORMAT"]


def test_failed_write_leaves_no_partial_blob_or_temp_file(store_dir):
    store = Store(store_dir)
    store.put_blob([b"first"])
    enospc = OSError(errno.ENOSPC, "No space left on device")
    with (
        mock.patch("checkpoint_magic.store.backends.local.write_full", side_effect=enospc),
        pytest.raises(OSError),
    ):
        store.put_blob([np.ones(1000)])
    assert list((store_dir / "tmp").iterdir()) == []
    assert len([p for p in (store_dir / "objects").rglob("*") if p.is_file()]) == 1


def test_failed_large_write_leaves_nothing_and_a_retry_succeeds(store_dir):
    store = Store(store_dir)
    big = np.random.default_rng(3).random(4 << 20)  # 32 MiB: hashed while it is written
    enospc = OSError(errno.ENOSPC, "No space left on device")
    with (
        mock.patch("checkpoint_magic.store.backends.local.write_full", side_effect=enospc),
        pytest.raises(OSError),
    ):
        store.put_blob([big])
    assert list((store_dir / "tmp").iterdir()) == []
    ref = store.put_blob([big])
    out = np.empty_like(big)
    store.read_blob_into(ref, [memoryview(out).cast("B")])
    assert np.array_equal(out, big)
    assert store.put_blob([big]) == ref  # deduplicated: the staging copy is dropped
    assert list((store_dir / "tmp").iterdir()) == []


def test_clear_by_namespace(store_dir):
    store = Store(store_dir)
    store.write_entry("a", "1", {})
    store.write_entry("a", "2", {})
    store.write_entry("b", "1", {})
    assert store.clear("a") == 2
    assert [ns for ns, _ in store.iter_entry_keys()] == ["b"]
    assert store.clear() == 1


def test_location_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(tmp_path / "from-env"))
    assert config.resolve_store_path(tmp_path / "arg") == tmp_path / "arg"
    assert config.resolve_store_path() == tmp_path / "from-env"
    monkeypatch.delenv("CHECKPOINT_MAGIC_DIR")
    monkeypatch.chdir(tmp_path)
    assert config.resolve_store_path() == tmp_path / ".Lutil-checkpoint"
    assert get_store(None).root == tmp_path / ".Lutil-checkpoint"


def _writer(root: str, seed: int, out: multiprocessing.Queue[str]) -> None:
    store = Store(root)
    for i in range(20):
        value = np.full(
            30_000, (seed + i) % 5, dtype=np.float64
        )  # overlapping values across processes
        record = store.put_value(value)
        store.write_entry("concurrent", f"k{(seed + i) % 5}", {"outputs": {"return": record}})
    out.put("ok")


def test_concurrent_writers_produce_valid_entries(store_dir):
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(store_dir), s, out)) for s in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert [out.get(timeout=5) for _ in procs] == ["ok"] * 4
    store = Store(store_dir)
    for _, key in store.iter_entry_keys("concurrent"):
        manifest = store.read_entry("concurrent", key)
        value = store.get_value(manifest["outputs"]["return"])
        assert np.all(value == int(key[1:]))
    assert list(Path(store_dir, "tmp").iterdir()) == []
    assert os.listdir(store_dir / "entries")


def test_usage_records_never_recreate_a_deleted_store(store_dir):
    import shutil

    from checkpoint_magic.store.core import flush_usage

    store = Store(store_dir)
    store.write_entry("ns", "k", {"outputs": {}})
    store.record_use("ns", "k")
    store.record_use("ns", "k")
    assert store.usage("ns", "k")[0] == 2
    store.record_use("ns", "k")
    shutil.rmtree(store_dir)
    flush_usage()
    assert not store_dir.exists()


def test_hot_records_are_reused_only_while_the_file_is_unchanged(store_dir):
    import os
    import time

    store = Store(store_dir)
    store.write_entry("ns", "k", {"outputs": {"a": 1}, "inputs": {"x": "1"}})
    path = store.entry_path("ns", "k")
    old = time.time() - 60
    os.utime(path, (old, old))  # older than the "racily clean" window
    first = store.read_entry("ns", "k", hot_only=True)
    assert first == {"outputs": {"a": 1}, "key": "k", "namespace": "ns"}  # only what a hit needs
    assert store.read_entry("ns", "k", hot_only=True) is first  # reused, verified once
    store.write_entry("ns", "k", {"outputs": {"a": 2}})  # a new commit: a new file
    assert store.read_entry("ns", "k", hot_only=True)["outputs"] == {"a": 2}
    os.unlink(path)
    assert store.read_entry("ns", "k", hot_only=True) is None


def test_a_recently_modified_manifest_is_always_reread(store_dir):
    store = Store(store_dir)
    store.write_entry("ns", "k", {"outputs": {"a": 1}})
    store.read_entry("ns", "k", hot_only=True)
    path = store.entry_path("ns", "k")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # same inode, same size, maybe the same timestamp tick
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptManifestError):
        store.read_entry("ns", "k", hot_only=True)


def test_clear_keeps_pinned_entries_unless_forced(store_dir):
    store = Store(store_dir)
    store.write_entry("ns", "a" * 32, {"outputs": {}})
    store.write_entry("ns", "b" * 32, {"outputs": {}})
    store.set_pinned("ns", "a" * 32)
    assert store.clear("ns") == 1
    assert [k for _, k in store.iter_entry_keys("ns")] == ["a" * 32]
    assert store.clear("ns", force=True) == 1


def test_backend_version_is_the_stat_version_and_none_for_what_is_not_a_file(store_dir):
    store = Store(store_dir)
    store.write_entry("ns", "k", {"outputs": {}})
    backend, name = store.backend, layout.entry("ns", "k")
    assert backend.version(name) == backend.stat(name).version is not None
    assert backend.version("entries/ns/missing") is None
    assert backend.version("entries/ns") is None  # a folder
    os.symlink(store.entry_path("ns", "k"), store_dir / "entries" / "ns" / "link")
    assert backend.version("entries/ns/link") is None  # a link is never followed
    store.write_entry("ns", "k", {"outputs": {"a": 1}})  # replaced: a new version
    assert backend.version(name) == backend.stat(name).version


@pytest.mark.parametrize(
    "outputs",
    [
        ["not", "a", "mapping"],
        {"return": "not a record"},
        {"return": {"codec": "pickle", "inline": "@@@ not base64 @@@"}},
        {"return": {"codec": "pickle", "inline": 42}},
        {"return": {"codec": "pickle", "inline": "", "payload": "a JSON string, never bytes"}},
    ],
)
def test_a_hit_on_malformed_output_records_is_a_miss_with_a_warning(store_dir, outputs):
    from checkpoint_magic.core.checkpointer import Checkpointer
    from checkpoint_magic.exceptions import CorruptEntryWarning

    checkpointer = Checkpointer("function", "m.f", store=str(store_dir))
    key = checkpointer.key("c" * 32, {})
    # A manifest with a valid checksum (it needs no secret) but nonsense outputs.
    checkpointer.store.write_entry("m.f", key, {"outputs": outputs})
    with pytest.warns(CorruptEntryWarning):
        assert checkpointer.load("c" * 32, {}) is None


def test_inline_values_are_decoded_once_per_remembered_manifest(store_dir):
    store = Store(store_dir)
    store.write_entry("ns", "k", {"outputs": {"return": store.put_value([1, 2])}})
    old = time.time() - 60
    os.utime(store.entry_path("ns", "k"), (old, old))
    record = store.read_entry("ns", "k", hot_only=True)["outputs"]["return"]
    assert isinstance(record["payload"], bytes)
    with mock.patch("binascii.a2b_base64", side_effect=AssertionError("decoded again")):
        again = store.read_entry("ns", "k", hot_only=True)["outputs"]["return"]
        assert store.get_value(again) == [1, 2]
        assert store.get_value(again) is not store.get_value(again)  # a new value per hit


def test_only_records_of_remembered_manifests_keep_their_decoded_value(store_dir):
    # A record a caller holds (put_value's, a full read's) is never served from the memo of
    # decoded values: it is not kept alive in it either (16 KiB of text each, 4096 of them).
    store = Store(store_dir)
    record = store.put_value("text")
    assert store.get_value(record) == "text"
    store.write_entry("ns", "k", {"outputs": {"return": record}})
    assert store.get_value(store.read_entry("ns", "k")["outputs"]["return"]) == "text"
    assert store._decoded == {}
    _aged(store, "ns", "k")
    hot = store.read_entry("ns", "k", hot_only=True)["outputs"]["return"]
    assert store.get_value(hot) == "text" and store.get_value(hot) is store.get_value(hot)
    assert len(store._decoded) == 1


def test_has_entries_reuses_a_file_it_saw_and_notices_when_it_is_gone(store_dir):
    store = Store(store_dir)
    for key in ("a" * 32, "b" * 32):
        store.write_entry("m.f", key, {"outputs": {}})
    with mock.patch("os.scandir", wraps=os.scandir) as scandir:
        assert store.has_entries("m.f")
        store.write_entry("m.f", "c" * 32, {"outputs": {}})  # the folder changes
        assert store.has_entries("m.f")
    # The first answer listed the shard folders and the first shard; the second came from
    # one stat of the file seen then.
    assert scandir.call_count == 2
    for key in ("a" * 32, "b" * 32, "c" * 32):
        store.delete_entry("m.f", key)
    assert not store.has_entries("m.f")


def _aged(store: Store, namespace: str, key: str) -> None:
    """Make a manifest old enough to be remembered by the hot path (not racily clean)."""
    old = time.time() - 60
    os.utime(store.entry_path(namespace, key), (old, old))


@pytest.mark.parametrize("value", ["small, inline", np.arange(100_000.0)], ids=["inline", "blob"])
def test_a_store_moved_away_while_hit_is_a_clean_miss(tmp_path, value):
    """A hit is checked at the store's location: a store renamed away (the user archives it,
    or points a link elsewhere) is a miss, not a hit from the old folder nor a 'missing blob'."""
    from checkpoint_magic.core.checkpointer import Checkpointer

    location = tmp_path / "s"
    checkpointer = Checkpointer("function", "m.moved", store=str(location))
    store = checkpointer.store
    key = checkpointer.key("c" * 32, {})
    store.write_entry("m.moved", key, {"outputs": {"return": store.put_value(value)}})
    _aged(store, "m.moved", key)
    for _ in range(3):  # remembered by the hot path
        assert checkpointer.load("c" * 32, {}) is not None
    location.rename(tmp_path / "archived")
    assert store.read_entry("m.moved", key) is None
    assert store.read_entry("m.moved", key, hot_only=True) is None
    assert checkpointer.load("c" * 32, {}) is None  # no CorruptEntryWarning (they are errors here)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_stores_used_by_a_process_hold_no_descriptors(tmp_path):
    """get_store keeps every store of the process: none may keep a file descriptor open."""
    before = len(os.listdir("/proc/self/fd"))
    for i in range(40):
        store = get_store(tmp_path / str(i))
        store.write_entry("m.f", "k" * 32, {"outputs": {"return": store.put_value(i)}})
        _aged(store, "m.f", "k" * 32)
        for _ in range(2):
            assert store.read_entry("m.f", "k" * 32, hot_only=True) is not None
    # 40 stores: one held each would show; a writer thread may hold one for a moment
    assert len(os.listdir("/proc/self/fd")) - before < 10


def test_hits_of_a_remembered_manifest_hand_out_immutable_values_and_fresh_mutable_ones(tmp_path):
    from checkpoint_magic import checkpoint
    from checkpoint_magic.store.backends import TICK_SECONDS

    @checkpoint(store=str(tmp_path / "s"))
    def listed(x):
        return [x, {"k": x}]

    @checkpoint(store=str(tmp_path / "s"))
    def big(x):
        return 10**30 + x

    assert listed(1) == [1, {"k": 1}] and big(1) == 10**30 + 1
    time.sleep(TICK_SECONDS * 2)  # old enough to be remembered by the next hit
    first = listed(1)
    first[1]["k"] = "changed by the caller"
    first.append("more")
    assert listed(1) == [1, {"k": 1}] and listed(1) is not listed(1)  # decoded on each hit
    assert [big(1) for _ in range(3)] == [10**30 + 1] * 3
    store = get_store(str(tmp_path / "s"))
    key = big.checkpointer.key(*big._fingerprints({"x": 1}))
    record = store.read_entry(big.checkpointer.namespace, key, hot_only=True)["outputs"]["return"]
    json.dumps(record, default=str)  # the remembered record itself is left as read


def test_a_manifest_replaced_by_a_link_is_a_miss_and_the_commit_replaces_the_link(
    store_dir, tmp_path
):
    # As lstat sees it, nothing is stored there: a miss (never a store fault that leaves the
    # call uncached for good); the commit replaces the link itself, never its target.
    import shutil

    from checkpoint_magic.core.checkpointer import Checkpointer

    cp = Checkpointer("function", "m.f", store=Store(store_dir))
    assert cp.save("c" * 32, {"x": "1"}, {"return": 1}, duration=1.0)
    manifest = Path(cp.store.entry_path("m.f", cp.key("c" * 32, {"x": "1"})))
    outside = tmp_path / "outside-manifest"
    shutil.copy(manifest, outside)
    before = outside.read_bytes()
    manifest.unlink()
    manifest.symlink_to(outside)
    fresh = Checkpointer("function", "m.f", store=Store(store_dir))  # nothing remembered
    assert fresh.load("c" * 32, {"x": "1"}) is None
    assert fresh.save("c" * 32, {"x": "1"}, {"return": 2}, duration=1.0)
    assert not manifest.is_symlink() and outside.read_bytes() == before
    assert fresh.load("c" * 32, {"x": "1"}).outputs == {"return": 2}
