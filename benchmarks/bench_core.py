"""Core benchmarks: fingerprinting and ``@checkpoint`` hits and misses against their anchors.

Every target of the issue is a ratio measured side by side in this one process against an
anchor that is re-measured here (``np.max``, ``joblib.hash``, ``joblib.Memory``, a minimal
pure-Python disk cache, raw ``np.save`` / ``np.load``), or an absolute figure for this machine
class (a tiny hit <= 15 us, an ``mmap_mode='r'`` hit < 1 ms). Candidates are interleaved round
by round (see ``_harness.py``); each row shows the median ratio (and the ratio of the
minimums), the target, PASS/FAIL and the raw medians / minimums. Peak memory of a big hit is
read in a fresh child process (``VmHWM`` after ``clear_refs``). Our fsync is forced off
(``CHECKPOINT_MAGIC_FSYNC=0``) where we are compared with writers that never fsync. The
table is printed and written as Markdown to ``benchmarks/results/core.md``.

Only public APIs are used, except :func:`flush_ours` (the store's background usage writer).

Usage::

    python benchmarks/bench_core.py                 # full run (about 4 minutes on 2 cores)
    python benchmarks/bench_core.py --quick         # small sizes, few rounds: a smoke run
    python benchmarks/bench_core.py --only hit_     # only benchmarks whose name starts so
    python benchmarks/bench_core.py --list          # names of the benchmarks

Everything is written to a temporary directory under /tmp that is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import itertools
import os
import pickle
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash
from _harness import (
    Candidate,
    MiB,
    Row,
    absolute_row,
    calls_for,
    fmt_bytes,
    info_row,
    interleave,
    load_average,
    peak_memory,
    report,
    run_child,
    run_suite,
    select,
    skip_row,
    slowdown_row,
    speedup_row,
)

RESULTS = Path(__file__).resolve().parent / "results" / "core.md"
NO_COPY_LIMIT = 10 * 10**6  # "peak memory grows by under 10 MB"


# --------------------------------------------------------------------------------------------
# configuration and our API (which may not exist yet)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """Sizes and round counts of one run."""

    quick: bool
    tmp: Path
    array_bytes: int = 1 << 30  # fingerprinting target: 1 GiB float64
    frame_rows: int = 10_000_000
    big_bytes: int = 256 * MiB  # caching targets: 256 MiB array
    rounds: int = 9  # the 1 GiB fingerprint (joblib.hash ~1.6 s a call)
    cache_rounds: int = 15  # the 256 MiB hits and misses (tens of ms; noisier)
    frame_rounds: int = 7
    object_frame_rounds: int = 5  # joblib.hash takes ~10-20 s per call on that frame
    tiny_rounds: int = 15
    tiny_batch_seconds: float = 0.2
    tiny_miss_calls: int = 200  # misses per batch (each writes a few files)
    lineage_rounds: int = 9

    @classmethod
    def make(cls, quick: bool, tmp: Path) -> Config:
        if not quick:
            return cls(quick, tmp)
        return cls(
            quick,
            tmp,
            array_bytes=64 * MiB,
            frame_rows=200_000,
            big_bytes=16 * MiB,
            rounds=3,
            cache_rounds=3,
            frame_rounds=3,
            object_frame_rounds=3,
            tiny_rounds=5,
            tiny_batch_seconds=0.02,
            tiny_miss_calls=30,
            lineage_rounds=3,
        )

    def workdir(self, name: str) -> Path:
        path = self.tmp / name
        path.mkdir(parents=True, exist_ok=True)
        return path


def _import_ours(module: str, attr: str) -> tuple[Any, str]:
    """``(object, '')`` if ``checkpoint_magic.<module>.<attr>`` imports, else ``(None, reason)``.

    ``module=""`` looks the name up on the package itself (its public API).
    """
    try:
        name = f"checkpoint_magic.{module}" if module else "checkpoint_magic"
        mod = __import__(name, fromlist=[attr])
        return getattr(mod, attr), ""
    except Exception as exc:  # any failure of a half-written module means "not available"
        return None, f"ours unavailable: {type(exc).__name__}: {exc}"


def our_fingerprint() -> tuple[Callable[[Any], str] | None, str]:
    """``checkpoint_magic.fingerprint.values.fingerprint`` or the reason it cannot be used."""
    found, reason = _import_ours("fingerprint.values", "fingerprint")
    if found is None:  # the pre-restructure path, for comparing against older commits
        older, _ = _import_ours("hashing", "fingerprint")
        if older is not None:
            return older, ""
    return found, reason


def our_checkpoint() -> tuple[Callable[..., Any] | None, str]:
    """``checkpoint_magic.checkpoint`` (the decorator) or the reason it cannot be used."""
    return _import_ours("", "checkpoint")


def flush_ours() -> None:
    """Wait for our store's background hit records, which would re-create a removed temp dir."""
    # Internal: store.core.flush_usage is not re-exported; where it moved, nothing is flushed.
    flush, _ = _import_ours("store", "flush_usage")
    if flush is None:
        flush, _ = _import_ours("store.core", "flush_usage")
    if flush is not None:
        flush()


