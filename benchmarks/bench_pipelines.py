"""Pipeline benchmarks: ``CheckpointWrapper.transform`` of 10,000 samples, alone and on Dask.

What is measured (time per sample = total / number of samples):

- the anchors: the wrapped transformer alone (``SampleWrapper``, nothing saved), a bare
  h5py loop that writes one file per sample (no temporary file, no retry), and a bare
  h5py loop that reads them back;
- ``CheckpointWrapper.transform`` first pass (compute, then save one HDF5 file per sample
  atomically, with its producer record in the HDF5 user block), second pass (every file
  exists: one small read of its producer record per sample, compared with the digest
  of the wrapped estimator computed once, and a lazy ``DelayedSample``), and reading the
  data of the second pass's samples;
- two anchors for the second pass: a bare loop of ``os.stat`` over the files (what the
  second pass cost before files were bound to their producer: a ``stat`` each) and a
  bare loop of ``os.open``/``os.read(38)``/``os.close`` (the record read alone). Their
  ratio to the second pass is comparable across runs on these noisy VMs;
- the same pipeline wrapped with ``DaskWrapper`` (``wrap(["sample", "checkpoint",
  "dask"], ...)``) on a 2-worker ``LocalCluster``: first pass and second pass, each
  including ``.compute()`` and the transfer of the results back to the client.

Each operation runs ``--rounds`` times (1 by default: a pass over 10,000 files takes
tens of seconds here) on fresh directories; median and minimum are shown. The anchors,
the reads and the Dask round trip are measured on ``--subset`` samples and scaled to
``--n`` (the time per sample is what they report). The table is printed and written to
``benchmarks/results/pipelines.md``. File creation on these VMs is slow and erratic
(0.5-3 ms for one small HDF5 file, varying run to run): compare rows of one run.

Usage::

    python benchmarks/bench_pipelines.py              # 1-2 minutes on 2 cores
    python benchmarks/bench_pipelines.py --n 2000     # a quicker smoke run
    python benchmarks/bench_pipelines.py --no-dask    # skip the cluster

Everything is written to a temporary directory under /tmp that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _harness import environment_summary, fmt_seconds
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import make_pipeline

import checkpoint_magic.pipelines as mario

RESULTS = Path(__file__).resolve().parent / "results" / "pipelines.md"


class Scale(TransformerMixin, BaseEstimator):
    """A cheap stateless transformer: the cost measured is the checkpointing's."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def fit(self, X: Any, y: Any = None) -> Scale:
        return self

    def transform(self, X: Any) -> np.ndarray:
        return np.asarray(X) * self.factor

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags


def make_samples(n: int, dim: int) -> list[mario.Sample]:
    rng = np.random.default_rng(0)
    data = rng.normal(size=(n, dim))
    return [mario.Sample(row, key=f"{i:05d}") for i, row in enumerate(data)]


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


