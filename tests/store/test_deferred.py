"""Deferred writes: merged per slot, written by a thread, at flush and never twice after a fork."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest

from checkpoint_magic.store.deferred import BatchWriter, flush_all


def add(pending, new):
    return pending + new


def test_values_of_a_slot_merge_or_replace_until_written():
    written = []

    def write(slot, value):
        written.append((slot, value))

    writer = BatchWriter("test", interval=3600)
    for _ in range(3):
        writer.submit("hits", 1, write, add)
    writer.submit("last", "first", write)
    writer.submit("last", "second", write)  # no merge: the later value replaces
    writer.flush()
    assert sorted(written) == [("hits", 3), ("last", "second")]
    writer.flush()  # nothing pending is written twice
    assert len(written) == 2


def test_the_thread_writes_within_the_interval_and_ends_when_idle():
    done = threading.Event()
    writer = BatchWriter("test", interval=0.05)
    writer.submit("slot", 1, lambda slot, value: done.set())
    assert done.wait(10)
    deadline = time.monotonic() + 10
    while writer._thread is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert writer._thread is None  # no thread lingers while nothing is pending
    again = threading.Event()
    writer.submit("slot", 2, lambda slot, value: again.set())  # a new thread starts
    assert again.wait(10)


def test_a_failing_write_is_logged_and_the_others_are_written(caplog):
    written = []

    def failing(slot, value):
        raise PermissionError(13, "read-only store")

    writer = BatchWriter("test", interval=3600)
    writer.submit("a", 1, failing)
    writer.submit("b", 2, lambda slot, value: written.append(value))
    with caplog.at_level(logging.DEBUG, logger="checkpoint_magic.store.deferred"):
        writer.flush()
    assert written == [2]
    assert "read-only store" in caplog.text


def test_flush_all_writes_every_writer():
    written = []
    writers = [BatchWriter("test", interval=3600) for _ in range(2)]
    for i, writer in enumerate(writers):
        writer.submit(i, i, lambda slot, value: written.append(value))
    flush_all()
    assert sorted(written) == [0, 1]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_write_what_its_parent_had_pending(tmp_path):
    marker = tmp_path / "written"
    writer = BatchWriter("test", interval=3600)

    def write(slot, value):
        with marker.open("a") as f:
            f.write("x")

    writer.submit("slot", 1, write)
    pid = os.fork()
    if pid == 0:  # the child: flushing writes nothing of the parent's
        try:
            writer.flush()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    writer.flush()
    assert marker.read_text() == "x"  # written once, by the parent


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_thread_killed_by_an_unexpected_error_is_replaced():
    """A write that raises something else than OSError (a StoreFormatError from a store
    recreated by a newer version) ends the thread: the next record still gets one."""

    def broken(slot, value):
        raise RuntimeError("not an OSError")

    writer = BatchWriter("test", interval=0.05)
    writer.submit("a", 1, broken)
    dead = writer._thread
    dead.join(10)
    assert not dead.is_alive()
    written = threading.Event()
    writer.submit("b", 2, lambda slot, value: written.set())
    assert written.wait(10)  # written by a new thread, without a flush


def test_an_unexpected_error_of_one_write_loses_nothing_else_and_is_not_raised(caplog):
    written = []

    def broken(slot, value):
        raise ValueError("a store of a newer format")

    writer = BatchWriter("test", interval=3600)
    writer.submit("a", 1, broken)
    writer.submit("b", 2, lambda slot, value: written.append(value))
    with caplog.at_level(logging.WARNING, logger="checkpoint_magic.store.deferred"):
        writer.flush()  # a reader of another store calls this: it must not fail
    assert written == [2]
    assert "could not write 'a'" in caplog.text


def test_a_writer_with_write_all_hands_it_each_flush_whole(caplog):
    batches = []
    writer = BatchWriter("test", interval=3600, write_all=batches.append)
    for slot in ("a", "b", "a"):
        writer.submit(slot, 1, lambda slot, value: pytest.fail("written one by one"), add)
    writer.flush()
    writer.flush()  # nothing pending: write_all is not called
    assert [sorted(b) for b in batches] == [[("a", 2), ("b", 1)]]

    def broken(batch):
        raise RuntimeError("a bug in the batch writer")

    failing = BatchWriter("test", interval=3600, write_all=broken)
    failing.submit("a", 1, lambda slot, value: None)
    with caplog.at_level(logging.WARNING, logger="checkpoint_magic.store.deferred"):
        failing.flush()  # logged, never raised
    assert "could not write a batch" in caplog.text
