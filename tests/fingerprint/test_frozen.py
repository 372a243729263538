"""Digests reused for read-only memory maps of unchanged files; everything else is rehashed."""

from __future__ import annotations

import os
import time

import numpy as np
import pandas as pd
import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.fingerprint import frozen
from checkpoint_magic.fingerprint.values import fingerprint

CALLS: list[str] = []


def _mapped(tmp_path, values, name="a.npy"):
    path = tmp_path / name
    np.save(path, values)
    past = time.time() - 10
    os.utime(path, (past, past))
    a = np.load(path, mmap_mode="r")
    assert frozen.remember(a, frozen.signature(os.stat(path)))
    return path, a


def test_a_remembered_memmap_is_hashed_once_then_its_digest_is_reused(tmp_path, monkeypatch):
    path, a = _mapped(tmp_path, np.arange(1000.0))
    first = fingerprint(a)
    hashed = []
    monkeypatch.setattr(
        "checkpoint_magic.fingerprint.arrays.array_body", lambda *args: hashed.append(1)
    )
    assert fingerprint(a) == first
    assert hashed == []  # reused, not hashed


def test_views_and_slices_of_a_remembered_memmap_get_their_own_fingerprints(tmp_path):
    _, a = _mapped(tmp_path, np.arange(1000.0))
    fingerprint(a)  # the root's digest is known from now on
    _, b = _mapped(tmp_path, np.arange(1000.0) + 1, "b.npy")
    _, c = _mapped(tmp_path, np.arange(1000.0), "c.npy")  # equal content to a, unremembered
    assert fingerprint(a[:10]) != fingerprint(a[10:20])
    assert fingerprint(a[::2]) != fingerprint(a)
    assert fingerprint(a[10:20]) == fingerprint(c[10:20])
    assert fingerprint(a[:500].reshape(50, 10)) == fingerprint(c[:500].reshape(50, 10))
    assert fingerprint(a) == fingerprint(c)
    assert fingerprint(a) != fingerprint(b)


def test_a_remembered_memmap_whose_file_changes_in_place_is_rehashed(tmp_path):
    path, a = _mapped(tmp_path, np.arange(1000.0))
    before_fp = fingerprint(a)
    st = os.stat(path)
    with open(path, "r+b") as f:  # same size, same inode, new content
        f.seek(st.st_size - 8)
        f.write(np.float64(-1.0).tobytes())
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime set back: ctime still moves
    assert a[-1] == -1.0  # the mapping shows the new content...
    assert fingerprint(a) != before_fp  # ...and so does its fingerprint
    assert fingerprint(a) == fingerprint(np.load(path, mmap_mode="r"))


def test_a_remembered_memmap_reshaped_in_place_is_rehashed(tmp_path):
    _, a = _mapped(tmp_path, np.arange(1000.0))
    before_fp = fingerprint(a)
    a.shape = (100, 10)  # metadata changed on the same object
    assert fingerprint(a) != before_fp


def test_writable_arrays_are_never_remembered_and_always_rehashed(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.arange(10.0))
    signature = frozen.signature(os.stat(path))
    copy_on_write = np.load(path, mmap_mode="c")
    assert not frozen.remember(copy_on_write, signature)
    plain = np.arange(10.0)
    assert not frozen.remember(plain, signature)
    plain.setflags(write=False)
    assert not frozen.remember(plain, signature)  # read-only, but not a memory map
    before_fp = fingerprint(plain)
    plain.setflags(write=True)  # a read-only array made writeable again...
    plain[0] = 42.0
    assert fingerprint(plain) != before_fp  # ...is rehashed
    copy_on_write[0] = 42.0
    assert fingerprint(copy_on_write) != fingerprint(np.load(path, mmap_mode="r"))


def test_a_memmap_of_a_file_changed_before_it_was_remembered_is_refused(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.arange(10.0))
    verified = frozen.signature(os.stat(path))
    np.save(path, np.arange(10.0) + 1)  # replaced after "verification"
    assert not frozen.remember(np.load(path, mmap_mode="r"), verified)


def step1(n):
    CALLS.append("step1")
    return np.arange(n, dtype=np.float64)


def step2(a):
    CALLS.append("step2")
    return float(a.sum())


def test_a_restored_writable_array_mutated_in_place_is_a_miss(store_dir):
    s1 = checkpoint(store=store_dir)(step1)
    s2 = checkpoint(store=store_dir)(step2)
    CALLS.clear()
    a = s1(100_000)
    assert s2(a) == float(np.arange(100_000).sum())
    again = s1(100_000)  # a hit: a new writable array
    assert again.flags.writeable
    assert s2(again) == float(np.arange(100_000).sum())
    assert CALLS == ["step1", "step2"]
    again[0] = 1e9  # changed in place
    assert s2(again) == float(np.arange(100_000).sum()) + 1e9
    assert CALLS == ["step1", "step2", "step2"]


def test_a_chain_of_mmap_hits_stays_right_when_a_value_changes(store_dir):
    s1 = checkpoint(store=store_dir, mmap_mode="r")(step1)
    s2 = checkpoint(store=store_dir, mmap_mode="r")(step2)
    CALLS.clear()
    expected = float(np.arange(100_000).sum())
    assert s2(s1(100_000)) == expected
    time.sleep(0.2)  # past the racy window: the blob's verification is remembered
    for _ in range(3):
        assert s2(s1(100_000)) == expected
    assert CALLS == ["step1", "step2", "step2"]  # a memmap is another input than an ndarray
    restored = s1(100_000)
    with pytest.raises(ValueError):
        restored.setflags(write=True)  # a read-only file mapping cannot be made writeable
    copy = np.array(restored)
    copy[0] = 1e9
    assert s2(copy) == expected + 1e9
    assert s2(restored[1:]) == expected  # a slice is its own, correctly hashed value
    assert s2(restored[1:]) == expected
    assert CALLS == ["step1", "step2", "step2", "step2", "step2"]


def frame_sum(df):
    CALLS.append("frame_sum")
    return float(df.to_numpy().sum())


def test_a_restored_frame_with_a_replaced_column_is_a_miss(store_dir):
    make = checkpoint(store=store_dir)(lambda: pd.DataFrame({"a": np.arange(5.0), "b": 1.0}))
    total = checkpoint(store=store_dir)(frame_sum)
    CALLS.clear()
    df = make()
    assert total(df) == 15.0
    df = make()  # a hit
    assert total(df) == 15.0
    df["b"] = 2.0  # a column replaced
    assert total(df) == 20.0
    assert CALLS == ["frame_sum", "frame_sum"]