class Table:
    def __init__(self, n: int) -> None:
        self.n = n
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, name: str, times: list[float], note: str = "") -> None:
        med, low = statistics.median(times), min(times)
        self.rows.append(
            (
                name,
                f"{fmt_seconds(med / self.n)} / {fmt_seconds(low / self.n)}",
                f"{fmt_seconds(med)} / {fmt_seconds(low)}",
                note,
            )
        )

    def text(self) -> str:
        headers = ("what", "per sample (median / min)", "total (median / min)", "notes")
        table = [headers, *self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
        lines = []
        for k, row in enumerate(table):
            lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def markdown(self) -> str:
        headers = ("what", "per sample (median / min)", "total (median / min)", "notes")
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def bench_local(
    samples: list[mario.Sample], subset: int, root: Path, rounds: int, table: Table
) -> None:
    import h5py

    few = samples[:subset]
    plain = mario.SampleWrapper(Scale())
    table.add(
        "SampleWrapper.transform (anchor: nothing saved)",
        [timed(lambda: plain.transform(samples))[0] for _ in range(rounds)],
    )

    first, second, load, raw_write, raw_read, raw_stat, raw_head = [], [], [], [], [], [], []
    for r in range(rounds):
        features = root / f"features-{r}"
        wrapper = mario.CheckpointWrapper(mario.SampleWrapper(Scale()), features_dir=str(features))
        t_first, out1 = timed(lambda wrapper=wrapper: wrapper.transform(samples))
        t_second, out2 = timed(lambda wrapper=wrapper: wrapper.transform(samples))
        t_load, data = timed(lambda out2=out2: [s.data for s in out2[:subset]])
        assert len(os.listdir(features)) == len(samples)
        assert all(isinstance(s, mario.DelayedSample) for s in out2)
        np.testing.assert_array_equal(data[-1], out1[subset - 1].data)
        first.append(t_first)
        second.append(t_second)
        load.append(t_load * len(samples) / subset)
        paths = [str(features / f"{s.key}.h5") for s in samples]

        def stat_all(paths: list[str] = paths) -> None:
            for p in paths:
                os.stat(p)

        def head_all(paths: list[str] = paths) -> None:
            for p in paths:
                fd = os.open(p, os.O_RDONLY)
                os.read(fd, 38)
                os.close(fd)

        raw_stat.append(timed(stat_all)[0])
        raw_head.append(timed(head_all)[0])
        shutil.rmtree(features)

        directory = root / f"raw-{r}"
        directory.mkdir()

        def write(directory: Path = directory) -> None:
            for s in few:
                with h5py.File(directory / f"{s.key}.h5", "w") as f:
                    f.create_dataset("array", data=s.data * 2.0)

        def read(directory: Path = directory) -> list[Any]:
            out = []
            for s in few:
                with h5py.File(directory / f"{s.key}.h5", "r") as f:
                    out.append(f["array"][()])
            return out

        raw_write.append(timed(write)[0] * len(samples) / subset)
        raw_read.append(timed(read)[0] * len(samples) / subset)
        shutil.rmtree(directory)
    sub = f"measured on {subset} samples"
    table.add("CheckpointWrapper.transform, first pass", first, "compute + atomic HDF5 save")
    table.add("bare h5py loop writing one file per sample (anchor)", raw_write, sub)
    table.add(
        "CheckpointWrapper.transform, second pass", second, "record read + lazy DelayedSample"
    )
    table.add("bare os.stat loop over the files (anchor: the old check)", raw_stat)
    table.add("bare os.open/read(38)/close loop (anchor: the record read)", raw_head)
    table.add("reading .data of the second pass's samples", load, sub)
    table.add("bare h5py loop reading one file per sample (anchor)", raw_read, sub)


def bench_dask(
    samples: list[mario.Sample],
    subset: int,
    root: Path,
    rounds: int,
    table: Table,
    npartitions: int,
) -> None:
    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = Client(cluster)
    client.run(lambda: None)
    startup = time.perf_counter() - start
    note = f"2 workers x 1 thread, {npartitions} partitions, incl. compute()"
    try:
        first, second, roundtrip = [], [], []
        for r in range(rounds):
            features = root / f"dask-features-{r}"

            def run(features: Path = features) -> list[Any]:
                pipeline = mario.wrap(
                    ["sample", "checkpoint", "dask"],
                    make_pipeline(Scale()),
                    features_dir=str(features),
                    npartitions=npartitions,
                )
                return pipeline.transform(samples).compute()

            t_first, out1 = timed(run)
            t_second, out2 = timed(run)
            assert len(os.listdir(features / "scale")) == len(samples)
            assert len(out2) == len(samples) and isinstance(out2[0], mario.DelayedSample)
            np.testing.assert_array_equal(out2[-1].data, out1[-1].data)
            first.append(t_first)
            second.append(t_second)
            shutil.rmtree(features)

            few = samples[:subset]
            bag = mario.ToDaskBag(npartitions=npartitions).transform(few)
            t_trip, back = timed(lambda bag=bag: bag.map_partitions(list).compute())
            assert len(back) == subset
            roundtrip.append(t_trip * len(samples) / subset)
        table.add("DaskWrapper + CheckpointWrapper, first pass", first, note)
        table.add("DaskWrapper + CheckpointWrapper, second pass", second, note)
        table.add(
            "Dask round trip of the samples, no work (anchor)",
            roundtrip,
            f"client -> workers -> client, measured on {subset} samples",
        )
        table.rows.append(("LocalCluster start-up (once)", "-", fmt_seconds(startup), "not above"))
    finally:
        client.close()
        cluster.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of samples")
    parser.add_argument("--dim", type=int, default=64, help="float64 values per sample")
    parser.add_argument("--rounds", type=int, default=1, help="repetitions of each measurement")
    parser.add_argument(
        "--subset", type=int, default=1000, help="samples used for the anchors and the reads"
    )
    parser.add_argument("--dir", default=None, help="where to write (default: a temp dir)")
    parser.add_argument("--npartitions", type=int, default=20, help="partitions of the Dask bag")
    parser.add_argument("--no-dask", action="store_true", help="skip the LocalCluster rows")
    args = parser.parse_args(argv)

    samples = make_samples(args.n, args.dim)
    subset = max(1, min(args.subset, args.n))
    table = Table(args.n)
    root = Path(tempfile.mkdtemp(prefix="bench-pipelines-", dir=args.dir))
    try:
        bench_local(samples, subset, root, args.rounds, table)
        if not args.no_dask:
            try:
                bench_dask(samples, subset, root, args.rounds, table, args.npartitions)
            except ImportError as exc:
                table.rows.append(("DaskWrapper rows", "-", "-", f"skipped: {exc}"))
    finally:
        shutil.rmtree(root, ignore_errors=True)

    header = (
        f"{args.n} samples of {args.dim} float64, HDF5 files, {args.rounds} round(s); "
        f"{environment_summary()}"
    )
    print(header)
    print(table.text())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(f"# Pipeline benchmarks\n\n{header}\n\n{table.markdown()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
