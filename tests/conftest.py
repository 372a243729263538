"""Shared fixtures: every test gets its own store, and a helper that runs scripts in fresh processes."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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
