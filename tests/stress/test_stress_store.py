"""Long fault-injection and concurrency runs of the store (``make stress``; see README.md).

The scenarios are those of ``tests/tools/test_integrity.py``, repeated many more times, plus
concurrent writers under an automatic size budget, random damage and random write failures.
Every scenario counts wrong values, exceptions in user calls and writes outside the store,
and requires zero of each.
"""

from __future__ import annotations

import errno
import os
import random
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

from checkpoint_magic import checkpoint  # noqa: E402
from checkpoint_magic.exceptions import CorruptEntryWarning, StoreWriteWarning  # noqa: E402
from checkpoint_magic.store.backends import local as store_module  # noqa: E402
from checkpoint_magic.store.core import Store  # noqa: E402
from checkpoint_magic.store.deferred import flush_all  # noqa: E402
from checkpoint_magic.tools.maintenance import list_entries, verify  # noqa: E402
from tests.tools import test_integrity as base  # noqa: E402

REPEATS = int(os.environ.get("STRESS_REPEATS", "1"))  # multiply every loop below


@pytest.mark.parametrize("run", range(3 * REPEATS))
def test_eight_processes_many_rounds(tmp_path, run):
    store = base.run_concurrent(tmp_path, processes=8, rounds=40)
    report = verify(store, grace=0)
    assert report.problems == [] and report.garbage == []


def test_twelve_processes_under_an_automatic_size_budget(tmp_path):
    """gc runs after every commit in every process while the others read: values stay right."""
    store = base.run_concurrent(
        tmp_path,
        processes=12,
        rounds=30 * REPEATS,
        extra_env={"CHECKPOINT_MAGIC_MAX_SIZE": "600KB", "TOLERATE_WARNINGS": "1"},
    )
    verify(store, fix=True, grace=0)
    after = verify(store, grace=0)
    assert after.problems == [] and after.garbage == []


def test_sigkill_many_times(tmp_path):
    base.kill_during_commits(tmp_path, repeats=40 * REPEATS, rng=random.Random(20240611))


@pytest.mark.parametrize("run", range(2 * REPEATS))
def test_gc_and_verify_fix_loops_at_grace_0_during_eight_writers(tmp_path, run):
    store = base.run_concurrent(tmp_path, processes=8, rounds=40, during=base.gc_and_verify_fix)
    report = verify(store, grace=0)
    assert report.problems == [] and report.garbage == []


@pytest.mark.parametrize(
    "command",
    [["gc", "--max-size", "300KB", "--grace", "0"], ["clear", "--yes", "--grace", "0"], ["clear", "fill.v1", "--force"]],
    ids=["gc", "clear-all", "clear-one"],
)
def test_sigkill_during_gc_and_clear_many_times(tmp_path, command):
    base.kill_during_maintenance(tmp_path, command, repeats=40 * REPEATS, rng=random.Random(11))


def test_hostile_stores_many_rounds(tmp_path):
    totals = {"wrong": 0, "exceptions": 0}
    for i in range(5 * REPEATS):
        for how in base.HOSTILE:
            wrong, errors, _ = base.hostile_round(tmp_path / f"{i}-{base.HOSTILE.index(how)}", how, calls=6)
            totals["wrong"] += wrong
            totals["exceptions"] += errors
    assert totals == {"wrong": 0, "exceptions": 0}


@checkpoint(ignore=["log"])
def noisy(seed, n, log):
    log.append(seed)
    return {"seed": seed, "data": np.random.default_rng(seed).random(n), "tail": list(range(seed % 7))}


def _random_damage(path: Path, rng: random.Random) -> str:
    data = bytearray(path.read_bytes())
    how = rng.choice(["flip", "flips", "truncate", "empty", "append", "delete", "zero"])
    if how == "flip" and data:
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif how == "flips" and data:
        for _ in range(rng.randint(2, 50)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif how == "truncate":
        del data[rng.randrange(len(data) + 1) :]
    elif how == "empty":
        data = bytearray()
    elif how == "append":
        data += os.urandom(rng.randint(1, 100))
    elif how == "zero" and data:
        start = rng.randrange(len(data))
        data[start : start + rng.randint(1, 4096)] = bytes(min(4096, len(data) - start))
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(bytes(data))
    return how


def test_random_damage_never_yields_a_wrong_value(tmp_path, monkeypatch):
    rng = random.Random(7)
    store = Store(tmp_path / "s")
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(store.root))
    log: list[int] = []
    sizes = [100, 5000, 50_000]
    warned = 0
    for i in range(150 * REPEATS):
        # Two calls: often one whose entry was damaged in an earlier round (or is new).
        calls = [(i % 10, rng.choice(sizes)), (rng.randrange(10), rng.choice(sizes))]
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            for seed, n in calls:
                value = noisy(seed, n, log)
                assert value["seed"] == seed and value["tail"] == list(range(seed % 7))
                np.testing.assert_array_equal(value["data"], np.random.default_rng(seed).random(n))
        assert all(issubclass(w.category, CorruptEntryWarning) for w in record), [str(w.message) for w in record]
        assert len(record) <= 2
        warned += len(record)
        entry = rng.choice(list_entries(store))
        files = [p for p in [entry.path, *(store.blob_path(d) for d in entry.blobs)] if p.exists()]
        _random_damage(rng.choice(files), rng)
    assert warned > 10 * REPEATS, warned  # damage was met (and survived) many times
    report = verify(store, fix=True, grace=0)
    assert report.ok and verify(store, grace=0).problems == []


def test_random_write_failures_never_leave_a_partial_entry(tmp_path):
    rng = random.Random(3)
    store = Store(tmp_path / "s")
    real = store_module.write_full

    @checkpoint(store=store)
    def compute(seed, n):
        return {"a": np.random.default_rng(seed).random(n), "b": np.arange(n) * seed, "seed": seed}

    read_only_said = False
    for i in range(100 * REPEATS):
        fail_at = rng.randrange(4)
        error = rng.choice([errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT])
        calls: list[int] = []

        def write_full(fd, view, fail_at=fail_at, error=error, calls=calls):
            calls.append(1)
            if len(calls) - 1 == fail_at:
                raise OSError(error, "injected")
            return real(fd, view)

        seed, n = i, rng.choice([10, 30_000, 200_000])
        with mock.patch.object(store_module, "write_full", write_full), warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            value = compute(seed, n)
        np.testing.assert_array_equal(value["a"], np.random.default_rng(seed).random(n))
        assert len(record) <= 1 and all(issubclass(w.category, StoreWriteWarning) for w in record)
        flush_all()  # no record (hit counts, last miss) is half-way through tmp/ in a thread
        assert list(store.tmp.iterdir()) == []
        assert verify(store).problems == []
        failed = len(calls) > fail_at
        stored = compute.is_cached(seed, n)
        assert stored == (not failed)  # a failed write leaves no entry, else a whole entry
        # A failure warns, except a lasting one (a read-only disk) said once already.
        assert bool(record) == failed or (error == errno.EROFS and read_only_said)
        read_only_said |= failed and error == errno.EROFS
        if stored:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                np.testing.assert_array_equal(compute(seed, n)["b"], np.arange(n) * seed)
