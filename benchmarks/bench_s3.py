"""Object-storage benchmarks: ``@checkpoint`` hits and misses on an ``s3://`` store vs raw s3fs and the local store.

A real S3-compatible server (moto, ``moto_server``) is started on a free loopback port for
the run. For a tiny result and a 64 MiB array, each round times, interleaved:

* a miss on the ``s3://`` store (fingerprint, upload the blob, publish the manifest), against
  a raw s3fs ``pipe_file`` of the same bytes (the target: ours <= 1.3x raw for 64 MiB);
* a hit with an empty local read cache (download + verify), against a raw ``cat_file``;
* a hit served by the local read cache, and the same hit and miss on a local store;

and ``ls`` / ``ls -l`` of a store of 500 entries from its entry index (kept in the local
read cache, refreshed from one listing) against reading every manifest and usage record.

Tiny results are dominated by round trips (a miss looks the entry up, takes the
single-flight lease, publishes the manifest and releases the lease: a handful of requests
against raw's one), so their ratios are reported, not targeted.

Usage::

    python benchmarks/bench_s3.py             # about a minute
    python benchmarks/bench_s3.py --quick     # 8 MiB instead of 64 MiB, fewer rounds

Needs ``moto[server]`` and ``s3fs`` (``pip install -e '.[test]'``). Results are printed and
written to ``benchmarks/results/s3.md``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from _harness import (
    Candidate,
    MiB,
    Row,
    environment_summary,
    fmt_bytes,
    info_row,
    interleave,
    markdown_table,
    slowdown_row,
    text_table,
)

RESULTS = Path(__file__).resolve().parent / "results" / "s3.md"
BUCKET = "bench"
LISTED = 500  # entries of the store the listing rows list


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    """Start moto's S3 server on a free loopback port; return the process and its endpoint."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
            return proc, endpoint
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.05)


def listing_rows(url: str, rounds: int) -> list[Row]:
    """``ls`` / ``ls -l`` of a store of :data:`LISTED` entries: index fresh vs every object read.

    The store is filled through the public API (8 threads), then left to age past the index's
    racily-clean window. "every object read" is the same call with the local read cache off
    (``CHECKPOINT_MAGIC_CACHE_SIZE=0``), which leaves a URL store without an index: one
    request per manifest and per usage record.
    """
    from checkpoint_magic import checkpoint
    from checkpoint_magic.store import Store
    from checkpoint_magic.store.indexrows import RACY_SECONDS
    from checkpoint_magic.tools.inventory import list_entries, summarize_store

    @checkpoint(store=url, name="bench.listed")
    def fill(i: int) -> int:
        return i

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fill, range(LISTED)))
    for i in range(0, LISTED, 10):  # some usage records, as hits leave them
        fill(i)
    time.sleep(RACY_SECONDS + 0.5)

    def without_index(tool: Any) -> Any:
        os.environ["CHECKPOINT_MAGIC_CACHE_SIZE"] = "0"
        try:
            return tool(Store(url))
        finally:
            del os.environ["CHECKPOINT_MAGIC_CACHE_SIZE"]

    summarize_store(Store(url))  # the index is built once, as by any earlier use of the tools
    timings = interleave(
        [
            Candidate("ls, index", lambda: summarize_store(Store(url))),
            Candidate("ls, every object", lambda: without_index(summarize_store)),
            Candidate("ls -l, index", lambda: list_entries(Store(url))),
            Candidate("ls -l, every object", lambda: without_index(list_entries)),
        ],
        rounds=rounds,
        warmup=0,
    )
    rows = []
    for tool in ("ls", "ls -l"):
        row = slowdown_row(
            f"`{tool}` of {LISTED} entries, index fresh",
            timings[f"{tool}, index"],
            timings[f"{tool}, every object"],
            at_most=1.0,
            note="in-process; the anchor reads every manifest and usage record",
        )
        row.target, row.status = "ours/every object read (no target)", "INFO"
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 MiB and fewer rounds")
    args = parser.parse_args(argv)
    big_bytes = (8 if args.quick else 64) * MiB
    rounds = 3 if args.quick else 7

    try:
        import s3fs
    except ImportError:
        print("bench_s3: s3fs is not installed (pip install -e '.[test]'); skipped")
        return 0
    proc, endpoint = start_moto()
    tmp = Path(tempfile.mkdtemp(prefix="bench-s3-"))
    os.environ.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION="us-east-1",
        CHECKPOINT_MAGIC_CACHE=str(tmp / "cache"),
    )
    try:
        from checkpoint_magic import checkpoint

        fs = s3fs.S3FileSystem(skip_instance_cache=True)
        fs.mkdir(BUCKET)
        url = f"s3://{BUCKET}/store"
        local = str(tmp / "local-store")
        big = np.random.default_rng(0).random(big_bytes // 8)
        big_raw = big.tobytes()  # raw s3fs needs bytes; made once, outside the timings
        tiny = {"answer": 42}
        tiny_raw = repr(tiny).encode()
        results: dict[str, Any] = {"tiny": tiny, "big": big}

        def make(store: str) -> Any:
            @checkpoint(store=store, name=f"bench.{'s3' if '://' in store else 'local'}")
            def produce(which: str) -> Any:
                return results[which]

            return produce

        on_s3, on_local = make(url), make(local)

        def wipe_s3() -> None:
            if fs.exists(f"{BUCKET}/store"):
                fs.rm(f"{BUCKET}/store", recursive=True)
            fs.invalidate_cache()

        def wipe_local() -> None:
            shutil.rmtree(local, ignore_errors=True)

        def drop_cache() -> None:
            shutil.rmtree(tmp / "cache", ignore_errors=True)

        rows: list[Row] = []
        for label, which, raw in (
            ("tiny", "tiny", tiny_raw),
            (fmt_bytes(big_bytes), "big", big_raw),
        ):
            timings = interleave(
                [
                    Candidate("s3 miss", lambda w=which: on_s3(w), setup=wipe_s3),
                    Candidate("raw put", lambda r=raw: fs.pipe_file(f"{BUCKET}/raw", r)),
                    Candidate("s3 hit (cold cache)", lambda w=which: on_s3(w), setup=drop_cache),
                    Candidate("raw get", lambda: fs.cat_file(f"{BUCKET}/raw")),
                    Candidate("s3 hit (cached)", lambda w=which: on_s3(w)),
                    Candidate("local miss", lambda w=which: on_local(w), setup=wipe_local),
                    Candidate("local hit", lambda w=which: on_local(w)),
                ],
                rounds=rounds,
                warmup=1,
            )
            # A miss wipes the store first; the warm-up round stored every entry the hits read.
            for ours, anchor in (("s3 miss", "raw put"), ("s3 hit (cold cache)", "raw get")):
                row = slowdown_row(f"{label}: {ours}", timings[ours], timings[anchor], at_most=1.3)
                if which == "tiny":  # round trips, not bytes: reported, not targeted
                    row.target, row.status = f"ours/{anchor} (no target)", "INFO"
                rows.append(row)
            for name in ("s3 hit (cached)", "local miss", "local hit"):
                rows.append(info_row(f"{label}: {name}", timings[name]))
        rows.extend(listing_rows(f"s3://{BUCKET}/listed", rounds))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    header = f"{environment_summary()}; moto S3 server on loopback; {rounds} rounds, medians"
    print(header)
    print(text_table(rows))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"# Object storage benchmarks\n\n{header}\n\n{markdown_table(rows)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
