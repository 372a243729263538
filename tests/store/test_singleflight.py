"""Single-flight: racing callers run a missing computation once; a dead holder is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.store import layout, singleflight
from checkpoint_magic.store.backends import open_backend
from checkpoint_magic.store.core import get_store

REPO = Path(__file__).resolve().parents[2]
# Counters live at module level: a closure over a list the function appends to would be a
# closure value that changes on every call, and closure values are part of the key.
RUNS: list[int] = []


@pytest.fixture(autouse=True)
def _reset_runs() -> None:
    RUNS.clear()


KEY = "0123456789abcdef0123456789abcdef"


def _lease_names(backend: Any) -> list[str]:
    return [name for name, _ in backend.list_files(layout.LEASES)]


# ------------------------------------------------------------------------------ the protocol


def test_a_second_caller_waits_and_returns_when_the_entry_appears(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "store"))
    published = threading.Event()
    first = singleflight.acquire(backend, "m.f", KEY, published.is_set)
    assert first.held
    outcome: list[singleflight.Flight] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(singleflight.acquire(backend, "m.f", KEY, published.is_set))
    )
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # waiting on the live lease
    published.set()
    first.release()
    waiter.join(10)
    assert not waiter.is_alive() and not outcome[0].held  # the entry exists: load it
    assert _lease_names(backend) == []


def test_a_released_lease_without_entry_is_taken_by_a_waiter(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "store"))
    first = singleflight.acquire(backend, "m.f", KEY, lambda: False)
    outcome: list[singleflight.Flight] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(singleflight.acquire(backend, "m.f", KEY, lambda: False))
    )
    waiter.start()
    time.sleep(0.2)
    first.release()  # the holder's body raised: no entry
    waiter.join(10)
    assert outcome[0].held
    outcome[0].release()


def _plant_lease(backend: Any, pid: int, generation: int = 0) -> str:
    name = layout.flight_lease(KEY, generation)
    record = {"kind": "flight", "host": singleflight.HOST, "pid": pid, "token": "t", "digests": []}
    assert backend.create(name, json.dumps(record).encode())
    return name


def test_a_lease_of_a_dead_process_is_taken_over_at_once_by_exactly_one_caller(
    tmp_path: Path,
) -> None:
    backend = open_backend(str(tmp_path / "store"))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _plant_lease(backend, dead.pid)
    results: list[singleflight.Flight] = []
    lock = threading.Lock()

    def call() -> None:
        flight = singleflight.acquire(backend, "m.f", KEY, lambda: False, ttl=600)
        with lock:
            results.append(flight)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    holders = [f for f in results if f.held]
    assert len(holders) == 1  # generation 1 could only be created once; the rest wait
    assert _lease_names(backend) == [f"flight-{KEY}-1"]
    deadline = time.monotonic() + 30
    while any(t.is_alive() for t in threads):  # each release lets the next waiter in
        assert time.monotonic() < deadline
        with lock:
            for flight in results:
                flight.release()
        time.sleep(0.05)
    for flight in results:
        flight.release()
    assert len(results) == 4 and _lease_names(backend) == []


def test_a_lease_that_stops_changing_is_taken_over_after_the_ttl(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "store"))
    _plant_lease(backend, os.getpid())  # alive, but nobody renews it (a hung or stopped holder)
    start = time.monotonic()
    flight = singleflight.acquire(backend, "m.f", KEY, lambda: False, ttl=0.5)
    assert flight.held and time.monotonic() - start >= 0.5
    flight.release()


def test_a_lease_left_empty_by_a_holder_that_died_at_once_is_taken_over_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = open_backend(str(tmp_path / "store"))
    # Created in place, then its holder died before writing its record: no pid to judge.
    assert backend.create(layout.flight_lease(KEY, 0), b"", whole=False)
    monkeypatch.setattr(singleflight, "EMPTY_STALE", 0.3)
    start = time.monotonic()
    flight = singleflight.acquire(backend, "m.f", KEY, lambda: False, ttl=600)
    assert flight.held and 0.3 <= time.monotonic() - start < 60  # not the ttl
    assert _lease_names(backend) == [f"flight-{KEY}-1"]
    flight.release()


def test_a_lease_created_in_place_is_whole_once_created_and_never_created_twice(
    tmp_path: Path,
) -> None:
    backend = open_backend(str(tmp_path / "store"))
    name = layout.flight_lease(KEY, 0)
    assert backend.create(name, b'{"pid": 1}', whole=False)
    assert not backend.create(name, b'{"pid": 2}', whole=False)
    assert not backend.create(name, b'{"pid": 3}')
    assert backend.read_bytes(name) == b'{"pid": 1}'
    assert os.listdir(tmp_path / "store" / "tmp") == []  # nothing staged


def test_the_holder_renews_its_lease_so_waiters_keep_waiting(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "store"))
    holder = singleflight.acquire(backend, "m.f", KEY, lambda: False, ttl=0.6)
    done = threading.Event()
    outcome: list[singleflight.Flight] = []
    waiter = threading.Thread(
        target=lambda: outcome.append(
            singleflight.acquire(backend, "m.f", KEY, done.is_set, ttl=0.6)
        )
    )
    waiter.start()
    waiter.join(2.0)  # more than three TTLs: the heartbeat (every TTL/3) keeps the lease live
    assert waiter.is_alive()
    done.set()
    holder.release()
    waiter.join(10)
    assert not outcome[0].held


def test_a_flight_lease_is_a_live_lease_without_blobs_for_gc(tmp_path: Path) -> None:
    from checkpoint_magic.store.leases import live_claims

    backend = open_backend(str(tmp_path / "store"))
    flight = singleflight.acquire(backend, "m.f", KEY, lambda: False)
    assert live_claims(backend) == (set(), [])
    flight.release()


def test_a_store_fault_means_computing_without_single_flight(tmp_path: Path) -> None:
    backend = open_backend(str(tmp_path / "store"))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("read-only store")

    backend.create = broken  # type: ignore[method-assign]
    flight = singleflight.acquire(backend, "m.f", KEY, lambda: False)
    assert not flight.held


# ------------------------------------------------------------------------------ through @checkpoint


def test_a_miss_takes_its_lease_in_a_whole_store(tmp_path: Path) -> None:
    # A process killed right after its lease must leave a store (FORMAT first), not a bare folder.
    from checkpoint_magic.core.checkpointer import Checkpointer

    cp = Checkpointer("function", "m.f", store=str(tmp_path / "new"))
    assert cp.load("code", {}) is None
    store = get_store(str(tmp_path / "new"))
    assert store.is_store() and len(_lease_names(store.backend)) == 1
    cp.abandon("code", {})
    assert _lease_names(store.backend) == []


def test_a_body_that_raises_releases_its_lease(tmp_path: Path) -> None:
    store = str(tmp_path / "store")

    @checkpoint(store=store)
    def fails(x: int) -> int:
        raise KeyError(x)

    with pytest.raises(KeyError):
        fails(1)
    assert _lease_names(get_store(store).backend) == []


def test_threads_racing_on_one_key_run_the_body_once(tmp_path: Path) -> None:

    @checkpoint(store=str(tmp_path / "store"), ignore=["global:RUNS"])  # a counter, not an input
    def slow(x: int) -> int:
        RUNS.append(x)
        time.sleep(0.5)
        return x * 2

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(slow(21))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [42] * 4 and RUNS == [21]


# ------------------------------------------------------------------------------ processes

RACER = """
import os, sys, time
from checkpoint_magic import checkpoint

