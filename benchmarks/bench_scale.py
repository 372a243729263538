"""Scale benchmarks: hits and the store tools at 1,000 vs 100,000 entries, gc of half a store.

Targets (issue #15, "Hot paths and scale"):

- a hit at 100,000 entries costs at most 1.5x the same hit at 1,000 (one key hit over and
  over, and a different random key each call);
- ``ls`` / ``du`` / ``verify`` (the public functions of ``checkpoint_magic.tools``, called
  in-process) at 100,000 entries take at most ~40x their time at 1,000, also right after a
  commit changed the entries folder; ``ls -l`` (every entry built) is shown too, and the
  one-off rebuild of the entry index; the command line (``python -m checkpoint_magic ls``)
  is timed once per size in a subprocess;
- ``gc`` evicting half of a 100,000-entry store takes under a minute.

The stores are filled through the public API: the checkpointed function ``fill`` is called
with ``n`` distinct arguments from a thread pool (file creation dominates and releases the
GIL). Every 20th result is a 24 KB array, so that 5 % of the entries have a blob (the rest
are small enough to live inside their manifest). Built stores are kept under
``benchmarks/results/scale-stores/`` (git-ignored), keyed by the store's ``FORMAT`` version
and the package version, and reused while they still hit; ``--rebuild`` forces a new one.
``gc`` runs on the large store, and the entries it evicts are computed again afterwards.

Usage::

    python benchmarks/bench_scale.py            # 100,000 vs 1,000 entries
    python benchmarks/bench_scale.py --quick    # 5,000 vs 200 entries, fewer rounds
    python benchmarks/bench_scale.py --only ls --only du
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _harness import (
    Candidate,
    Row,
    Timing,
    absolute_row,
    fmt_seconds,
    interleave,
    load_average,
    report,
    run_suite,
    select,
    within_row,
)
from _workloads import BLOB_EVERY, fill

import checkpoint_magic
from checkpoint_magic import checkpoint

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale.md"
STORES = HERE / "results" / "scale-stores"
NAMESPACE = "bench_scale.fill"  # the entries' name, whatever module runs the benchmark


@dataclass(frozen=True)
class Config:
    """Sizes and round counts of one run."""

    quick: bool
    tmp: Path
    rebuild: bool = False
    small: int = 1_000
    large: int = 100_000
    hit_rounds: int = 9
    hit_calls: int = 500
    tool_rounds: int = 3
    workers: int = 8

    @classmethod
    def make(cls, quick: bool, tmp: Path, rebuild: bool) -> Config:
        if not quick:
            return cls(quick, tmp, rebuild)
        return cls(
            quick, tmp, rebuild, small=200, large=5_000, hit_rounds=5, hit_calls=200, tool_rounds=2
        )


# --------------------------------------------------------------------------------------------
# building (and reusing) the stores
# --------------------------------------------------------------------------------------------


def store_format() -> str:
    """The store's FORMAT version: part of the cache key of a built store.

    Reaches into ``checkpoint_magic.store`` (not re-exported at the top level); if the name
    moves, the package version alone keys the cache.
    """
    try:
        from checkpoint_magic.store import FORMAT_VERSION

        return str(FORMAT_VERSION)
    except ImportError:
        return "unknown"


def cached_fill(store: Path) -> Any:
    """``fill`` checkpointed into ``store`` under a fixed namespace."""
    return checkpoint(store=str(store), name=NAMESPACE)(fill)


@dataclass
class BuiltStore:
    """A store of ``n`` entries of ``fill``; ``build_seconds`` is None when reused from disk."""

    path: Path
    n: int
    build_seconds: float | None

    @property
    def func(self) -> Any:
        return cached_fill(self.path)


def build_store(n: int, workers: int, rebuild: bool) -> BuiltStore:
    """A store with ``fill(0) .. fill(n-1)``, reused from ``STORES`` while it still hits."""
    tag = f"format{store_format()}-v{checkpoint_magic.__version__}-n{n}"
    root = STORES / tag
    store = root / "store"
    marker = root / "built.json"
    func = cached_fill(store)
    probes = (0, 1, n // 2 + 1, n - 1)
    if not rebuild and marker.exists() and all(func.is_cached(i) for i in probes):
        return BuiltStore(store, n, None)
    for old in STORES.glob(f"*-n{n}"):  # stale builds of this size
        shutil.rmtree(old, ignore_errors=True)
    root.mkdir(parents=True)
    print(f"[bench_scale] building a store of {n:,} entries ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(func, range(n)):
            pass
    seconds = time.perf_counter() - start
    missing = [i for i in probes if not func.is_cached(i)]
    if missing:
        raise RuntimeError(f"store build incomplete: fill({missing}) is not cached")
    marker.write_text(json.dumps({"n": n, "seconds": seconds, "workers": workers}))
    print(f"[bench_scale] built in {seconds:.1f} s", file=sys.stderr, flush=True)
    return BuiltStore(store, n, seconds)


_BUILT: dict[int, BuiltStore] = {}


def stores(cfg: Config) -> tuple[BuiltStore, BuiltStore]:
    """The small and the large store (built once per run)."""
    for n in (cfg.small, cfg.large):
        if n not in _BUILT:
            _BUILT[n] = build_store(n, cfg.workers, cfg.rebuild)
    return _BUILT[cfg.small], _BUILT[cfg.large]


def tiny_keys(n: int, count: int, seed: int) -> list[int]:
    """``count`` random arguments below ``n`` whose result lives inside the manifest."""
    rng = random.Random(seed)
    return [k for k in (rng.randrange(n) for _ in range(count * 2)) if k % BLOB_EVERY][:count]


def label_of(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 else str(n)


# --------------------------------------------------------------------------------------------
# benchmarks
# --------------------------------------------------------------------------------------------


def bench_build(cfg: Config) -> list[Row]:
    """How long filling the stores took (only when they were built in this run)."""
    rows = []
    for built in stores(cfg):
        blobs = len(range(0, built.n, BLOB_EVERY))
        label = f"build a store of {built.n:,} entries ({blobs:,} with a blob)"
        if built.build_seconds is None:
            rows.append(Row(label, "-", "reused", "INFO", note=f"from {built.path.parent}"))
            continue
        rows.append(
            Row(
                label,
                "-",
                f"{built.build_seconds:.1f} s",
                "INFO",
                note=f"{cfg.workers} threads calling the checkpointed function; "
                "aim: under 2 minutes for 100,000",
            )
        )
    return rows


def warm_page_cache(store: Path) -> int:
    """Read every manifest of ``store`` once, so that hits measure the store, not the disk.

    A store reused from an earlier run may have left the page cache since: its first reads
    would then measure the disk (a random 4 KiB read), not the store's size. Both stores are
    warmed alike. Returns how many files were read.
    """
    count = 0
    for folder, _, files in os.walk(store / "entries"):
        for name in files:
            with open(os.path.join(folder, name), "rb") as f:
                f.read()
            count += 1
    return count


def bench_hits(cfg: Config) -> list[Row]:
    """A hit at 100,000 entries vs the same hit at 1,000: one key again, and random keys."""
    small, large = stores(cfg)
    for built in (small, large):
        warm_page_cache(built.path)
    f_small, f_large = small.func, large.func
    calls = cfg.hit_calls
    needed = 2 * (cfg.hit_rounds + 1) * calls + 1
    keys_small = iter(tiny_keys(small.n, needed, 1))
    keys_large = iter(tiny_keys(large.n, needed, 2))
    s, L = label_of(small.n), label_of(large.n)
    same = interleave(
        [
            Candidate(f"at {s}", lambda: f_small(7), calls=calls),
            Candidate(f"at {L}", lambda: f_large(7), calls=calls),
        ],
        cfg.hit_rounds,
    )
    rand = interleave(
        [
            Candidate(f"at {s}", lambda: f_small(next(keys_small)), calls=calls),
            Candidate(f"at {L}", lambda: f_large(next(keys_large)), calls=calls),
        ],
        cfg.hit_rounds,
    )
    # The store keeps the last 4,096 manifests it read in memory: all of a 1,000-entry store
    # after the rounds above, few of 100,000. Forgetting them before each call compares what
    # a hit costs when its manifest is read from the store, at either size.
    from checkpoint_magic.store import get_store

    def first_hit(func: Any, path: Path, keys: Any) -> Callable[[], Any]:
        store = get_store(str(path))
        hot = getattr(store, "_hot_records", None)  # the store's in-memory manifest cache

        def call() -> Any:
            if hot is not None:
                hot.clear()
            return func(next(keys))

        return call

    cold = interleave(
        [
            Candidate(f"at {s}", first_hit(f_small, small.path, keys_small), calls=calls),
            Candidate(f"at {L}", first_hit(f_large, large.path, keys_large), calls=calls),
        ],
        cfg.hit_rounds,
    )
    hot_note = "" if hasattr(get_store(str(small.path)), "_hot_records") else "WARNING: no cache"
    note = "" if f_large.is_cached(7) else "WARNING: fill(7) is not cached"
    return [
        within_row(
            "hit, a random key, its manifest read from the store",
            cold[f"at {L}"],
            cold[f"at {s}"],
            at_most=1.5,
            note=hot_note or "the in-memory cache of recently read manifests is emptied first",
        ),
        within_row("hit, one key again", same[f"at {L}"], same[f"at {s}"], at_most=1.5, note=note),
        within_row(
            "hit, a random key each call",
            rand[f"at {L}"],
            rand[f"at {s}"],
            at_most=1.5,
            note="tiny results (inside the manifest); at 1k every manifest is in the "
            "in-memory cache of the last 4,096 read, at 100k few are",
        ),
    ]


def tool_functions() -> dict[str, Callable[[Any], Any]]:
    """The in-process tools by public name.

    ``ls`` is what ``checkpoint-magic ls`` shows (one summary per name, aggregated by the
    entry index), ``ls-l`` builds every entry (``list_entries``, as ``ls -l`` and ``gc``
    do), ``du`` and ``verify`` (which reads and checks every manifest and blob itself).
    """
    from checkpoint_magic.store import Store
    from checkpoint_magic.tools.maintenance import du, list_entries, summarize_store, verify

    return {
        "ls": lambda path: summarize_store(Store(path)),
        "ls-l": lambda path: list_entries(Store(path)),
        "du": lambda path: du(Store(path)),
        "verify": lambda path: verify(Store(path)),
    }


def bench_tools(cfg: Config, names: tuple[str, ...]) -> list[Row]:
    small, large = stores(cfg)
    tools = tool_functions()
    s, L = label_of(small.n), label_of(large.n)
    for built in (small, large):  # the index exists (as after any earlier use of the tools)
        tools["ls"](built.path)
    # The hits of the benchmarks before wrote thousands of hit counts (flushed by that `ls`):
    # the index reads a record changed within RACY_SECONDS again each time (git's racily
    # clean rule). Let them age, so that these rows measure an unchanged store; the rows
    # "right after a commit" measure a changed one.
    from checkpoint_magic.store.indexrows import RACY_SECONDS

    time.sleep(RACY_SECONDS + 0.5)
    candidates = []
    for name in names:
        tool = tools[name]
        candidates.append(Candidate(f"{name} at {s}", lambda t=tool: t(small.path)))
        candidates.append(Candidate(f"{name} at {L}", lambda t=tool: t(large.path)))
    t = interleave(candidates, cfg.tool_rounds, warmup=0)
    rows = []
    for name in names:
        ours, anchor = t[f"{name} at {L}"], t[f"{name} at {s}"]
        per_entry = fmt_seconds(ours.median / large.n)
        rows.append(
            within_row(
                f"`{name}` (in-process)",
                ours,
                anchor,
                at_most=40,
                note=f"{per_entry} per entry at {L}, "
                f"{fmt_seconds(anchor.median / small.n)} at {s}",
            )
        )
    return rows


def bench_ls(cfg: Config) -> list[Row]:
    return bench_tools(cfg, ("ls", "ls-l"))


def bench_du(cfg: Config) -> list[Row]:
    return bench_tools(cfg, ("du",))


def bench_verify(cfg: Config) -> list[Row]:
    return bench_tools(cfg, ("verify",))


def bench_changed(cfg: Config) -> list[Row]:
    """``ls`` and ``du`` right after a commit: the changed shard folder is listed again.

    Each round first writes one new entry into the benchmark's namespace (untimed) and
    removes it afterwards, so the index must notice its shard folder changed and re-check
    the stat signature of every manifest in it (reading only the new one).
    """
    from checkpoint_magic.store import Store

    small, large = stores(cfg)
    tools = tool_functions()
    s, L = label_of(small.n), label_of(large.n)
    key = "f" * 32

    def write(path: Path) -> None:
        Store(path).write_entry(NAMESPACE, key, {"namespace": NAMESPACE, "outputs": {}})

    def remove(path: Path) -> None:
        Store(path).delete_entry(NAMESPACE, key)

    candidates = [
        Candidate(
            f"{name} at {label_of(b.n)}",
            lambda t=tools[name], p=b.path: t(p),
            setup=lambda p=b.path: write(p),
            teardown=lambda p=b.path: remove(p),
        )
        for name in ("ls", "du")
        for b in (small, large)
    ]
    t = interleave(candidates, cfg.tool_rounds, warmup=1)
    return [
        within_row(
            f"`{name}` right after a commit (in-process)",
            t[f"{name} at {L}"],
            t[f"{name} at {s}"],
            at_most=40,
            note="the changed shard folder is re-listed with one stat per manifest in it "
            "(format 2; a format-1 store re-lists the whole namespace)",
        )
        for name in ("ls", "du")
    ]


def bench_rebuild(cfg: Config) -> list[Row]:
    """``ls`` with no index: it is rebuilt from every manifest (once, not a target)."""
    from checkpoint_magic.store import Store
    from checkpoint_magic.store.index import discard_index

    tools = tool_functions()
    rows = []
    for built in stores(cfg):
        discard_index(Store(built.path))
        start = time.perf_counter()
        tools["ls"](built.path)
        seconds = time.perf_counter() - start
        rows.append(
            Row(
                f"`ls` rebuilding the entry index of {built.n:,} entries",
                "-",
                f"{seconds:.2f} s",
                "INFO",
                note=f"{fmt_seconds(seconds / built.n)} per entry (every manifest read once)",
            )
        )
    return rows


def bench_cli(cfg: Config) -> list[Row]:
    """``python -m checkpoint_magic COMMAND --store PATH`` once per size, in a subprocess.

    What a user waits for, interpreter start-up and imports included; the in-process rows
    above measure the same work without them.
    """
    small, large = stores(cfg)
    rows = []
    for command in (["ls"], ["ls", "-l"], ["du"], ["verify"]):
        times = {}
        for built in (small, large):
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "checkpoint_magic", *command, "--store", str(built.path)],
                check=True,
                capture_output=True,
            )
            times[built.n] = Timing(f"at {label_of(built.n)}", [time.perf_counter() - start])
        rows.append(
            within_row(
                f"`checkpoint-magic {' '.join(command)}` (subprocess, 1 run)",
                times[large.n],
                times[small.n],
                at_most=40,
                note="includes interpreter start-up and imports",
            )
        )
    return rows


def bench_gc(cfg: Config) -> list[Row]:
    """``gc`` with a size budget of half the large store; the evicted entries are then refilled.

    Runs on the cached store itself (copying, then deleting, 100,000 files costs minutes
    here): afterwards the evicted calls are made again, so the store is whole for the next run.
    """
    from checkpoint_magic.store import Store
    from checkpoint_magic.tools.maintenance import gc, stored_size

    _, large = stores(cfg)
    store = Store(large.path)
    marker = large.path.parent / "built.json"
    saved = marker.read_text()
    marker.unlink()  # if this run stops before the refill, the next one rebuilds the store
    budget = stored_size(store) // 2
    start = time.perf_counter()
    result = gc(store, max_size=budget, grace=0)
    seconds = time.perf_counter() - start
    evicted = len(result.evicted)
    start = time.perf_counter()
    func = large.func
    with ThreadPoolExecutor(cfg.workers) as pool:
        for _ in pool.map(func, range(large.n)):
            pass
    refill = time.perf_counter() - start
    marker.write_text(saved)
    label = f"gc evicting half of a {large.n:,}-entry store"
    return [
        absolute_row(
            label,
            Timing("ours", [seconds]),
            at_most=60.0 * large.n / 100_000,
            note=f"evicted {evicted:,} entries, freed {result.freed_blobs:,} blobs; "
            f"refilling them afterwards took {refill:.1f} s (not counted)",
        )
    ]


BENCHMARKS: dict[str, Callable[[Config], list[Row]]] = {
    "build": bench_build,
    "hits": bench_hits,
    "ls": bench_ls,
    "du": bench_du,
    "verify": bench_verify,
    "changed": bench_changed,
    "rebuild": bench_rebuild,
    "cli": bench_cli,
    "gc": bench_gc,
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 vs 200 entries, few rounds")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only benchmarks whose name starts with NAME (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="list the benchmark names and exit")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached stores")
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
    tmp = Path(tempfile.mkdtemp(prefix="cm-bench-scale-", dir="/tmp"))
    cfg = Config.make(args.quick, tmp, args.rebuild)
    start, load_before = time.perf_counter(), load_average()
    try:
        rows = run_suite("bench_scale", BENCHMARKS, cfg, names)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(
        "checkpoint_magic scale benchmarks",
        rows,
        quick=cfg.quick,
        elapsed=time.perf_counter() - start,
        loads=(load_before, load_average()),
        output=args.output,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
