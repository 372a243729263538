"""A store that cannot be fooled: manifests bound to their key, bounded parsing, leases, .gitignore."""

import shutil

import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.exceptions import CorruptEntryWarning, StoreFormatError
from checkpoint_magic.store import Store
from checkpoint_magic.store.budget import gc
from checkpoint_magic.tools.maintenance import list_entries, verify


def test_a_manifest_copied_over_another_key_is_a_miss_not_its_value(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")

    @checkpoint(store=store)
    def f(x):
        return [x] * 10_000

    f(1), f(2)
    entries = {e.inputs["x"]: e for e in list_entries(store)}
    one, two = sorted(entries.values(), key=lambda e: e.created)
    shutil.copyfile(two.path, one.path)  # the attacker's step
    with pytest.warns(CorruptEntryWarning, match="written for entry"):
        assert f(1) == [1] * 10_000


def test_a_deeply_nested_manifest_is_a_miss_with_a_warning(tmp_path):
    import xxhash

    store = Store(tmp_path / "s")
    store.write_entry("m.f", "k", {"outputs": {}})
    body = b"[" * 100_000 + b"]" * 100_000 + b"\n{}"
    data = b"CMM1 " + xxhash.xxh3_128_hexdigest(body).encode() + b"\n" + body
    store.entry_path("m.f", "k").write_bytes(data)
    from checkpoint_magic.store.core import CorruptManifestError

    with pytest.raises(CorruptManifestError, match="nested"):
        store.read_entry("m.f", "k", hot_only=True)


def test_gc_frees_space_at_once_but_never_a_blob_a_live_commit_claimed(tmp_path):
    store = Store(tmp_path / "s")
    with store.commit():
        ref = store.put_blob([b"x" * 100_000])
        assert gc(store).freed_blobs == 0  # claimed by the lease of the commit in flight
        assert store.blob_path(ref["digest"]).exists()
    assert gc(store).freed_blobs == 1 and not store.blob_path(ref["digest"]).exists()


def test_tools_refuse_a_path_that_is_not_a_store_and_stores_ignore_themselves(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("mine")
    with pytest.raises(StoreFormatError, match="not a checkpoint store"):
        list_entries(Store(tmp_path / "project"))
    with pytest.raises(StoreFormatError, match="not a checkpoint store"):
        verify(Store(tmp_path / "project"))
    store = Store(tmp_path / "s")
    store.put_blob([b"abc"])
    assert (tmp_path / "s" / ".gitignore").read_text().strip().endswith("*")


def test_a_deleted_store_is_recreated_by_the_next_commit(tmp_path):
    store = Store(tmp_path / "s")

    @checkpoint(store=store)
    def f(x):
        return x + 1

    assert f(1) == 2
    shutil.rmtree(tmp_path / "s")
    assert f(2) == 3  # no "could not be stored" warning (pytest turns it into an error)
    assert len(list_entries(store)) == 1
