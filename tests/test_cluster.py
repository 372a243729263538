"""One store for a cluster: ``client.map`` over ``@checkpoint`` functions sharing an ``s3://`` store.

A ``distributed.LocalCluster(n_workers=2, processes=True)`` stands in for remote hosts: its
workers are separate processes that share nothing with the test but the S3 server.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checkpoint_magic import checkpoint

distributed = pytest.importorskip("distributed")
pytest.importorskip("s3fs")



def _log_run(log_dir: str, x: int) -> None:
    # One file per body run: the workers are other processes, so they report through files.
    Path(log_dir, f"{x}-{os.getpid()}-{uuid.uuid4().hex[:6]}").touch()


def square(x: int, log_dir: str, store: str) -> int:
    """The work each task does: a checkpointed function resolved on the worker."""
    return _square_for(store)(x, log_dir)


_functions: dict[str, Any] = {}


def _square_for(store: str) -> Any:
    if store not in _functions:

        @checkpoint(store=store, name="cluster.square", ignore=["log_dir"])
        def body(x: int, log_dir: str) -> int:
            _log_run(log_dir, x)
            time.sleep(0.3)
            return x * x

        _functions[store] = body
    return _functions[store]


@checkpoint(name="cluster.cube", ignore=["log_dir"])
def cube(x: int, log_dir: str) -> int:
    """A checkpointed function shipped to the workers as it is (its store: ``CHECKPOINT_MAGIC_DIR``)."""
    _log_run(log_dir, x)
    return x**3


@pytest.fixture(scope="module")
def cluster(moto_server: dict[str, str]) -> Iterator[tuple[Any, str]]:
    """A 2-process LocalCluster and the ``s3://`` store its workers use by default.

    Started after the S3 server, so the workers inherit its endpoint and credentials, and
    ``CHECKPOINT_MAGIC_DIR`` pointing at a shared ``s3://`` store.
    """
    from tests.conftest import S3_BUCKET

    default_store = f"s3://{S3_BUCKET}/cluster-{uuid.uuid4().hex[:8]}"
    saved = os.environ.get("CHECKPOINT_MAGIC_DIR")
    os.environ["CHECKPOINT_MAGIC_DIR"] = default_store
    try:
        local = distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
        )
    finally:
        if saved is None:
            os.environ.pop("CHECKPOINT_MAGIC_DIR", None)
        else:
            os.environ["CHECKPOINT_MAGIC_DIR"] = saved
    client = distributed.Client(local)
    try:
        yield client, default_store
    finally:
        client.close()
        local.close()


@pytest.fixture
def client(cluster: tuple[Any, str]) -> Any:
    return cluster[0]


def test_client_map_twice_runs_each_body_once(client: Any, s3_store: str, tmp_path: Path) -> None:
    log_dir = str(tmp_path / "runs")
    os.makedirs(log_dir)
    first = client.gather(client.map(square, range(8), log_dir=log_dir, store=s3_store, pure=False))
    second = client.gather(client.map(square, range(8), log_dir=log_dir, store=s3_store, pure=False))
    assert first == second == [x * x for x in range(8)]
    runs = sorted(int(name.split("-")[0]) for name in os.listdir(log_dir))
    assert runs == list(range(8))  # each body once, over both maps and both workers


def test_workers_racing_on_one_key_run_it_once(client: Any, s3_store: str, tmp_path: Path) -> None:
    log_dir = str(tmp_path / "runs")
    os.makedirs(log_dir)
    # Four tasks of the same call at once, on two workers with two threads each.
    futures = [
        client.submit(square, 7, log_dir=log_dir, store=s3_store, pure=False) for _ in range(4)
    ]
    assert client.gather(futures) == [49] * 4
    assert len(os.listdir(log_dir)) == 1


def test_a_checkpointed_function_ships_to_the_workers_with_the_env_store(
    cluster: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The decorated function itself is what is mapped; every process resolves its store from
    # CHECKPOINT_MAGIC_DIR (an s3:// URL here), so the client hits what the workers stored.
    client, default_store = cluster
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", default_store)
    log_dir = str(tmp_path / "runs")
    os.makedirs(log_dir)
    assert client.gather(client.map(cube, [1, 2, 3], log_dir=log_dir, pure=False)) == [1, 8, 27]
    assert cube(2, log_dir) == 8  # a hit here, on the client
    assert len(os.listdir(log_dir)) == 3
