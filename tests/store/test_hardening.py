"""A store that cannot be fooled: manifests bound to their key, bounded parsing, leases, .gitignore."""

import shutil
from pathlib import Path

import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.exceptions import CorruptEntryWarning, StoreFormatError, StoreWriteWarning
from checkpoint_magic.store import Store, layout
from checkpoint_magic.store.budget import gc
from checkpoint_magic.tools.maintenance import list_entries, verify


def test_a_manifest_copied_over_another_key_is_a_miss_not_its_value(tmp_path, monkeypatch):
    store = Store(tmp_path / "s")

    @checkpoint(store=store)
    def f(x):
        return [x] * 10_000

    f(1), f(2)
    entries = {e.inputs["x"]: e for e in list_entries(store)}
    one, two = sorted(entries.values(), key=lambda e: e.created)
    shutil.copyfile(two.path, one.path)  # the attacker's step
    with pytest.warns(CorruptEntryWarning, match="written for entry"):
        assert f(1) == [1] * 10_000


def test_a_deeply_nested_manifest_is_a_miss_with_a_warning(tmp_path):
    import xxhash

    store = Store(tmp_path / "s")
    store.write_entry("m.f", "k", {"outputs": {}})
    body = b"[" * 100_000 + b"]" * 100_000 + b"\n{}"
    data = b"CMM1 " + xxhash.xxh3_128_hexdigest(body).encode() + b"\n" + body
    store.entry_path("m.f", "k").write_bytes(data)
    from checkpoint_magic.store.core import CorruptManifestError

    with pytest.raises(CorruptManifestError, match="nested"):
        store.read_entry("m.f", "k", hot_only=True)


def test_gc_frees_space_at_once_but_never_a_blob_a_live_commit_claimed(tmp_path):
    store = Store(tmp_path / "s")
    with store.commit():
        ref = store.put_blob([b"x" * 100_000])
        assert gc(store).freed_blobs == 0  # claimed by the lease of the commit in flight
        assert store.blob_path(ref["digest"]).exists()
    assert gc(store).freed_blobs == 1 and not store.blob_path(ref["digest"]).exists()


def test_tools_refuse_a_path_that_is_not_a_store_and_stores_ignore_themselves(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "notes.txt").write_text("mine")
    with pytest.raises(StoreFormatError, match="not a checkpoint store"):
        list_entries(Store(tmp_path / "project"))
    with pytest.raises(StoreFormatError, match="not a checkpoint store"):
        verify(Store(tmp_path / "project"))
    store = Store(tmp_path / "s")
    store.put_blob([b"abc"])
    assert (tmp_path / "s" / ".gitignore").read_text().strip().endswith("*")


def test_a_deleted_store_is_recreated_by_the_next_commit(tmp_path):
    store = Store(tmp_path / "s")

    @checkpoint(store=store)
    def f(x):
        return x + 1

    assert f(1) == 2
    shutil.rmtree(tmp_path / "s")
    assert f(2) == 3  # no "could not be stored" warning (pytest turns it into an error)
    assert len(list_entries(store)) == 1


# ---------------------------------------------------------------------------------------- signed blobs
class _Colliding:
    """An xxh3 stand-in under which every payload has the same digest (a crafted collision)."""

    DIGEST = "ab" * 16

    def __init__(self, *args):
        pass

    def update(self, data):
        pass

    def hexdigest(self):
        return self.DIGEST