def joblib_memory(location: Path) -> Any:
    import joblib

    return joblib.Memory(location=str(location), verbose=0)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


def random_array(nbytes: int, seed: int = 0) -> np.ndarray:
    """A C-contiguous float64 array of ``nbytes`` random values (incompressible)."""
    return np.random.default_rng(seed).random(nbytes // 8)


@functools.lru_cache(maxsize=1)
def numeric_frame(rows: int) -> Any:
    """``rows`` x (5 numeric columns + one string column as pandas' default ``str`` dtype)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc

    rng = np.random.default_rng(1)
    keys = pa.array((np.arange(rows, dtype=np.int64) * 2654435761) % 10**10)  # distinct, 4-13 chars
    strings = pc.binary_join_element_wise("id-", pc.cast(keys, pa.string()), "")  # fast, via Arrow
    return pd.DataFrame(
        {
            "a": rng.random(rows),
            "b": rng.standard_normal(rows),
            "c": rng.random(rows).astype(np.float32),
            "d": rng.integers(0, 1 << 40, rows),
            "e": np.arange(rows, dtype=np.int32),
            "s": pd.Series(strings, dtype="str"),
        }
    )


def frame_with(rows: int, string_dtype: str) -> Any:
    """The benchmark frame with its string column as ``string_dtype`` (``'str'``/``'object'``)."""
    df = numeric_frame(rows)
    return df if string_dtype == "str" else df.astype({"s": object})


# Functions that get cached. Module level, so joblib and our code hashing see ordinary code.


def add(a: int, b: int) -> int:
    return a + b


def first_value(a: np.ndarray) -> float:
    return float(a[0])


def make_big(n: int) -> np.ndarray:
    return np.random.default_rng(2).random(n)


_PAYLOAD: dict[str, np.ndarray] = {}


def emit_payload(i: int) -> np.ndarray:
    """Return the preallocated payload array stamped with ``i`` (new content for each ``i``)."""
    out = _PAYLOAD["array"]
    out[0] = i
    return out


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def remove_big_files(root: Path, min_bytes: int) -> int:
    """Delete every file under ``root`` of at least ``min_bytes``; return how many."""
    removed = 0
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size >= min_bytes:
            path.unlink()
            removed += 1
    return removed


def describe_result(value: Any) -> str:
    """Short note on what a hit returned: plain in-memory ndarray or something lazier."""
    if isinstance(value, np.memmap):
        return "returned a np.memmap (lazy load)"
    if isinstance(value, np.ndarray) and not value.flags.owndata and value.base is not None:
        return f"returned a view on {type(value.base).__name__}"
    return ""


def fsync_env_name() -> str:
    """The environment variable that turns our fsync on (``config.ENV_FSYNC`` where it exists)."""
    name, _ = _import_ours("config", "ENV_FSYNC")
    return name if isinstance(name, str) else "CHECKPOINT_MAGIC_FSYNC"


@contextlib.contextmanager
def fsync_forced_off() -> Iterator[None]:
    """Our fsync off while inside: the same durability as joblib.Memory and a raw ``np.save``."""
    name = fsync_env_name()
    old = os.environ.get(name)
    os.environ[name] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[name]
        else:
            os.environ[name] = old


def check(condition: bool, message: str) -> str:
    """``''`` when ``condition`` holds, else a warning note for the table."""
    return "" if condition else f"WARNING: {message}"


def hit_note(cached: Any, *args: Any) -> str:
    """A warning unless ``cached.is_cached(*args)`` says the timed calls are really hits."""
    is_cached = getattr(cached, "is_cached", None)
    if is_cached is None:
        return "is_cached() unavailable: hit not verified"
    return check(bool(is_cached(*args)), "is_cached() is False: the timed calls may be misses")


def notes(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


# --------------------------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------------------------


def bench_fingerprint_array(cfg: Config) -> list[Row]:
    """fingerprint(1 GiB float64) vs one np.max pass and joblib.hash, plus its peak memory."""
    import joblib

    fingerprint, reason = our_fingerprint()
    a = random_array(cfg.array_bytes)
    label = f"fingerprint {fmt_bytes(a.nbytes)} float64"
    candidates = [Candidate("np.max", a.max), Candidate("joblib.hash", lambda: joblib.hash(a))]
    if fingerprint is not None:
        candidates.append(Candidate("ours", lambda: fingerprint(a)))
    t = interleave(candidates, cfg.rounds)
    if fingerprint is None:
        return [
            skip_row(label, "np.max/ours >= 0.8", reason, t["np.max"]),
            skip_row(label, "joblib.hash/ours >= 30", reason, t["joblib.hash"]),
        ]
    sanity = fingerprint_sanity(fingerprint, a)
    bandwidth = f"np.max reads {a.nbytes / t['np.max'].median / 1e9:.1f} GB/s"
    ceiling = t["joblib.hash"].median / t["np.max"].median
    return [
        speedup_row(label, t["ours"], t["np.max"], at_least=0.8, note=notes(bandwidth, sanity)),
        speedup_row(
            label,
            t["ours"],
            t["joblib.hash"],
            at_least=30,
            note=f"a hash as fast as np.max would reach {ceiling:.1f}x here",
        ),
        no_copy_row(label, lambda: fingerprint(a)),
    ]


def fingerprint_sanity(fingerprint: Callable[[Any], str], a: np.ndarray) -> str:
    """Notes if the fingerprint is not stable, or misses a one-element change (a stale memo)."""
    first = fingerprint(a)
    stable = fingerprint(a) == first
    old = a[-1]
    a[-1] = old + 1.0
    changed = fingerprint(a) != first
    a[-1] = old
    return notes(
        check(stable, "fingerprint not stable"), check(changed, "in-place change not seen")
    )


def no_copy_row(label: str, func: Callable[[], Any]) -> Row:
    """Row for "peak memory grows by under 10 MB" (tracemalloc and ru_maxrss)."""
    peak = peak_memory(func)
    worst = max(peak.tracemalloc_peak, peak.maxrss_delta)
    return Row(
        benchmark=f"{label}: peak memory",
        target="growth < 10 MB",
        measured=f"tracemalloc +{fmt_bytes(peak.tracemalloc_peak)}, ru_maxrss +{fmt_bytes(peak.maxrss_delta)}",
        status="PASS" if worst < NO_COPY_LIMIT else "FAIL",
        note=""
        if peak.maxrss_reset
        else "ru_maxrss high-water mark could not be reset (lower bound)",
    )


def bench_frame(cfg: Config, string_dtype: str, rounds: int) -> list[Row]:
    """fingerprint(10M-row frame) vs joblib.hash, string column as ``string_dtype``.

    No warm-up round: joblib.hash needs none and costs up to ~20 s per call here; ours is
    warmed by the sanity check (two calls) before the timed rounds.
    """
    import joblib

    fingerprint, reason = our_fingerprint()
    df = frame_with(cfg.frame_rows, string_dtype)
    label = f"fingerprint {cfg.frame_rows:,}-row frame, 5 numeric + `{string_dtype}` column"
    candidates = [Candidate("joblib.hash", lambda: joblib.hash(df))]
    sanity = ""
    if fingerprint is not None:
        equal = fingerprint(df) == fingerprint(df.copy(deep=True))
        sanity = check(equal, "an equal deep copy fingerprints differently")
        candidates.append(Candidate("ours", lambda: fingerprint(df)))
    t = interleave(candidates, rounds, warmup=0)
    if fingerprint is None:
        return [skip_row(label, "joblib.hash/ours >= 15", reason, t["joblib.hash"])]
    return [speedup_row(label, t["ours"], t["joblib.hash"], at_least=15, note=sanity)]


def bench_frame_str(cfg: Config) -> list[Row]:
    return bench_frame(cfg, "str", cfg.frame_rounds)


def bench_frame_object(cfg: Config) -> list[Row]:
    return bench_frame(cfg, "object", cfg.object_frame_rounds)


class MinimalDiskCache:
    """The floor anchor of a tiny hit: the least a disk cache can do, in pure Python.

    Key = xxh3-128 of the pickled arguments (plus the function's name); a hit opens the
    file named by the key, reads it and unpickles it. A miss computes, pickles to a temp
    file and renames it into place. No code hashing, no verification, no usage records.
    """

    def __init__(self, root: Path, func: Callable[..., Any]):
        self.root = str(root)
        self.func = func
        self.prefix = f"{func.__module__}.{func.__qualname__}\0".encode()

    def __call__(self, *args: Any) -> Any:
        key = xxhash.xxh3_128_hexdigest(self.prefix + pickle.dumps(args, protocol=5))
        path = f"{self.root}/{key}"
        try:
            with open(path, "rb") as fh:
                return pickle.loads(fh.read())
        except FileNotFoundError:
            pass
        value = self.func(*args)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(pickle.dumps(value, protocol=5))
        os.replace(tmp, path)
        return value


def bench_hit_tiny(cfg: Config) -> list[Row]:
    """A hit of ``add(1, 2)``: @checkpoint vs joblib.Memory and vs a minimal disk cache."""
    checkpoint, reason = our_checkpoint()
    cached_jl = joblib_memory(cfg.workdir("tiny-joblib")).cache(add)
    assert cached_jl(1, 2) == 3  # the miss that fills the cache
    floor = MinimalDiskCache(cfg.workdir("tiny-minimal"), add)
    assert floor(1, 2) == 3
    calls = max(200, calls_for(lambda: floor(1, 2), cfg.tiny_batch_seconds))
    candidates = [
        Candidate("joblib.Memory", lambda: cached_jl(1, 2), calls=max(50, calls // 8)),
        Candidate("minimal cache", lambda: floor(1, 2), calls=calls),
    ]
    if checkpoint is not None:
        ours = checkpoint(store=str(cfg.workdir("tiny-ours")))(add)
        assert ours(1, 2) == 3
        candidates.append(Candidate("ours", lambda: ours(1, 2), calls=calls))
    t = interleave(candidates, cfg.tiny_rounds)
    label = "hit `add(1, 2)`"
    if checkpoint is None:
        return [
            skip_row(label, "joblib.Memory/ours >= 8", reason, t["joblib.Memory"]),
            skip_row(label, "ours/minimal cache <= 2.5", reason, t["minimal cache"]),
        ]
    note = notes(f"{calls} calls per batch", hit_note(ours, 1, 2))
    return [
        absolute_row(label, t["ours"], at_most=15e-6, note=note),
        speedup_row(label, t["ours"], t["joblib.Memory"], at_least=8),
        slowdown_row(
            label,
            t["ours"],
            t["minimal cache"],
            at_most=2.5,
            note="xxh3(pickle(args)), open, read, pickle.loads",
        ),
    ]


def bench_miss_tiny(cfg: Config) -> list[Row]:
    """A miss of ``add(i, 1)`` with a new ``i`` on every call: @checkpoint vs joblib.Memory.

    Both without fsync (joblib.Memory never fsyncs; ours is forced off through
    ``CHECKPOINT_MAGIC_FSYNC``). The minimal cache is shown for context.
    """
    checkpoint, reason = our_checkpoint()
    counter = itertools.count(10)  # shared: every call of any candidate is a new argument
    cached_jl = joblib_memory(cfg.workdir("miss-tiny-joblib")).cache(add)
    floor = MinimalDiskCache(cfg.workdir("miss-tiny-minimal"), add)
    calls = cfg.tiny_miss_calls
    candidates = [
        Candidate("joblib.Memory", lambda: cached_jl(next(counter), 1), calls=calls),
        Candidate("minimal cache", lambda: floor(next(counter), 1), calls=calls),
    ]
    label = "miss `add(i, 1)`, new i each call"
    with fsync_forced_off():
        if checkpoint is not None:
            ours = checkpoint(store=str(cfg.workdir("miss-tiny-ours")))(add)
            ours(0, 1)  # the namespace exists, as after a first run
            candidates.append(Candidate("ours", lambda: ours(next(counter), 1), calls=calls))
        t = interleave(candidates, cfg.tiny_rounds)
    rows = []
    if checkpoint is None:
        rows.append(skip_row(label, "ours/joblib.Memory <= 1", reason, t["joblib.Memory"]))
    else:
        last = next(counter)
        with fsync_forced_off():
            ours(last, 1)
        check_ours = check(ours.is_cached(last, 1), "a miss was not stored")
        rows.append(
            slowdown_row(
                label,
                t["ours"],
                t["joblib.Memory"],
                at_most=1.0,
                note=notes(f"{calls} calls per batch, fsync off on both sides", check_ours),
            )
        )
    rows.append(info_row(f"{label} (context)", t["minimal cache"], "temp file + rename"))
    return rows


def bench_hit_big_arg(cfg: Config) -> list[Row]:
    """A hit whose argument is a 256 MiB array (tiny result): @checkpoint vs joblib.Memory.

    Two equal arrays (distinct objects) alternate, so a cache keyed by ``id`` cannot help.
    """
    checkpoint, reason = our_checkpoint()
    a = random_array(cfg.big_bytes, seed=3)
    arrays = [a, a.copy()]
    label = f"hit with a {fmt_bytes(a.nbytes)} array argument"
    cached_jl = joblib_memory(cfg.workdir("arg-joblib")).cache(first_value)
    cached_jl(a)
    jl_args = itertools.cycle(arrays)
    candidates = [Candidate("joblib.Memory", lambda: cached_jl(next(jl_args)))]
    if checkpoint is not None:
        ours = checkpoint(store=str(cfg.workdir("arg-ours")))(first_value)
        ours(a)
        our_args = itertools.cycle(arrays)
        candidates.append(Candidate("ours", lambda: ours(next(our_args))))
    t = interleave(candidates, cfg.cache_rounds)
    if checkpoint is None:
        return [skip_row(label, "joblib.Memory/ours >= 20", reason, t["joblib.Memory"])]
    note = notes("two equal arrays alternate", hit_note(ours, a))
    return [speedup_row(label, t["ours"], t["joblib.Memory"], at_least=20, note=note)]


def bench_hit_big_result(cfg: Config) -> list[Row]:
    """A hit returning a 256 MiB array vs a raw np.load of the same array (joblib for context)."""
    checkpoint, reason = our_checkpoint()
    n = cfg.big_bytes // 8
    expected = make_big(n)
    raw = cfg.workdir("result-raw") / "raw.npy"
    np.save(raw, expected)
    label = f"hit returning a {fmt_bytes(expected.nbytes)} array"
    cached_jl = joblib_memory(cfg.workdir("result-joblib")).cache(make_big)
    cached_jl(n)
    candidates = [
        Candidate("np.load", lambda: np.load(raw)),
        Candidate("joblib.Memory", lambda: cached_jl(n)),
    ]
    note = ""
    if checkpoint is not None:
        ours = checkpoint(store=str(cfg.workdir("result-ours")))(make_big)
        ours(n)
        hit = ours(n)
        note = notes(
            check(np.array_equal(hit, expected), "hit returned different values"),
            describe_result(hit),
            hit_note(ours, n),
        )
        del hit
        candidates.append(Candidate("ours", lambda: ours(n)))
    del expected
    t = interleave(candidates, cfg.cache_rounds)
    rows = []
    if checkpoint is None:
        rows.append(skip_row(label, "ours/np.load <= 1.1", reason, t["np.load"]))
    else:
        rows.append(slowdown_row(label, t["ours"], t["np.load"], at_most=1.1, note=note))
    rows.append(info_row(f"{label} (context)", t["joblib.Memory"], "not a target"))
    return rows


@dataclass
class MissRunner:
    """One candidate of the miss benchmark: each call writes a new 256 MiB array, then cleanup.

    ``write(i)`` must persist the payload stamped with ``i``; ``teardown`` removes every big
    file under ``root`` and counts the rounds where no such file was found (nothing stored).
    """

    name: str
    root: Path
    write: Callable[[int], Any]
    min_bytes: int
    counter: Iterator[int]
    empty_rounds: int = 0

    def call(self) -> None:
        self.write(next(self.counter))

    def teardown(self) -> None:
        if remove_big_files(self.root, self.min_bytes) == 0:
            self.empty_rounds += 1

    def candidate(self) -> Candidate:
        return Candidate(self.name, self.call, teardown=self.teardown)


def bench_miss_big_result(cfg: Config) -> list[Row]:
    """A miss storing a 256 MiB array vs a raw np.save to a fresh file (joblib for context)."""
    checkpoint, reason = our_checkpoint()
    _PAYLOAD["array"] = random_array(cfg.big_bytes, seed=4)
    counter = itertools.count(1)  # shared: every call, of any candidate, gets new content
    min_bytes = cfg.big_bytes // 2
    label = f"miss storing a {fmt_bytes(cfg.big_bytes)} array"

    raw_dir = cfg.workdir("miss-raw")
    runners = [
        MissRunner(
            "np.save",
            raw_dir,
            lambda i: np.save(raw_dir / f"{i}.npy", emit_payload(i)),
            min_bytes,
            counter,
        ),
    ]
    jl_dir = cfg.workdir("miss-joblib")
    runners.append(
        MissRunner(
            "joblib.Memory", jl_dir, joblib_memory(jl_dir).cache(emit_payload), min_bytes, counter
        )
    )
    if checkpoint is not None:
        our_dir = cfg.workdir("miss-ours")
        runners.append(
            MissRunner(
                "ours", our_dir, checkpoint(store=str(our_dir))(emit_payload), min_bytes, counter
            )
        )
    with fsync_forced_off():
        t = interleave([r.candidate() for r in runners], cfg.cache_rounds)
    _PAYLOAD.clear()

    rows = []
    if checkpoint is None:
        rows.append(skip_row(label, "ours/np.save <= 1.3", reason, t["np.save"]))
    else:
        empty = runners[-1].empty_rounds
        note = check(
            empty == 0, f"{empty} calls left no file >= {fmt_bytes(min_bytes)} in the store"
        )
        rows.append(
            slowdown_row(
                label,
                t["ours"],
                t["np.save"],
                at_most=1.3,
                note=notes(note, "fsync off (CHECKPOINT_MAGIC_FSYNC=0), like np.save"),
            )
        )
    rows.append(info_row(f"{label} (context)", t["joblib.Memory"], "not a target"))
    return rows


def bench_hit_mmap(cfg: Config) -> list[Row]:
    """A hit returning a 256 MiB array with ``mmap_mode='r'`` vs ``np.load(mmap_mode='r')``."""
    checkpoint, reason = our_checkpoint()
    n = cfg.big_bytes // 8
    raw = cfg.workdir("mmap-raw") / "raw.npy"
    np.save(raw, make_big(n))
    label = f"hit returning a {fmt_bytes(n * 8)} array, mmap_mode='r'"
    calls = 20
    candidates = [Candidate("np.load(mmap)", lambda: np.load(raw, mmap_mode="r"), calls=calls)]
    note = ""
    if checkpoint is not None:
        ours = checkpoint(store=str(cfg.workdir("mmap-ours")), mmap_mode="r")(make_big)
        ours(n)
        note = notes(describe_result(ours(n)), hit_note(ours, n))
        candidates.append(Candidate("ours", lambda: ours(n), calls=calls))
    t = interleave(candidates, cfg.cache_rounds)
    if checkpoint is None:
        return [skip_row(label, "ours <= 1 ms", reason, t["np.load(mmap)"])]
    return [
        absolute_row(label, t["ours"], at_most=1e-3, note=note),
        info_row(f"{label} (context)", t["np.load(mmap)"], "not a target"),
    ]


def lineage_step1(n: int) -> np.ndarray:
    """The first step of the lineage benchmark: a big array."""
    return np.random.default_rng(5).random(n)


def lineage_step2(a: np.ndarray) -> float:
    """The second step: a tiny result computed from the big array."""
    return float(a[0] + a[-1])


def bench_lineage(cfg: Config) -> list[Row]:
    """``b = step2(step1(x))`` run twice with ``mmap_mode='r'``: the cost of the second step2 hit.

    The second run's ``step2`` receives the memory-mapped array its first step's hit returned:
    a store that remembers where the array came from (its lineage) need not hash its 256 MiB
    again. The anchor is the same ``step2`` hit with a fresh in-memory copy of that array
    (which must be hashed). Each round gets a new ``step1`` hit / a new copy (untimed).
    """
    checkpoint, reason = our_checkpoint()
    n = cfg.big_bytes // 8
    label = f"lineage: step2 hit on step1's {fmt_bytes(n * 8)} mmap result"
    target = "ours(lineage)/ours(equal copy) <= 0.2"
    if checkpoint is None:
        return [skip_row(label, target, reason)]
    store = str(cfg.workdir("lineage-ours"))
    step1 = checkpoint(store=store, mmap_mode="r")(lineage_step1)
    step2 = checkpoint(store=store, mmap_mode="r")(lineage_step2)
    expected = step2(step1(n))  # the first run: two misses
    held: dict[str, Any] = {}

    def fresh_hit() -> None:
        held.clear()
        held["a"] = step1(n)

    def fresh_copy() -> None:
        held.clear()
        held["a"] = np.array(step1(n))  # equal values, new memory, no lineage

    candidates = [
        Candidate("step2 on step1's hit", lambda: step2(held["a"]), setup=fresh_hit),
        Candidate("step2 on an equal copy", lambda: step2(held["a"]), setup=fresh_copy),
    ]
    t = interleave(candidates, cfg.lineage_rounds)
    fresh_hit()
    note = notes(
        describe_result(held["a"]),
        check(step2(held["a"]) == expected, "step2 hit returned a different value"),
        hit_note(step2, held["a"]),
    )
    held.clear()
    ours, anchor = t["step2 on step1's hit"], t["step2 on an equal copy"]
    return [
        Row(
            benchmark=label,
            target=target,
            measured=f"{ours.median / anchor.median:.2f}x (min {ours.minimum / anchor.minimum:.2f}x)",
            status="PASS" if ours.median <= 0.2 * anchor.median else "FAIL",
            ours=ours.describe(),
            anchor=f"equal copy: {anchor.describe()}",
            note=notes("the mmap hit's digest is reused (fingerprint.frozen); the copy is hashed", note),
        )
    ]


#: The children of :func:`bench_memory_hit`. The store is filled by a child too, so that
#: the function is imported the same way (``bench_core.make_big``) when filled and when hit.
_MEMORY_FILL = """
sys.path.insert(0, {bench_dir!r})
import bench_core
from checkpoint_magic import checkpoint
f = checkpoint(store={store!r})(bench_core.make_big)
f({n})
f(1000)
print(json.dumps({{"hit": f.is_cached({n})}}))
"""
_MEMORY_CHILD = """
sys.path.insert(0, {bench_dir!r})
import numpy as np
import bench_core
from checkpoint_magic import checkpoint
f = checkpoint(store={store!r})(bench_core.make_big)
assert f.is_cached({n}), "not a hit"
f(1000)  # warm-up hit: imports and first-use caches are not what is measured
rss_mark()
a = {call}
print(json.dumps({{"growth": rss_growth(), "nbytes": int(a.nbytes)}}))
"""


def bench_memory_hit(cfg: Config) -> list[Row]:
    """Peak RSS growth of a hit returning a 256 MiB array, in a fresh child (vs np.load's)."""
    checkpoint, reason = our_checkpoint()
    n = cfg.big_bytes // 8
    label = f"hit returning a {fmt_bytes(n * 8)} array: peak RSS (fresh child)"
    target = "growth <= 1.1x size"
    raw = cfg.workdir("memory-raw") / "raw.npy"
    np.save(raw, make_big(n))
    if checkpoint is None:
        return [skip_row(label, target, reason)]
    store = str(cfg.workdir("memory-ours"))
    bench_dir = str(Path(__file__).resolve().parent)
    filled = run_child(_MEMORY_FILL.format(bench_dir=bench_dir, store=store, n=n))
    if not filled["hit"]:
        return [Row(label, target, "-", "ERROR", note="the filled store does not hit")]
    ours = run_child(_MEMORY_CHILD.format(bench_dir=bench_dir, store=store, n=n, call=f"f({n})"))
    anchor = run_child(
        _MEMORY_CHILD.format(bench_dir=bench_dir, store=store, n=n, call=f"np.load({str(raw)!r})")
    )
    ratio = ours["growth"] / ours["nbytes"]
    return [
        Row(
            benchmark=label,
            target=target,
            measured=f"{ratio:.2f}x (+{fmt_bytes(ours['growth'])})",
            status="PASS" if ratio <= 1.1 else "FAIL",
            ours=f"+{fmt_bytes(ours['growth'])}",
            anchor=f"np.load: +{fmt_bytes(anchor['growth'])} ({anchor['growth'] / anchor['nbytes']:.2f}x)",
            note="VmHWM after clear_refs, child started through sh",
        )
    ]


BENCHMARKS: dict[str, Callable[[Config], list[Row]]] = {
    "fingerprint_array": bench_fingerprint_array,
    "fingerprint_frame_str": bench_frame_str,
    "fingerprint_frame_object": bench_frame_object,
    "hit_tiny": bench_hit_tiny,
    "miss_tiny": bench_miss_tiny,
    "hit_big_arg": bench_hit_big_arg,
    "hit_big_result": bench_hit_big_result,
    "miss_big_result": bench_miss_big_result,
    "hit_mmap": bench_hit_mmap,
    "lineage": bench_lineage,
    "memory_hit": bench_memory_hit,
}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few rounds (smoke run)"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only benchmarks whose name starts with NAME (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmark names and exit")
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"Markdown output (default {RESULTS})"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    names = select(list(BENCHMARKS), args.only)
    if not names:
        return 0
    cfg = Config.make(args.quick, Path(tempfile.mkdtemp(prefix="cm-bench-core-", dir="/tmp")))
    start, load_before = time.perf_counter(), load_average()

    def between(k: int) -> None:
        if not any(n.startswith("fingerprint_frame") for n in names[k + 1 :]):
            numeric_frame.cache_clear()  # the frame is shared by the two frame benchmarks only

    try:
        rows = run_suite("bench_core", BENCHMARKS, cfg, names, between)
    finally:
        flush_ours()
        shutil.rmtree(cfg.tmp, ignore_errors=True)
    report(
        "checkpoint_magic core benchmarks",
        rows,
        quick=cfg.quick,
        elapsed=time.perf_counter() - start,
        loads=(load_before, load_average()),
        output=args.output,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
