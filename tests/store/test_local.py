"""The local backend's descriptor walks: no descriptor left open, no link followed, whole writes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

from checkpoint_magic.store.backends.base import Staged, UnsafeStoreError
from checkpoint_magic.store.backends.local import LocalBackend

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc"
)

DATA = [memoryview(b"hello")]


def _fds(under: Path) -> list[str]:
    """What this process's open descriptors lead to below ``under`` (other threads' files,
    opened or closed meanwhile by earlier tests' leftovers, are not counted)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target == str(under) or target.startswith(f"{under}{os.sep}"):
            found.append(target)
    return sorted(found)


def _roots(tmp_path: Path) -> dict[str, LocalBackend]:
    good = LocalBackend(tmp_path / "store")
    good.publish(good.stage("tmp/s", DATA), "x/y/b")
    (tmp_path / "store" / "link").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "store" / "afile").write_bytes(b"")
    os.mkfifo(tmp_path / "store" / "fifo")
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return {
        "good": good,
        "file": LocalBackend(tmp_path / "file"),
        "dangling": LocalBackend(tmp_path / "dangling"),
        "missing": LocalBackend(tmp_path / "missing"),
    }


CASES: dict[str, tuple[str, Callable[[LocalBackend], Any], type[BaseException] | None]] = {
    "stage": ("good", lambda b: b.stage("tmp/a", DATA), None),
    "stage at the root": ("good", lambda b: b.stage("a", DATA), None),
    "publish": ("good", lambda b: b.publish(b.stage("tmp/b", DATA), "x/z/b"), None),
    "publish, no replace": (
        "good",
        lambda b: b.publish(b.stage("tmp/c", DATA), "x/y/b", replace=False),
        None,
    ),
    "publish a missing source": (
        "good",
        lambda b: b.publish(Staged("tmp/none", 5), "x/q"),
        FileNotFoundError,
    ),
    "stage through a link": ("good", lambda b: b.stage("link/a", DATA), UnsafeStoreError),
    "publish into a link": (
        "good",
        lambda b: b.publish(b.stage("tmp/d", DATA), "link/q"),
        UnsafeStoreError,
    ),
    "publish from a link": (
        "good",
        lambda b: b.publish(Staged("link/e", 5), "x/q"),
        UnsafeStoreError,
    ),
    "publish under a file": (
        "good",
        lambda b: b.publish(b.stage("tmp/f", DATA), "afile/a/b"),
        UnsafeStoreError,
    ),
    "move": ("good", lambda b: b.move("x/y/b", "m/n/b"), None),
    "read a folder": ("good", lambda b: b.read_small("x", 10), FileNotFoundError),
    "read a link": ("good", lambda b: b.read_small("link", 10), UnsafeStoreError),
    "read a fifo": ("good", lambda b: b.read_small("fifo", 10), FileNotFoundError),
    "read under a file": ("good", lambda b: b.read_small("afile/x", 10), FileNotFoundError),
    "stage in a file": ("file", lambda b: b.stage("tmp/a", DATA), NotADirectoryError),
    "read in a file": ("file", lambda b: b.read_bytes("a/b", limit=10), FileNotFoundError),
    "publish in a file": ("file", lambda b: b.publish(Staged("tmp/a", 5), "x"), OSError),
    "stage at a dangling link": ("dangling", lambda b: b.stage("tmp/a", DATA), OSError),
    "publish at a dangling link": ("dangling", lambda b: b.publish(Staged("t/a", 5), "x"), OSError),
    "publish in no store": ("missing", lambda b: b.publish(Staged("t/a", 5), "x"), OSError),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_path_closes_what_it_opens(tmp_path: Path, case: str) -> None:
    where, action, error = CASES[case]
    backend = _roots(tmp_path)[where]
    before = _fds(tmp_path)
    if error is None:
        action(backend)
    else:
        with pytest.raises(error):
            action(backend)
    assert _fds(tmp_path) == before
    # the store's link leads to tmp_path: nothing was created through it
    assert not (tmp_path / "a").exists() and not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    "array",
    [np.arange(6.0).reshape(2, 3), np.arange(6, dtype=np.uint8).reshape(2, 3), np.float64(3.0)],
    ids=["2-D float", "2-D bytes", "0-D"],
)
def test_small_files_are_written_whole_through_short_writes(tmp_path: Path, array: Any) -> None:
    backend = LocalBackend(tmp_path / "store")
    real = os.write
    with mock.patch("os.write", side_effect=lambda fd, data: real(fd, bytes(data)[:1])):
        staged = backend.stage("tmp/a", [memoryview(array), memoryview(b"end")])
    assert (tmp_path / "store" / "tmp" / "a").read_bytes() == array.tobytes() + b"end"
    assert staged.size == array.nbytes + 3


def test_read_many_and_write_many_go_name_by_name(tmp_path: Path) -> None:
    b = LocalBackend(tmp_path / "store")
    b.write("state/a", b"one")
    b.write("state/b", b"two and more")
    assert b.read_many(["state/b", "state/none", "state/a"], limit=4) == [b"two a", None, b"one"]
    assert b.tracks_folders and b.index_file() is None  # the index is in the store itself
    b.write_many({"state/a": b"1", "state/x/new": b"2"})
    assert b.read_many(["state/a", "state/x/new"], limit=4) == [b"1", b"2"]