class _Payload:
    """A value whose unpickling creates a marker file: proof that loading ran the author's code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def _payload_bytes(value) -> bytes:
    """The bytes of the single blob a value pickles to."""
    from checkpoint_magic.store.codecs.serializers import PickleCodec

    [[payload]] = PickleCodec().encode(value).blobs
    return bytes(payload)


@pytest.mark.parametrize("signed", [True, False])
def test_a_colliding_blob_in_a_signed_store_is_refused_and_never_unpickled(
    tmp_path, monkeypatch, signed
):
    """xxh3 addresses blobs but is not collision resistant: two payloads under one address. A
    signed store checks the cryptographic digest its signed manifest recorded, so the attacker's
    blob is refused before it is unpickled; an unsigned one runs it (the danger is real)."""
    import numpy as np

    from checkpoint_magic.store import blobstore

    if signed:
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    store = Store(tmp_path / "s")
    marker = tmp_path / "pwned"
    honest = ["x" * 30_000]
    monkeypatch.setattr(blobstore, "address_hasher", _Colliding)

    @checkpoint(store=store, name="m.honest", ignore=["log"])
    def honest_value(log):
        log.append(1)
        return list(honest)

    log: list[int] = []
    assert honest_value(log) == honest
    [entry] = list_entries(store)
    assert list(entry.blobs) == [_Colliding.DIGEST]
    if signed:
        ref = entry.manifest["outputs"]["return"]["blobs"][0]
        assert {"blake3-chunks", "sha256"} & set(ref)  # BLAKE3; SHA-256 without blake3
    good = _payload_bytes(honest)
    evil = _payload_bytes((_Payload(str(marker)), "y" * 29_000))
    evil += b"\0" * (len(good) - len(evil))  # same address, same size: pickle stops at STOP
    store.blob_path(_Colliding.DIGEST).write_bytes(evil)  # the attacker's write
    if signed:
        with pytest.warns(CorruptEntryWarning, match="does not match its hash"):
            assert honest_value(log) == honest
        assert not marker.exists() and log == [1, 1]
    else:
        with pytest.warns(CorruptEntryWarning, match="came back"):
            honest_value(log)
        assert marker.exists()
    np.testing.assert_equal(len(good), store.blob_path(_Colliding.DIGEST).stat().st_size)


def test_an_entry_signed_with_an_algorithm_this_process_lacks_is_a_miss_with_a_warning(
    tmp_path, monkeypatch
):
    """A store signed where blake3 is installed, read where it is not: refused, never trusted unverified."""
    from checkpoint_magic.store import digests

    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    store = Store(tmp_path / "s")

    @checkpoint(store=store, name="m.algo", ignore=["log"])
    def value(log):
        log.append(1)
        return b"z" * 40_000

    log: list[int] = []
    value(log)
    [entry] = list_entries(store)
    [algorithm] = set(entry.manifest["outputs"]["return"]["blobs"][0]) - {"digest", "size"}
    real = digests.strong_hasher
    monkeypatch.setattr(
        digests,
        "STRONG_ALGORITHMS",
        tuple(a for a in digests.STRONG_ALGORITHMS if a != algorithm) or ("sha256",),
    )
    monkeypatch.setattr(
        "checkpoint_magic.store.blobstore.strong_hasher",
        lambda name: None if name == algorithm else real(name),
    )
    with pytest.warns(CorruptEntryWarning, match=f"signed with {algorithm}, unavailable here"):
        assert value(log) == b"z" * 40_000
    assert log == [1, 1]


# ---------------------------------------------------------------------------------------- links
def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
    }


def _linked_store(tmp_path: Path):
    """A store with one entry (and a usage record), a function over it, and a folder outside it."""
    import warnings

    from checkpoint_magic.store.core import flush_usage

    store = Store(tmp_path / "s")
    outside = tmp_path / "outside"
    (outside / "objects").mkdir(parents=True)
    (outside / "victim.txt").write_text("keep me")

    @checkpoint(store=store, name="m.linked", ignore=["log"])
    def f(n, log):
        log.append(n)
        return list(range(n))

    log: list[int] = []
    f(20_000, log)  # a value stored in a blob, not inline
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f(20_000, log)  # a hit: a usage record exists
    flush_usage()
    [entry] = list_entries(store)
    return store, outside, f, log, entry


@pytest.mark.parametrize(
    "planted",
    [
        "objects",
        "tmp",
        "state",
        "entries/<ns>",
        "<key>.hits",
        "<key>.pin",
        "last-miss.json",
        "staging name",
    ],
)
def test_no_write_goes_through_a_planted_link(tmp_path, monkeypatch, planted):
    """Whatever an attacker replaces by a link to a folder or file outside the store: nothing is
    written outside, every call returns the right value, and a refused write is a warning."""
    import os
    import warnings

    from checkpoint_magic.store.core import flush_usage
    from checkpoint_magic.tools.maintenance import pin

    store, outside, f, log, entry = _linked_store(tmp_path)
    assert entry.blobs
    ns_dir = entry.ns_dir
    if planted in ("objects", "tmp", "state", "entries/<ns>"):
        path = store.root / (f"entries/{ns_dir}" if planted == "entries/<ns>" else planted)
        shutil.rmtree(path)
        path.symlink_to(outside, target_is_directory=True)
    elif planted == "staging name":  # were temp names predictable, an attacker would plant this
        monkeypatch.setattr(layout, "staging", lambda: "tmp/4242-" + "0" * 32)
        (store.tmp / ("4242-" + "0" * 32)).symlink_to(outside / "victim.txt")
    else:
        suffix = {"<key>.hits": layout.HITS, "<key>.pin": layout.PIN}.get(planted)
        path = store.root / (
            layout.state_in(ns_dir, entry.key, suffix) if suffix else f"state/{ns_dir}/{planted}"
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.symlink_to(outside / "victim.txt")
    before = _snapshot(outside)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert f(20_000, log) == list(range(20_000))  # the stored entry (or a recompute)
        assert f(30_000, log) == list(range(30_000))  # a new commit
        assert f(30_000, log) == list(range(30_000))
        flush_usage()
        if planted == "<key>.pin":
            with pytest.raises(OSError, match="not a pin the store wrote"):
                pin(store, entry.key)
    assert _snapshot(outside) == before  # zero writes outside the store
    # A refused commit is one warning (a persistent fault: once per store and process; the
    # planted staging name, a transient clash, on each commit). Records the store replaces
    # atomically (the link itself, never its target) or skips are logged, not warned about.
    expected = {
        "objects": [CorruptEntryWarning, StoreWriteWarning],  # the blob is not behind the link
        "tmp": [StoreWriteWarning],
        "entries/<ns>": [StoreWriteWarning],
        "staging name": [StoreWriteWarning, StoreWriteWarning],
    }.get(planted, [])
    assert [w.category for w in record] == expected, [str(w.message) for w in record]
    assert all("link" in str(w.message) for w in record if planted in ("tmp", "entries/<ns>"))
    ran = {"objects": [20_000], "entries/<ns>": [20_000]}.get(planted, [])
    commits_refused = planted in ("objects", "tmp", "entries/<ns>", "staging name")
    assert log == [20_000, *ran, 30_000] + ([30_000] if commits_refused else [])
    assert os.path.islink(store.root / "objects") == (planted == "objects")


# ---------------------------------------------------------------------------------------- hit records
def test_200000_hits_keep_one_short_record(tmp_path):
    from checkpoint_magic.store.core import flush_usage

    store = Store(tmp_path / "s")
    store.write_entry("m.f", "k1", {"outputs": {}})
    for _ in range(200_000):
        store.record_use("m.f", "k1")
    flush_usage()
    record = tmp_path / "s" / layout.entry_state("m.f", "k1", layout.HITS)
    size = record.stat().st_size
    assert store.usage("m.f", "k1")[0] == 200_000 and size < 64
    for _ in range(1_000):
        store.record_use("m.f", "k1")
    assert store.usage("m.f", "k1")[0] == 201_000 and record.stat().st_size == size


HITTER = """
import sys, time
from checkpoint_magic import checkpoint

@checkpoint(store=sys.argv[1], name="m.hits")
def f(x):
    return x + 1

f(1)
for _ in range(50):
    f(1)
print("hit", flush=True)
time.sleep(600)  # alive until killed: only the usage timer can have written the counts
"""


def test_a_living_process_flushes_its_hits_on_a_timer_and_they_survive_a_kill(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "hitter.py"
    script.write_text(HITTER)
    store = Store(tmp_path / "s")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
        ),
    }
    p = subprocess.Popen(
        [sys.executable, str(script), str(store.root)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == "hit"
        [entry] = list_entries(store)
        deadline = time.monotonic() + 60
        while store.usage("m.hits", entry.key)[0] < 50 and time.monotonic() < deadline:
            time.sleep(0.05)  # the process sleeps; its timer thread writes the counts
        assert store.usage("m.hits", entry.key)[0] == 50
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
    hits, last = store.usage("m.hits", entry.key)
    assert hits == 50 and last is not None  # survived the kill
    assert (store.root / layout.entry_state("m.hits", entry.key, layout.HITS)).stat().st_size < 64
