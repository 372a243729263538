"""Shared fixtures: every test gets its own store, and a helper that runs scripts in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_store(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default store at a temporary directory so no test writes into the repository."""
    path = tmp_path_factory.mktemp("default-store")
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(path))
    monkeypatch.delenv("CHECKPOINT_MAGIC_SECRET", raising=False)
    monkeypatch.delenv("CHECKPOINT_MAGIC_MAX_SIZE", raising=False)
    return path


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    """A fresh, empty store directory."""
    return tmp_path / "store"


class ScriptRunner:
    """Write a script into a directory and run it with a fresh interpreter, as a user would."""

    def __init__(self, workdir: Path):
        self.workdir = workdir

    def write(self, source: str, name: str = "script.py") -> Path:
        path = self.workdir / name
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, source: str | None = None, name: str = "script.py", *, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        if source is not None:
            self.write(source, name)
        full_env = {k: v for k, v in os.environ.items() if k != "CHECKPOINT_MAGIC_DIR"}
        full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), full_env.get("PYTHONPATH", "")])
        full_env.update(env or {})
        proc = subprocess.run(
            [sys.executable, name], cwd=self.workdir, env=full_env, capture_output=True, text=True, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"script failed ({proc.returncode}):\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc


@pytest.fixture
def script(tmp_path: Path) -> ScriptRunner:
    """Run scripts in fresh processes inside ``tmp_path`` (their default store is ``tmp_path/.Lutil-checkpoint``)."""
    return ScriptRunner(tmp_path)


# ---------------------------------------------------------------------- object storage (S3)
S3_BUCKET = "checkpoint-magic-tests"


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def moto_server() -> Iterator[dict[str, str]]:
    """A real S3-compatible server (moto) on a free loopback port, shared by the session.

    Yields the environment that points boto3/s3fs at it (endpoint and dummy credentials) after
    creating the test bucket. Skips when ``moto[server]`` or ``s3fs`` is not installed.
    """
    pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    import time
    import urllib.error
    import urllib.request

    port = _free_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL']}/moto-api/", timeout=1).close()
                break
            except (urllib.error.URLError, OSError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            import s3fs

            s3fs.S3FileSystem(skip_instance_cache=True).mkdir(S3_BUCKET)
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_store(
    moto_server: dict[str, str], request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> str:
    """A fresh, empty ``s3://`` store URL on the session's moto server (its own prefix per test).

    The local read cache of URL stores goes to a temporary directory too.
    """
    import re
    import uuid

    monkeypatch.setenv("CHECKPOINT_MAGIC_CACHE", str(tmp_path_factory.mktemp("blob-cache")))
    name = re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:40]
    return f"s3://{S3_BUCKET}/{name}-{uuid.uuid4().hex[:8]}"
