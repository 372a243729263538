"""Generic helpers for the benchmarks: interleaved timing, peak memory, result tables.

Nothing here knows about checkpoint_magic. The rules come from BENCHMARKS.md:

- candidates are timed *round by round in one process* (round r runs every candidate once,
  in an order rotated by r), so slow drifts of the machine (page-cache state, memory returned
  to the host, thermal or neighbour noise) hit all candidates alike;
- tiny operations are timed as batches of many calls (``time.perf_counter`` around the batch,
  divided by the batch size);
- each candidate reports its median *and* minimum; ratios are computed on both;
- peak memory is measured with ``tracemalloc`` (what numpy and Python allocate) *and* the
  ``ru_maxrss`` high-water mark (also catches C-level copies), after resetting the high-water
  mark through ``/proc/self/clear_refs`` where the kernel allows it.
"""

from __future__ import annotations

import gc
import importlib.metadata
import os
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20
GiB = 1 << 30


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """One thing to time.

    Parameters
    ----------
    name
        Label used in the results.
    func
        The timed operation (called ``calls`` times per round, with no arguments).
    setup, teardown
        Untimed callables run before / after each round's batch (e.g. make the next call a
        miss, delete what the call wrote).
    calls
        Batch size; the sample is the batch time divided by ``calls``.
    """

    name: str
    func: Callable[[], Any]
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    calls: int = 1


@dataclass
class Timing:
    """Per-call times (seconds) of one candidate, one sample per round."""

    name: str
    samples: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        return min(self.samples)

    def describe(self) -> str:
        """``'median / min'`` formatted with a common unit."""
        return f"{fmt_seconds(self.median)} / {fmt_seconds(self.minimum)}"


def _run_batch(candidate: Candidate) -> float:
    """Run one untimed setup, a timed batch and one untimed teardown; return seconds per call."""
    if candidate.setup is not None:
        candidate.setup()
    func, calls = candidate.func, candidate.calls
    start = time.perf_counter()
    for _ in range(calls):
        func()
    elapsed = time.perf_counter() - start
    if candidate.teardown is not None:
        candidate.teardown()
    return elapsed / calls


def interleave(candidates: Sequence[Candidate], rounds: int, warmup: int = 1) -> dict[str, Timing]:
    """Time ``candidates`` round by round; return a :class:`Timing` per candidate name.

    ``warmup`` untimed rounds run first. Each timed round runs every candidate once, the order
    rotated by one position per round so that no candidate always runs right after another.
    A full garbage collection runs before each batch (outside the timing).
    """
    timings = {c.name: Timing(c.name) for c in candidates}
    order = list(candidates)
    for _ in range(warmup):
        for candidate in order:
            gc.collect()
            _run_batch(candidate)
    for r in range(rounds):
        shift = r % len(order)
        for candidate in order[shift:] + order[:shift]:
            gc.collect()
            timings[candidate.name].samples.append(_run_batch(candidate))
    return timings


def calls_for(func: Callable[[], Any], budget: float = 0.05, cap: int = 100_000) -> int:
    """Batch size such that one batch of ``func`` takes about ``budget`` seconds."""
    func()
    n = 1
    while n < cap:
        start = time.perf_counter()
        for _ in range(n):
            func()
        if time.perf_counter() - start >= budget / 4:
            break
        n *= 2
    per_call = max((time.perf_counter() - start) / n, 1e-9)
    return max(1, min(cap, int(budget / per_call)))


# --------------------------------------------------------------------------------------------
# memory
# --------------------------------------------------------------------------------------------


@dataclass
class MemoryPeak:
    """Peak memory growth of one call, in bytes.

    ``maxrss_reset`` says whether the RSS high-water mark could be reset to the current RSS
    before the call; if not, ``maxrss_delta`` only shows growth *beyond the earlier peak of
    the process* and is a lower bound.
    """

    tracemalloc_peak: int
    maxrss_delta: int
    maxrss_reset: bool


def _maxrss_bytes() -> int:
    """The process's resident-set high-water mark in bytes (Linux reports KiB, macOS bytes)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def _reset_maxrss() -> bool:
    """Reset the RSS high-water mark to the current RSS (Linux ``clear_refs``); True on success."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


def peak_memory(func: Callable[[], Any]) -> MemoryPeak:
    """Run ``func`` once and report how much its peak memory rose above the memory before it.

    The tracemalloc and RSS measurements are taken in two separate calls so that tracemalloc's
    own bookkeeping does not count in the RSS figure. The result of ``func`` is kept alive until
    the peak has been read, so it counts as growth.
    """
    gc.collect()
    reset = _reset_maxrss()
    before = _maxrss_bytes()
    result = func()
    rss_delta = max(0, _maxrss_bytes() - before)
    del result

    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = func()
        _, peak = tracemalloc.get_traced_memory()
        del result
    finally:
        tracemalloc.stop()
    return MemoryPeak(max(0, peak - base), rss_delta, reset)


