"""Signed vs unsigned reads of a 256 MiB result (issue #11: signed within 1.5x of unsigned).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/bench_signed_read.py [rounds]``. Interleaves
an unsigned read (xxh3 check), a signed read with the default algorithm (BLAKE3 if installed)
and, for reference, a signed read checked with SHA-256, round by round in one process, and
prints medians, minimums and the ratios to the unsigned read (see shared BENCHMARKS.md).
Each is measured twice: the first read through a new ``Store`` (as in a fresh process: the
blob is hashed), and a second read of the same blob, which this process verified already
(only its stat signature is checked).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

from checkpoint_magic.store.core import Store

#: Issue #11: a signed read costs at most this many times an unsigned one.
TARGET = 1.5
RESULTS = Path(__file__).resolve().parent / "results" / "signed_read.md"


def main(rounds: int = 11) -> None:
    value = np.random.default_rng(0).random(32 << 20)  # 256 MiB of float64
    root = tempfile.mkdtemp()
    os.environ.pop("CHECKPOINT_MAGIC_SECRET", None)
    unsigned_store = Store(os.path.join(root, "unsigned"))
    unsigned = unsigned_store.put_value(value)
    os.environ["CHECKPOINT_MAGIC_SECRET"] = "bench"
    signed_store = Store(os.path.join(root, "signed"))
    signed = signed_store.put_value(value)
    from checkpoint_magic.store import digests

    with mock.patch.object(digests, "STRONG_ALGORITHMS", ("sha256",)):
        sha_store = Store(os.path.join(root, "sha256"))
        sha = sha_store.put_value(value)
    algorithm = next(k for k in signed["blobs"][0] if k not in ("digest", "size"))
    cases = {
        "unsigned (xxh3)": (unsigned_store, unsigned, None),
        f"signed ({algorithm})": (signed_store, signed, "bench"),
        "signed (sha256)": (sha_store, sha, "bench"),
    }
    signed_name = f"signed ({algorithm})"
    times: dict[str, list[float]] = {
        f"{name}, {when}": [] for when in ("first", "again") for name in cases
    }
    for _ in range(rounds):
        for name, (store, record, secret) in cases.items():
            if secret is None:
                os.environ.pop("CHECKPOINT_MAGIC_SECRET", None)
            else:
                os.environ["CHECKPOINT_MAGIC_SECRET"] = secret
            # First read in a process: a new Store object has verified nothing yet.
            fresh = Store(store.location)
            start = time.perf_counter()
            got = fresh.get_value(record)
            times[f"{name}, first"].append(time.perf_counter() - start)
            assert got.shape == value.shape
            del got
            # Again in the same process: the blob was verified and its file is unchanged.
            start = time.perf_counter()
            got = fresh.get_value(record)
            times[f"{name}, again"].append(time.perf_counter() - start)
            assert got.shape == value.shape
            del got
    bases = {
        when: statistics.median(times[f"unsigned (xxh3), {when}"]) for when in ("first", "again")
    }
    lines = [
        f"256 MiB array, {rounds} interleaved rounds, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}",
        "first: the first read in a process (verified by hashing);",
        "again: a later read of the blob, unchanged since this process verified it (stat check)",
        f"{'read':30} {'median':>9} {'min':>9} {'ratio':>6} {'min ratio':>9}",
    ]
    for name, ts in times.items():
        med = statistics.median(ts)
        when = name.rsplit(", ", 1)[1]
        base, base_min = bases[when], min(times[f"unsigned (xxh3), {when}"])
        lines.append(
            f"{name:30} {med * 1e3:7.1f}ms {min(ts) * 1e3:7.1f}ms {med / base:5.2f}x "
            f"{min(ts) / base_min:8.2f}x"
        )
    for when in ("first", "again"):
        ratio = statistics.median(times[f"{signed_name}, {when}"]) / bases[when]
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        lines.append(f"target: signed {when} read <= {TARGET}x unsigned: {ratio:.2f}x {verdict}")
    text = "\n".join(lines)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("```\n" + text + "\n```\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 11)