@checkpoint(store=sys.argv[1], name="race.slow")
def slow(x):
    with open(sys.argv[2], "a") as f:
        f.write(f"{os.getpid()}\\n")
    time.sleep(float(sys.argv[3]))
    return x * 2

print(slow(21))
"""


def _racers(tmp_path: Path, store: str, n: int, sleep: float) -> list[subprocess.Popen[str]]:
    script = tmp_path / "racer.py"
    script.write_text(RACER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return [
        subprocess.Popen(
            [sys.executable, str(script), store, str(tmp_path / "runs.txt"), str(sleep)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]


def _finish(procs: list[subprocess.Popen[str]]) -> list[str]:
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        outs.append(out.strip())
    return outs


@pytest.mark.parametrize("where", ["local", "s3"])
def test_four_processes_racing_on_one_key_run_it_once(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_store")
    assert _finish(_racers(tmp_path, store, 4, 2.0)) == ["42"] * 4
    assert len((tmp_path / "runs.txt").read_text().splitlines()) == 1


def _wait_for_runs(path: Path, n: int) -> None:
    deadline = time.monotonic() + 60
    while not (path.exists() and len(path.read_text().splitlines()) >= n):
        assert time.monotonic() < deadline, "the holder never started"
        time.sleep(0.05)


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_killed_holder_is_taken_over(
    where: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = str(tmp_path / "store") if where == "local" else request.getfixturevalue("s3_store")
    (holder,) = _racers(tmp_path, store, 1, 600.0)  # would hold the lease for ten minutes
    _wait_for_runs(tmp_path / "runs.txt", 1)
    waiters = _racers(tmp_path, store, 2, 0.5)
    time.sleep(1.0)  # the waiters find the live lease and wait
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert _finish(waiters) == ["42", "42"]
    runs = (tmp_path / "runs.txt").read_text().splitlines()
    assert len(runs) == 2 and str(holder.pid) == runs[0]  # one takeover, the other loads it


def test_a_stopped_holder_on_s3_is_taken_over_after_the_ttl(
    tmp_path: Path, s3_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # SIGSTOP: the holder's process is alive but its heartbeat stops, as a host that hangs or
    # loses the network; only the TTL (measured by the waiter's own clock) can end its lease.
    monkeypatch.setenv("CHECKPOINT_MAGIC_LEASE_TTL", "3")
    (holder,) = _racers(tmp_path, s3_store, 1, 600.0)
    try:
        _wait_for_runs(tmp_path / "runs.txt", 1)
        holder.send_signal(signal.SIGSTOP)
        (waiter,) = _racers(tmp_path, s3_store, 1, 0.1)
        assert _finish([waiter]) == ["42"]
        assert len((tmp_path / "runs.txt").read_text().splitlines()) == 2
    finally:
        holder.kill()
        holder.wait()


def test_a_backend_whose_create_predates_the_whole_keyword_still_takes_leases(
    tmp_path: Path,
) -> None:
    from checkpoint_magic.store.backends.local import LocalBackend

    class OldBackend(LocalBackend):  # a third-party backend written against the old API
        def create(self, name: str, data: bytes) -> bool:  # type: ignore[override]
            return super().create(name, data)

    backend = OldBackend(str(tmp_path / "store"))
    flight = singleflight.acquire(backend, "m.f", KEY, lambda: False)
    assert flight.held and _lease_names(backend) == [f"flight-{KEY}-0"]
    assert json.loads(backend.read_bytes(f"leases/flight-{KEY}-0"))["kind"] == "flight"
    flight.release()


# ------------------------------------------------------------------------------ worth a flight


def test_a_computation_always_faster_than_a_poll_is_not_coordinated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken: list[str] = []
    acquire = singleflight.acquire

    def counting(backend: Any, namespace: str, key: str, *args: Any, **kwargs: Any) -> Any:
        taken.append(key)
        return acquire(backend, namespace, key, *args, **kwargs)

    monkeypatch.setattr(singleflight, "acquire", counting)
    pause = {"seconds": 0.0}

    @checkpoint(store=str(tmp_path / "store"), ignore=["global:pause"])
    def f(x: int) -> int:
        time.sleep(pause["seconds"])
        return x + 1

    assert f(1) == 2 and len(taken) == 1  # how long it takes is unknown: coordinated
    assert [f(i) for i in range(2, 5)] == [3, 4, 5] and len(taken) == 1  # fast: not
    pause["seconds"] = singleflight.WORTH_WAITING * 1.5
    assert f(10) == 11 and len(taken) == 1  # known fast so far: not coordinated
    assert f(11) == 12 and len(taken) == 2  # it once took long enough to be worth waiting for
    pause["seconds"] = 0.0
    assert f(12) == 13 and len(taken) == 3  # the slowest run counts, not the last one
    assert _lease_names(get_store(str(tmp_path / "store")).backend) == []
    assert f.is_cached(3) and f.is_cached(12)


def test_a_checkpointer_shipped_to_another_process_times_its_own_runs(tmp_path: Path) -> None:
    # "Every run in this process": a pickled copy (a Dask worker's) has not run it yet, so its
    # first miss is coordinated whatever the sender measured.
    import pickle

    from checkpoint_magic.core.checkpointer import Checkpointer

    cp = Checkpointer("function", "m.f", store=str(tmp_path / "store"))
    backend = get_store(str(tmp_path / "store")).backend
    assert cp.load("code", {"x": "1"}) is None and len(_lease_names(backend)) == 1
    assert cp.save("code", {"x": "1"}, {"return": 1}, duration=0.0)
    assert cp.load("code", {"x": "2"}) is None and _lease_names(backend) == []  # known fast
    shipped = pickle.loads(pickle.dumps(cp))
    assert shipped.load("code", {"x": "3"}) is None and len(_lease_names(backend)) == 1
    shipped.abandon("code", {"x": "3"})
    assert _lease_names(backend) == []


def test_a_stale_listing_never_makes_a_second_holder(tmp_path: Path) -> None:
    """A listing can miss a newer generation and name an older one removed meanwhile (its
    stat fails): the caller then creates generation 0 beside the live generation 1."""
    from checkpoint_magic.store.backends.local import LocalBackend

    class StaleOnce(LocalBackend):
        stale = True

        def list_files(self, folder: str) -> Any:
            if self.stale:  # the first look: gen 0 gone, gen 1 not seen yet
                self.stale = False
                return []
            return super().list_files(folder)

    backend = StaleOnce(str(tmp_path / "store"))
    _plant_lease(backend, os.getpid(), generation=1)  # a live holder of generation 1
    looks = iter([False, True])
    flight = singleflight.acquire(backend, "m.f", KEY, lambda: next(looks, True), ttl=600)
    assert not flight.held  # it waited for the holder's entry instead of computing too
    assert _lease_names(backend) == [f"flight-{KEY}-1"]