# --------------------------------------------------------------------------------------------
# comparisons and tables
# --------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of a results table: a target, what was measured and whether it passed.

    ``status`` is ``PASS``, ``FAIL``, ``INFO`` (no target) or ``SKIP`` (could not run).
    """

    benchmark: str
    target: str
    measured: str
    status: str
    ours: str = ""
    anchor: str = ""
    note: str = ""


def speedup_row(
    benchmark: str,
    ours: Timing,
    anchor: Timing,
    *,
    at_least: float,
    note: str = "",
) -> Row:
    """Row for a target "ours is at least ``at_least`` x faster": ratio = anchor / ours."""
    med = anchor.median / ours.median
    low = anchor.minimum / ours.minimum
    return Row(
        benchmark=benchmark,
        target=f"{anchor.name}/ours >= {at_least:g}",
        measured=f"{med:.2f}x (min {low:.2f}x)",
        status="PASS" if med >= at_least else "FAIL",
        ours=ours.describe(),
        anchor=f"{anchor.name}: {anchor.describe()}",
        note=note,
    )


def slowdown_row(
    benchmark: str,
    ours: Timing,
    anchor: Timing,
    *,
    at_most: float,
    note: str = "",
) -> Row:
    """Row for a target "ours takes at most ``at_most`` x the anchor": ratio = ours / anchor."""
    med = ours.median / anchor.median
    low = ours.minimum / anchor.minimum
    return Row(
        benchmark=benchmark,
        target=f"ours/{anchor.name} <= {at_most:g}",
        measured=f"{med:.2f}x (min {low:.2f}x)",
        status="PASS" if med <= at_most else "FAIL",
        ours=ours.describe(),
        anchor=f"{anchor.name}: {anchor.describe()}",
        note=note,
    )


def within_row(
    benchmark: str,
    ours: Timing,
    anchor: Timing,
    *,
    at_most: float,
    note: str = "",
) -> Row:
    """Row for "ours at ``ours.name`` takes at most ``at_most`` x ours at ``anchor.name``".

    Like :func:`slowdown_row`, but both sides are ours (e.g. a hit at 100,000 entries against
    the same hit at 1,000), so both are named in the target.
    """
    med = ours.median / anchor.median
    low = ours.minimum / anchor.minimum
    return Row(
        benchmark=benchmark,
        target=f"{ours.name} / {anchor.name} <= {at_most:g}",
        measured=f"{med:.2f}x (min {low:.2f}x)",
        status="PASS" if med <= at_most else "FAIL",
        ours=f"{ours.name}: {ours.describe()}",
        anchor=f"{anchor.name}: {anchor.describe()}",
        note=note,
    )


def absolute_row(benchmark: str, ours: Timing, *, at_most: float, note: str = "") -> Row:
    """Row for an absolute target on this machine class: median at most ``at_most`` seconds."""
    return Row(
        benchmark=benchmark,
        target=f"ours <= {fmt_seconds(at_most)}",
        measured=f"{fmt_seconds(ours.median)} (min {fmt_seconds(ours.minimum)})",
        status="PASS" if ours.median <= at_most else "FAIL",
        ours=ours.describe(),
        note=note,
    )


def info_row(benchmark: str, timing: Timing, note: str = "") -> Row:
    """Row that only reports a timing (no target)."""
    return Row(benchmark, "-", f"{timing.name}: {timing.describe()}", "INFO", note=note)


def skip_row(benchmark: str, target: str, reason: str, anchor: Timing | None = None) -> Row:
    """Row for a target that could not be measured (e.g. our API is missing); shows the anchor."""
    shown = f"{anchor.name}: {anchor.describe()}" if anchor is not None else ""
    return Row(benchmark, target, "-", "SKIP", anchor=shown, note=reason)


HEADERS = (
    "benchmark",
    "target",
    "measured (median)",
    "result",
    "ours median / min",
    "anchor median / min",
    "notes",
)


def _cells(row: Row) -> tuple[str, ...]:
    return (row.benchmark, row.target, row.measured, row.status, row.ours, row.anchor, row.note)


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in rows:
        cells = (c.replace("|", "\\|") for c in _cells(row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def text_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned plain-text table for the terminal."""
    table = [HEADERS, *(_cells(r) for r in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADERS))]
    out = []
    for k, line in enumerate(table):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def fmt_seconds(seconds: float) -> str:
    """Human-readable duration: ``'31.2 ms'``, ``'4.1 us'``, ``'1.20 s'``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.1f} us"


def fmt_bytes(n: float) -> str:
    """Human-readable size: ``'1.0 GiB'``, ``'3.2 MiB'``, ``'12 KiB'``."""
    if n >= GiB:
        return f"{n / GiB:.2f} GiB"
    if n >= MiB:
        return f"{n / MiB:.1f} MiB"
    return f"{n / 1024:.0f} KiB"


def environment_summary() -> str:
    """One line naming the interpreter, key library versions and CPU count."""
    parts = [f"Python {sys.version.split()[0]}", f"{os.cpu_count()} CPUs"]
    for dist in ("numpy", "pandas", "pyarrow", "xxhash", "joblib"):
        try:
            parts.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return ", ".join(parts)


def load_average() -> float:
    """The 1-minute load average (``nan`` where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


# --------------------------------------------------------------------------------------------
# fresh child processes (peak memory without the parent's history)
# --------------------------------------------------------------------------------------------

#: Defines ``rss_mark()`` and ``rss_growth()`` in a child: ``rss_mark`` resets the kernel's RSS
#: high-water mark (``VmHWM``) to the current RSS through ``/proc/self/clear_refs`` and
#: remembers that RSS; ``rss_growth`` returns how far ``VmHWM`` rose above it since.
CHILD_PRELUDE = """
import json, sys
def _status(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field + " not in /proc/self/status")
_MARK = [0]
def rss_mark():
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    _MARK[0] = _status("VmRSS")
def rss_growth():
    return max(0, _status("VmHWM") - _MARK[0])
"""


def run_child(code: str, timeout: float = 600) -> dict[str, Any]:
    """Run ``CHILD_PRELUDE + code`` in a fresh Python started through a forking shell.

    Started through ``sh`` (which forks it, rather than this process forking or exec'ing it),
    so its ``ru_maxrss`` does not inherit this process's peak (BENCHMARKS.md). ``code`` must
    print one JSON object as its last line of stdout; that object is returned.
    """
    import json
    import subprocess

    # "; exit" keeps the shell from exec'ing Python in its own place.
    proc = subprocess.run(
        ["/bin/sh", "-c", '"$0" -c "$1"; exit $?', sys.executable, CHILD_PRELUDE + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# running a suite of benchmarks
# --------------------------------------------------------------------------------------------


def select(names: Sequence[str], only: Sequence[str] | None) -> list[str]:
    """The ``names`` matching any ``--only`` prefix (all of them when none is given)."""
    if not only:
        return list(names)
    chosen = [n for n in names if any(n.startswith(p) for p in only)]
    if not chosen:  # `make bench` passes one --only to every script: not an error
        print(f"--only {list(only)}: nothing here; the benchmarks are {', '.join(names)}")
    return chosen


def run_suite(
    tag: str,
    benchmarks: dict[str, Callable[[Any], list[Row]]],
    cfg: Any,
    names: Sequence[str],
    between: Callable[[int], None] | None = None,
) -> list[Row]:
    """Run the named benchmarks in order, logging progress to stderr.

    An exception in one benchmark (e.g. from half-written library code) is printed and
    becomes an ``ERROR`` row; the others still run. ``between(k)`` runs after the k-th.
    """
    import traceback

    rows: list[Row] = []
    for k, name in enumerate(names):
        print(f"[{tag}] {name} ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            rows.extend(benchmarks[name](cfg))
        except Exception as exc:  # report and go on with the other benchmarks
            traceback.print_exc()
            rows.append(Row(name, "-", "-", "ERROR", note=f"{type(exc).__name__}: {exc}"))
        if between is not None:
            between(k)
        gc.collect()
        elapsed = time.perf_counter() - start
        print(f"[{tag}] {name} done in {elapsed:.1f} s", file=sys.stderr, flush=True)
    return rows


def report(
    title: str,
    rows: Sequence[Row],
    *,
    quick: bool,
    elapsed: float,
    loads: tuple[float, float],
    output: Any,
) -> None:
    """Print the table with a header naming the run, and write it as Markdown to ``output``."""
    mode = "quick (smoke-run sizes, not the issue's targets)" if quick else "full"
    header = (
        f"{title}, {mode} run, {time.strftime('%Y-%m-%d %H:%M')}, {elapsed:.0f} s.\n"
        f"{environment_summary()}; load average {loads[0]:.1f} at start, {loads[1]:.1f} at end"
        f" (above ~0.5 other processes share the CPUs: expect noisy medians).\n"
        "Ratios from interleaved rounds in one process: `anchor/ours` = how many times faster we are,\n"
        "`ours/anchor` = how many times the anchor's time we take; PASS/FAIL on the medians."
    )
    print(header)
    print()
    print(text_table(rows))
    output.parent.mkdir(parents=True, exist_ok=True)
    md_header = header.replace("\n", "  \n")
    output.write_text(f"## {title}\n\n{md_header}\n\n{markdown_table(rows)}\n")
    print(f"\nwritten to {output}")
