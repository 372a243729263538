"""Where the time of the hot paths goes: cProfile of a tiny hit, a tiny miss, ``ls`` and ``du``.

``cold`` profiles a hit on a random key of the 100,000-entry store whose manifest is read
from the store (the in-memory cache of recent manifests emptied first), beside the same
hits with their manifests cached: what the row "hit, a random key each call" of
``bench_scale.py`` pays at 100,000 entries.

Prints, for each, the wall time per call without the profiler, then the top entries of the
profile by own time (``tottime``: the function itself, not its callees) and by cumulative
time. ``ls`` and ``du`` run on the 100,000-entry store of ``bench_scale.py`` (built, or reused
from ``benchmarks/results/scale-stores/``). Written also to ``benchmarks/results/profile.txt``.

Usage::

    python benchmarks/profile_hot.py                 # hit, miss, ls, du; top 10
    python benchmarks/profile_hot.py --only hit --top 20
    python benchmarks/profile_hot.py --entries 5000  # a smaller store for ls/du
    python benchmarks/profile_hot.py --only cold     # a hit whose manifest is not cached
"""

from __future__ import annotations

import argparse
import cProfile
import io
import itertools
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _harness import fmt_seconds
from bench_core import flush_ours

from checkpoint_magic import checkpoint

RESULTS = Path(__file__).resolve().parent / "results" / "profile.txt"


def add(a: int, b: int) -> int:
    return a + b


def profile(label: str, func: Callable[[], Any], calls: int, top: int) -> str:
    """Time ``calls`` calls of ``func`` plain, then under cProfile; the report as text."""
    start = time.perf_counter()
    for _ in range(calls):
        func()
    plain = (time.perf_counter() - start) / calls
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        func()
    profiler.disable()
    out = io.StringIO()
    out.write(f"=== {label}: {fmt_seconds(plain)} per call without the profiler ({calls} calls)\n")
    for key in ("tottime", "cumulative"):
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    return out.getvalue()


def hot_hit(tmp: Path, top: int) -> str:
    cached = checkpoint(store=str(tmp / "hit"))(add)
    cached(1, 2)
    time.sleep(0.2)  # past the store's "racily clean" window, as a hit seconds later would be
    return profile("tiny hit add(1, 2)", lambda: cached(1, 2), 20_000, top)


def hot_miss(tmp: Path, top: int) -> str:
    cached = checkpoint(store=str(tmp / "miss"))(add)
    cached(0, 1)  # the namespace exists, as after a first run
    counter = itertools.count(1)
    return profile("tiny miss add(i, 1), new i", lambda: cached(next(counter), 1), 1_000, top)


def hot_tools(entries: int, top: int) -> str:
    from bench_scale import build_store

    from checkpoint_magic.store import Store
    from checkpoint_magic.tools.maintenance import du, list_entries, summarize

    built = build_store(entries, workers=8, rebuild=False)
    return profile(
        f"ls at {entries:,} entries",
        lambda: summarize(list_entries(Store(built.path))),
        1,
        top,
    ) + profile(f"du at {entries:,} entries", lambda: du(Store(built.path)), 1, top)


def cold_hit(entries: int, top: int) -> str:
    """Random-key hits on the scale store: manifests read from the store, then cached."""
    import random

    from _workloads import BLOB_EVERY
    from bench_scale import build_store, warm_page_cache

    from checkpoint_magic.store import get_store

    built = build_store(entries, workers=8, rebuild=False)
    warm_page_cache(built.path)
    func = built.func
    hot = get_store(str(built.path))._hot_records
    rng = random.Random(3)
    keys = [k for k in (rng.randrange(entries) for _ in range(4_000)) if k % BLOB_EVERY]
    pending = itertools.cycle(keys)

    def uncached() -> Any:
        hot.clear()
        return func(next(pending))

    cached_keys = itertools.cycle(keys[:500])
    for _ in range(500):
        func(next(cached_keys))
    return profile(
        f"hit, random key of {entries:,}, manifest read from the store", uncached, 2_000, top
    ) + profile(
        f"hit, random key of {entries:,}, manifest cached",
        lambda: func(next(cached_keys)),
        2_000,
        top,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="entries per profile (default 10)")
    parser.add_argument("--only", action="append", choices=["hit", "miss", "tools", "cold"])
    parser.add_argument("--entries", type=int, default=100_000, help="store size: ls, du, cold")
    args = parser.parse_args(argv)
    chosen = args.only or ["hit", "miss", "tools"]
    os.environ["CHECKPOINT_MAGIC_FSYNC"] = "0"
    tmp = Path(tempfile.mkdtemp(prefix="cm-profile-", dir="/tmp"))
    parts = []
    try:
        if "hit" in chosen:
            parts.append(hot_hit(tmp, args.top))
        if "miss" in chosen:
            parts.append(hot_miss(tmp, args.top))
        if "tools" in chosen:
            parts.append(hot_tools(args.entries, args.top))
        if "cold" in chosen:
            parts.append(cold_hit(args.entries, args.top))
    finally:
        flush_ours()
        shutil.rmtree(tmp, ignore_errors=True)
    text = "\n".join(parts)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"written to {RESULTS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
