"""Integrity under faults: concurrent writers, SIGKILL mid-commit, damaged files, full or read-only disks,
newer formats, signed entries. ``tests/stress`` runs the same scenarios many more times."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import xxhash

from checkpoint_magic import checkpoint
from checkpoint_magic.core.checkpointer import Checkpointer
from checkpoint_magic.exceptions import (
    CheckpointWarning,
    CorruptEntryWarning,
    StoreFormatError,
    StoreWriteWarning,
)
from checkpoint_magic.store import layout
from checkpoint_magic.store.core import Store, decode_manifest, flush_usage, manifest_body
from checkpoint_magic.tools.maintenance import gc, list_entries, verify
from tests.store.helpers import write_flat

#: The pid of a staging file's writer that is certainly gone: above any kernel's pid_max (a
#: fixed small pid such as 4242 can belong to a live process, which keeps its files).
DEAD_PID = 2**22 + 1

REPO = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_MAGIC_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _caught(record, category) -> int:
    return sum(1 for w in record if issubclass(w.category, category))


def expected_value(i: int, n: int) -> np.ndarray:
    return np.full(n, i, dtype=np.int64) * 3 + np.arange(n)


# ---------------------------------------------------------------------------------------- concurrency
WORKER = """
import json, os, sys, time, warnings
import numpy as np
from checkpoint_magic import checkpoint
from checkpoint_magic.exceptions import CheckpointWarning

store, seed, rounds, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
tolerate = os.environ.get("TOLERATE_WARNINGS") == "1"  # set when gc runs concurrently
if not tolerate:
    warnings.simplefilter("error", CheckpointWarning)

@checkpoint(store=store, name="conc.value")
def value(i, n):
    time.sleep(0.002)
    return np.full(n, i, dtype=np.int64) * 3 + np.arange(n)

@checkpoint(store=store, name="conc.alias", ignore=["tag"])
def alias(i, n, tag):
    return value.__wrapped__(i, n)  # equal results under other keys: shared blobs

while not os.path.exists(go):
    time.sleep(0.002)
bad = errors = 0
for r in range(rounds):
    i = (seed + r) % 5
    n = (100, 20_000, 60_000)[(seed + r) % 3]  # inline, one blob, a bigger blob
    try:
        got = value(i, n) if r % 2 else alias(i, n, seed)
    except BaseException:  # an exception (or a warning turned into one) in a user's call
        import traceback
        traceback.print_exc()
        errors += 1
        continue
    if not np.array_equal(got, np.full(n, i, dtype=np.int64) * 3 + np.arange(n)):
        bad += 1
print(json.dumps({"bad": bad, "errors": errors}))
"""


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file and folder under ``folder``: content and modification time (to prove nothing was written)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def outside_of(tmp: Path) -> Path:
    """A folder beside the store, with a file in it: writes outside the store would show here."""
    outside = tmp / "outside"
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "victim.txt").write_text("keep me")
    return outside


def run_concurrent(
    tmp: Path,
    processes: int = 8,
    rounds: int = 6,
    extra_env: dict[str, str] | None = None,
    during: Callable[[Store], object] | None = None,
) -> Store:
    """``processes`` fresh interpreters compute overlapping entries at once; every value must be right.

    ``during(store)`` runs in this process again and again until the workers are done (gc,
    ``verify --fix``...). Zero wrong values, zero exceptions in the workers' calls (their
    warnings are errors unless TOLERATE_WARNINGS) and zero writes outside the store.
    """
    script = tmp / "worker.py"
    script.write_text(WORKER)
    store_dir, go = tmp / "store", tmp / "go"
    outside = outside_of(tmp)
    before = snapshot(outside)
    env = {**_env(), **(extra_env or {})}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(store_dir), str(seed), str(rounds), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(processes)
    ]
    time.sleep(0.3)
    go.touch()  # every process starts its loop together
    loops = 0
    if during is not None:
        deadline = time.monotonic() + 240
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            if (store_dir / "FORMAT").exists():
                during(Store(store_dir))
                loops += 1
            time.sleep(0.001)
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"bad": 0, "errors": 0}, err
    assert snapshot(outside) == before
    assert during is None or loops > 0
    return Store(store_dir)


def test_eight_processes_computing_the_same_and_different_entries(tmp_path):
    store = run_concurrent(tmp_path)
    report = verify(store, grace=0)
    assert report.problems == [] and report.garbage == []
    entries = list_entries(store)
    assert {e.namespace for e in entries} == {"conc.value", "conc.alias"}
    for e in entries:  # every entry loads, through the real lookup, as the right value
        hit = Checkpointer(e.kind, e.namespace, store).load(e.code, e.inputs)
        value = hit.outputs["return"]
        i = int(value[0]) // 3
        np.testing.assert_array_equal(value, expected_value(i, len(value)))
    assert list(store.tmp.iterdir()) == []


def gc_and_verify_fix(store: Store) -> None:
    """What an impatient user runs while commits are in flight: gc and verify --fix at grace 0."""
    gc(store, grace=0)
    report = verify(store, fix=True, grace=0)
    assert report.problems == [], report.problems  # leftovers perhaps, never damage


def test_gc_and_verify_fix_loops_at_grace_0_never_break_concurrent_commits(tmp_path):
    """Commit leases, not a grace period, keep gc from freeing a blob a commit is publishing:
    gc and `verify --fix` at grace 0 in a loop while 4 processes commit and read; their
    warnings are errors, so a blob freed under a commit would show as an exception there."""
    store = run_concurrent(tmp_path, processes=4, rounds=8, during=gc_and_verify_fix)
    report = verify(store, grace=0)
    assert report.problems == [] and report.garbage == []
    assert list((store.root / "leases").iterdir()) == []


# ---------------------------------------------------------------------------------------- SIGKILL
BIG = """
import sys, warnings
import numpy as np
from checkpoint_magic import checkpoint
from checkpoint_magic.exceptions import CheckpointWarning

@checkpoint(store=sys.argv[1], name="kill.big")
def big(seed):
    rng = np.random.default_rng(seed)
    value = {"seed": seed, "a": rng.random(2_000_000), "b": np.full(1_000_000, seed), "c": [seed] * 1000}
    print("computed", flush=True)
    return value

def check(value, seed):
    rng = np.random.default_rng(seed)
    assert value["seed"] == seed and value["c"] == [seed] * 1000
    assert np.array_equal(value["a"], rng.random(2_000_000))
    assert np.array_equal(value["b"], np.full(1_000_000, seed))

if sys.argv[2] == "check":  # a fresh process: every seed gives the right value, hit or recompute
    warnings.simplefilter("error", CheckpointWarning)
    for seed in map(int, sys.argv[3:]):
        check(big(seed), seed)
else:
    big(int(sys.argv[2]))
print("done", flush=True)
"""


def check_big(value: dict, seed: int) -> None:
    rng = np.random.default_rng(seed)
    assert value["seed"] == seed and value["c"] == [seed] * 1000
    np.testing.assert_array_equal(value["a"], rng.random(2_000_000))
    np.testing.assert_array_equal(value["b"], np.full(1_000_000, seed))


def kill_during_commits(tmp: Path, repeats: int, rng: random.Random) -> Store:
    """Kill a process at a random moment of a 24 MB commit, ``repeats`` times; check the store each time."""
    script = tmp / "big.py"
    script.write_text(BIG)
    store = Store(tmp / "store")
    seen: set[str] = set()
    for seed in range(repeats):
        p = subprocess.Popen(
            [sys.executable, str(script), str(store.root), str(seed)], env=_env(), stdout=subprocess.PIPE, text=True
        )
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "computed"
        time.sleep(rng.uniform(0.0, 0.1))  # the commit takes about this long
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
        for e in list_entries(store):  # whatever the killed commit left is whole and right, or absent
            if e.key not in seen:
                hit = Checkpointer(e.kind, e.namespace, store).load(e.code, e.inputs)
                assert hit is not None
                check_big(hit.outputs["return"], seed)
                seen.add(e.key)
    assert verify(store, grace=0).problems == []  # leftovers perhaps, never damage
    done = subprocess.run(
        [sys.executable, str(script), str(store.root), "check", *map(str, range(repeats))],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = verify(store, fix=True, grace=0)
    assert report.ok
    after = verify(store, grace=0)
    assert after.problems == [] and after.garbage == [] and list(store.tmp.iterdir()) == []
    assert len(list_entries(store)) == repeats
    return store


def test_sigkill_at_random_moments_of_a_large_commit(tmp_path):
    kill_during_commits(tmp_path, repeats=3, rng=random.Random(1))


MAINTAIN = """
import sys
from checkpoint_magic.tools.cli import main
print("ready", flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""

FILL_SIZES = (100, 20_000, 60_000)  # inline, one blob, a bigger blob


def fill(store: Store, count: int) -> None:
    """``count`` entries over two names (some sharing blobs), garbage blobs and a staging leftover."""
    for i in range(count):
        cp = Checkpointer("function", f"fill.v{i % 2}", store)
        fps = cp.fingerprint_inputs({"i": i % 10, "n": FILL_SIZES[i % 3], "copy": i // 10})
        if not cp.contains("code", fps):
            cp.save("code", fps, {"return": expected_value(i % 10, FILL_SIZES[i % 3])}, duration=1.0)
    store.put_value(np.arange(30_000) + count)  # a blob no manifest refers to
    (store.tmp / f"{DEAD_PID}-{'0123abcd' * 4}").write_bytes(b"half a blob")


def check_every_entry(store: Store) -> int:
    """Every entry left loads, through the real lookup, as the right value (no warning); return how many."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        entries = list_entries(store)
        for e in entries:
            hit = Checkpointer(e.kind, e.namespace, store).load(e.code, e.inputs)
            assert hit is not None, e.key
            value = hit.outputs["return"]  # the inputs are fingerprints: the value names its i and n
            np.testing.assert_array_equal(value, expected_value(int(value[0]) // 3, len(value)))
    return len(entries)


def kill_during_maintenance(tmp: Path, command: list[str], repeats: int, rng: random.Random) -> None:
    """SIGKILL `checkpoint-magic gc|clear` at random moments; the store must stay whole each time."""
    script = tmp / "maintain.py"
    script.write_text(MAINTAIN)
    store = Store(tmp / "store")
    outside = outside_of(tmp)
    before = snapshot(outside)
    for _ in range(repeats):
        fill(store, 30)
        p = subprocess.Popen(
            [sys.executable, str(script), "--store", str(store.root), *command],
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None and p.stdin is not None
        assert p.stdout.readline().strip() == "ready"
        p.stdin.write("go\n")
        p.stdin.flush()
        time.sleep(rng.uniform(0.0, 0.03))  # the command itself takes 10-20 ms here
        p.send_signal(signal.SIGKILL)
        p.wait(30)
        p.stdout.close()
        p.stdin.close()
        assert verify(store, grace=0).problems == []  # leftovers perhaps, never damage
        check_every_entry(store)
    assert verify(store, fix=True, grace=0).ok
    assert snapshot(outside) == before


@pytest.mark.parametrize(
    "command",
    [["gc", "--max-size", "300KB", "--grace", "0"], ["clear", "--yes", "--grace", "0"], ["clear", "fill.v1", "--force"]],
    ids=["gc", "clear-all", "clear-one"],
)
def test_sigkill_at_random_moments_of_gc_and_clear(tmp_path, command):
    kill_during_maintenance(tmp_path, command, repeats=3, rng=random.Random(5))


def test_crash_leftovers_are_cleaned_by_gc(tmp_path):
    store = Store(tmp_path / "s")
    record = store.put_value(np.arange(100_000))  # blobs of a commit whose manifest never came
    (store.tmp / f"{DEAD_PID}-{'0123abcd' * 4}").write_bytes(b"half a blob")  # Store._tmp_path's names
    report = gc(store, grace=0)
    assert (report.freed_blobs, report.removed_tmp) == (1, 1)
    assert not store.blob_path(record["blobs"][0]["digest"]).exists()
    assert list(store.tmp.iterdir()) == []


# ---------------------------------------------------------------------------------------- damaged files
@checkpoint(ignore=["log"])
def doubled(n, log):
    log.append(n)
    return np.arange(n) * 2.0


def _damage(path: Path, how: str) -> None:
    if how == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x40
        path.write_bytes(bytes(data))
    elif how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["flip", "truncate", "delete"])
@pytest.mark.parametrize("target", ["blob", "manifest"])
def test_a_damaged_entry_is_one_warning_then_a_correct_recompute(tmp_path, monkeypatch, target, how):
    store = Store(tmp_path / "s")
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(store.root))
    log: list[int] = []
    doubled(50_000, log)
    [entry] = list_entries(store)
    [digest] = entry.blobs
    _damage(entry.path if target == "manifest" else store.blob_path(digest), how)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        value = doubled(50_000, log)
    np.testing.assert_array_equal(value, np.arange(50_000) * 2.0)
    assert log == [50_000, 50_000]  # recomputed, never a wrong or partial value
    # A deleted manifest is simply no entry (nothing to warn about); any other damage warns once.
    assert _caught(record, CorruptEntryWarning) == (0 if (target, how) == ("manifest", "delete") else 1)
    assert _caught(record, Warning) == _caught(record, CorruptEntryWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(doubled(50_000, log), np.arange(50_000) * 2.0)
    assert log == [50_000, 50_000]  # the recomputed entry is stored again and hits
    assert verify(store).problems == []


# ---------------------------------------------------------------------------------------- full or read-only disk
@pytest.mark.parametrize("failing_write", [0, 1])  # the blob's write, or the manifest's
def test_disk_full_returns_the_result_with_one_warning_and_no_partial_entry(tmp_path, failing_write):
    from checkpoint_magic.store.backends import local as store_module

    store = Store(tmp_path / "s")
    real = store_module.write_full
    calls = []

    def write_full(fd, view):
        calls.append(1)
        if len(calls) - 1 == failing_write:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, view)

    @checkpoint(store=store)
    def compute(n):
        return np.arange(n) + 0.5

    compute(3)  # the store exists; its one entry is small (inline: one write, the manifest)
    with mock.patch.object(store_module, "write_full", write_full), pytest.warns(StoreWriteWarning, match="No space") as record:
        value = compute(40_000)
    np.testing.assert_array_equal(value, np.arange(40_000) + 0.5)
    assert _caught(record, StoreWriteWarning) == 1 and len(calls) == failing_write + 1
    assert [e.inputs for e in list_entries(store)] == [compute.checkpointer.fingerprint_inputs({"n": 3})]
    assert list(store.tmp.iterdir()) == []
    assert verify(store).problems == []


@contextlib.contextmanager
def _read_only(store: Store):
    """Make the store read-only: chmod where that stops writes; as root (where it does not),
    refuse every write under the store with EROFS, as a read-only mount would."""
    if os.geteuid() != 0:
        dirs = [p for p in [store.root, *store.root.rglob("*")] if p.is_dir()]
        for path in dirs:
            path.chmod(0o555)
        try:
            yield
        finally:
            for path in dirs:
                path.chmod(0o755)
        return
    real_open, real_mkdir = os.open, os.mkdir
    root = str(store.root)

    def under_store(path, kwargs):  # the store opens its files relative to its folders
        return str(path).startswith(root) or kwargs.get("dir_fd") is not None

    def guarded_open(path, flags, *args, **kwargs):
        if under_store(path, kwargs) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, flags, *args, **kwargs)

    def guarded_mkdir(path, *args, **kwargs):
        if under_store(path, kwargs):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    with mock.patch("os.open", guarded_open), mock.patch("os.mkdir", guarded_mkdir):
        yield


def test_read_only_store_still_serves_hits_and_returns_new_results_with_one_warning(tmp_path):
    store = Store(tmp_path / "s")

    @checkpoint(store=store, ignore=["log"])
    def compute(n, log):
        log.append(n)
        return np.arange(n) * 3

    log: list[int] = []
    compute(30_000, log)
    flush_usage()
    before = sorted(str(p) for p in store.root.rglob("*"))
    with _read_only(store):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            np.testing.assert_array_equal(compute(30_000, log), np.arange(30_000) * 3)  # a hit
        with pytest.warns(StoreWriteWarning) as record:
            np.testing.assert_array_equal(compute(20_000, log), np.arange(20_000) * 3)
        assert _caught(record, StoreWriteWarning) == 1
        flush_usage()  # the hit's usage record is attempted (and skipped) while read-only
    assert log == [30_000, 20_000]
    assert sorted(str(p) for p in store.root.rglob("*")) == before  # nothing written, nothing partial
    assert len(list_entries(store)) == 1 and verify(store).problems == []


# ---------------------------------------------------------------------------------------- newer format
def test_a_store_of_a_newer_format_is_a_clear_error_and_nothing_is_overwritten(tmp_path):
    root = tmp_path / "s"
    (root / "entries" / "ns").mkdir(parents=True)
    (root / "FORMAT").write_text('{"format": 99, "layout": "future"}')
    (root / "entries" / "ns" / "k").write_text("a manifest of the future")
    snapshot = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}

    @checkpoint(store=root)
    def compute(n):
        return n + 1

    with pytest.raises(StoreFormatError, match="format 99.*newer checkpoint_magic.*nothing was read or overwritten"):
        compute(1)
    for call in (verify, lambda s: verify(s, fix=True, grace=0), lambda s: gc(s, max_size=0, grace=0)):
        with pytest.raises(StoreFormatError):
            call(Store(root))
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == snapshot


# ---------------------------------------------------------------------------------------- signed entries
class Payload:
    """A value whose unpickling creates a marker file: proof that loading ran the author's code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


@checkpoint(ignore=["log"])
def signed_square(x, log):
    log.append(x)
    return np.arange(30_000) * x


def _tamper(store_dir: Path, marker: Path, secret: str | None, monkeypatch) -> None:
    """Replace the stored result of signed_square(3) by a malicious pickle, as an attacker could."""
    [entry] = list_entries(Store(store_dir))
    manifest = dict(entry.manifest)
    if secret is None:
        monkeypatch.delenv("CHECKPOINT_MAGIC_SECRET", raising=False)
    else:
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", secret)
    manifest["outputs"] = {"return": Store(store_dir).put_value(Payload(str(marker)))}
    Store(store_dir).write_entry(entry.namespace, entry.key, manifest)


@pytest.mark.parametrize("attacker_secret", [None, "another secret"])
def test_signed_store_refuses_unsigned_or_foreign_entries_without_unpickling_them(tmp_path, monkeypatch, attacker_secret):
    store_dir = tmp_path / "s"
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(store_dir))
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    marker = tmp_path / "pwned"
    log: list[int] = []
    signed_square(3, log)
    [entry] = list_entries(Store(store_dir))
    assert b" sig=" in entry.path.read_bytes().split(b"\n", 1)[0]  # manifests carry an HMAC
    _tamper(store_dir, marker, attacker_secret, monkeypatch)
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    assert [p.kind for p in verify(Store(store_dir)).problems] == ["signature"]
    with pytest.warns(CorruptEntryWarning, match="signature|not signed") as record:
        value = signed_square(3, log)
    assert _caught(record, CorruptEntryWarning) == 1
    assert not marker.exists()  # never unpickled
    np.testing.assert_array_equal(value, np.arange(30_000) * 3)
    assert log == [3, 3]
    assert verify(Store(store_dir)).problems == []  # the recomputed entry is signed again


def test_without_a_secret_the_same_tampered_entry_runs_the_attackers_code(tmp_path, monkeypatch):
    """The danger the signature guards against is real (this is why the README warns about it)."""
    store_dir = tmp_path / "s"
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(store_dir))
    marker = tmp_path / "pwned"
    log: list[int] = []
    signed_square(3, log)
    _tamper(store_dir, marker, None, monkeypatch)
    with pytest.warns(CorruptEntryWarning, match="came back"):  # too late: the payload ran
        signed_square(3, log)
    assert marker.exists() and log == [3, 3]


def test_a_signed_manifest_edited_in_place_is_refused(tmp_path, monkeypatch):
    import xxhash

    store_dir = tmp_path / "s"
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(store_dir))
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    log: list[int] = []
    signed_square(4, log)
    [entry] = list_entries(Store(store_dir))
    data = entry.path.read_bytes()
    head = data.split(b"\n", 1)[0]
    manifest, _, _ = decode_manifest(data)
    manifest["duration"] = 1e9  # any change, with a valid checksum but the old signature
    body = manifest_body(manifest)
    magic, _, sig = head.split(b" ")
    entry.path.write_bytes(b" ".join([magic, xxhash.xxh3_128_hexdigest(body).encode(), sig]) + b"\n" + body)
    with pytest.warns(CorruptEntryWarning, match="wrong signature"):
        np.testing.assert_array_equal(signed_square(4, log), np.arange(30_000) * 4)
    assert log == [4, 4]
    report = verify(Store(store_dir))
    assert report.problems == []


@pytest.mark.parametrize("written_with", ["our secret", None])  # then read with a typo / a new secret
def test_verify_fix_never_removes_entries_whose_signature_fails_drop_unsigned_does(tmp_path, monkeypatch, written_with):
    store_dir = tmp_path / "s"
    monkeypatch.setenv("CHECKPOINT_MAGIC_DIR", str(store_dir))
    if written_with:
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", written_with)
    signed_square(5, [])
    signed_square(6, [])
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secrte" if written_with else "our secret")
    report = verify(Store(store_dir), fix=True, grace=0)
    assert [(p.kind, p.fixed) for p in report.problems] == [("signature", False)] * 2
    assert not report.ok and report.unsigned == 2  # reported, never "repaired" by wiping the store
    assert len(list_entries(Store(store_dir))) == 2 and verify(Store(store_dir), grace=0).garbage == []
    if written_with:  # the typo fixed: every entry is good again
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", written_with)
        assert verify(Store(store_dir)).problems == []
        monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secrte")
    report = verify(Store(store_dir), drop_unsigned=True)  # removing them takes an explicit request
    assert [(p.kind, p.fixed) for p in report.problems] == [("signature", True)] * 2 and report.ok
    assert list_entries(Store(store_dir)) == []


# ---------------------------------------------------------------------------------------- hostile stores, bad inputs
def _hostile(store: Store, entry, other, outside: Path, how: str) -> None:
    import xxhash

    blob = store.blob_path(next(iter(entry.blobs)))
    if how == "huge manifest":
        with open(entry.path, "r+b") as f:
            f.truncate(17 << 20)
    elif how == "nested manifest":
        body = b"[" * 100_000 + b"]" * 100_000 + b"\n{}"
        entry.path.write_bytes(b"CMM1 " + xxhash.xxh3_128_hexdigest(body).encode() + b"\n" + body)
    elif how == "another key's manifest":
        entry.path.write_bytes(other.path.read_bytes())
    elif how == "foreign FORMAT":
        (store.root / "FORMAT").write_text("<xml>someone else's</xml>")
    elif how == "FORMAT links outside":
        (store.root / "FORMAT").unlink()
        (store.root / "FORMAT").symlink_to(outside / "victim.txt")
    elif how == "blob links outside":
        blob.unlink()
        blob.symlink_to(outside / "victim.txt")
    elif how == "manifest is a FIFO":
        entry.path.unlink()
        os.mkfifo(entry.path)
    elif how == "blob is a FIFO":
        blob.unlink()
        os.mkfifo(blob)
    elif how == "manifest is a folder":
        entry.path.unlink()
        (entry.path / "x").mkdir(parents=True)
    elif how == "entries link outside":
        shutil.rmtree(entry.path.parent)
        entry.path.parent.symlink_to(outside, target_is_directory=True)
    else:
        raise AssertionError(how)


HOSTILE = [
    "huge manifest",
    "nested manifest",
    "another key's manifest",
    "foreign FORMAT",
    "FORMAT links outside",
    "blob links outside",
    "manifest is a FIFO",
    "blob is a FIFO",
    "manifest is a folder",
    "entries link outside",
]


def hostile_round(tmp: Path, how: str, calls: int = 3) -> tuple[int, int, int]:
    """One hostile change to a store, then ``calls`` rounds of two calls: ``(wrong, exceptions, warnings)``."""
    store = Store(tmp / "s")
    outside = outside_of(tmp)
    log: list[int] = []

    @checkpoint(store=store, name="hostile.f", ignore=["log"])
    def f(n, log):
        log.append(n)
        return expected_value(n % 7, n)

    f(20_000, log), f(30_000, log)
    entry, other = sorted(list_entries(store), key=lambda e: e.size)  # f(20_000), f(30_000)
    before = snapshot(outside)
    _hostile(store, entry, other, outside, how)
    wrong = errors = warned = 0
    for _ in range(calls):
        for n in (20_000, 30_000):
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                try:
                    value = f(n, log)
                except Exception:  # counted, not raised: the report says how many
                    errors += 1
                    continue
            wrong += not np.array_equal(value, expected_value(n % 7, n))
            assert all(issubclass(w.category, CheckpointWarning) for w in record), [str(w.message) for w in record]
            warned += len(record)
    assert snapshot(outside) == before  # zero writes outside the store
    return wrong, errors, warned


@pytest.mark.parametrize("how", HOSTILE)
def test_a_hostile_store_never_gives_a_wrong_value_an_exception_or_a_write_outside(tmp_path, how):
    wrong, errors, warned = hostile_round(tmp_path, how)
    assert (wrong, errors) == (0, 0)
    assert warned <= 1  # damage is said once (then recomputed and stored again), a lasting fault once


@pytest.mark.parametrize(
    "name", ["../../outside/x", "/etc/passwd", "a" * 5000, "nul\0byte", ".hidden", "..", "ns with spaces/and\\slashes"]
)
def test_bad_names_stay_inside_the_store(tmp_path, name):
    store = Store(tmp_path / "s")
    outside = outside_of(tmp_path)
    before = snapshot(outside)

    @checkpoint(store=store, name=name)
    def f(x):
        return [x] * 10_000

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(1) == [1] * 10_000 and f(1) == [1] * 10_000
    [entry] = list_entries(store)
    assert entry.namespace == name and entry.path.resolve().is_relative_to(store.root.resolve())
    assert snapshot(outside) == before


# ---------------------------------------------------------------------------------------- verify reads everything itself
def _shared_blob_store(tmp_path: Path) -> tuple[Store, str]:
    """Three entries referring to one blob, a fourth to its own."""
    store = Store(tmp_path / "s")
    shared = store.put_value(bytes(50_000))
    for key in ("k1", "k2", "k3"):
        store.write_entry("m.f", key, {"outputs": {"return": shared}})
    store.write_entry("m.f", "k4", {"outputs": {"return": store.put_value(bytes(range(256)) * 200)}})
    return store, shared["blobs"][0]["digest"]


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_blob_shared_by_many_entries_is_hashed_once_and_breaks_each_of_them(tmp_path, monkeypatch, damage):
    from checkpoint_magic.tools import integrity

    store, digest = _shared_blob_store(tmp_path)
    blob = store.blob_path(digest)
    if damage == "corrupt":
        blob.write_bytes(b"x" * 50_000)  # the right size, the wrong bytes
    else:
        blob.unlink()
    hashed: list[str] = []
    original = integrity._hash_blob
    monkeypatch.setattr(integrity, "_hash_blob", lambda s, name: hashed.append(name) or original(s, name))
    report = verify(store)
    assert sorted(hashed) == sorted({f"objects/{d[:2]}/{d}" for e in list_entries(store) for d in e.blobs})
    assert [p.kind for p in report.problems] == [f"{damage} blob"] + ["broken entry"] * 3
    assert [p.path.rsplit("/", 1)[-1] for p in report.problems[1:]] == ["k1", "k2", "k3"]
    assert report.entries == 4 and report.blobs == (2 if damage == "corrupt" else 1)
    report = verify(store, fix=True, grace=0)
    assert report.ok and all(p.fixed for p in report.problems)
    assert [e.key for e in list_entries(store)] == ["k4"] and verify(store).ok


def test_verify_reads_every_manifest_even_when_the_index_says_it_is_unchanged(tmp_path):
    store, _ = _shared_blob_store(tmp_path)
    path = store.entry_path("m.f", "k2")
    past = time.time() - 100
    for p in [path, path.parent, *store.state.rglob("*")]:
        os.utime(p, (past, past), follow_symlinks=False)
    assert len(list_entries(store)) == 4  # the index now trusts every manifest and folder
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # a flipped bit, in place: same inode, size and times
    with open(path, "r+b") as f:
        f.write(data)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    os.utime(path.parent, (past, past), follow_symlinks=False)
    assert len(list_entries(store)) == 4  # the index cannot see it (its documented limit)...
    report = verify(store)  # ...verify does: it reads every manifest itself
    assert [(p.kind, p.path) for p in report.problems] == [("damaged manifest", layout.entry("m.f", "k2"))]
    assert "checksum" in report.problems[0].detail


def test_verify_keeps_no_manifest_it_checked_but_its_entries_can_still_read_one(tmp_path, monkeypatch):
    from checkpoint_magic.store import catalog
    from checkpoint_magic.tools import integrity

    store, _ = _shared_blob_store(tmp_path)
    scans: list = []
    original = integrity._read_manifests
    monkeypatch.setattr(integrity, "_read_manifests", lambda *a: scans.append(original(*a)) or scans[-1])
    assert verify(store).ok
    [scan] = scans
    assert [e.manifest_data for e in scan.entries] == [None] * 4
    assert [e.manifest for e in scan.entries] == [e.manifest for e in catalog.read_entries(store).entries]
    # The same entries as the catalog reads them (its stats from the listing, verify's from the read).
    listed = catalog.read_entries(store, usage=False).entries
    assert [e.to_dict() for e in scan.entries] == [e.to_dict() for e in listed]
    assert [(e.name, e.version, e.file_size) for e in scan.entries] == [(e.name, e.version, e.file_size) for e in listed]


def test_verify_reports_a_stray_flat_manifest_and_fix_moves_it_into_its_shard(tmp_path):
    store = Store(tmp_path / "s")
    store.write_entry("m.f", "ab" + "1" * 30, {"namespace": "m.f", "outputs": {}})
    key = "cd" + "2" * 30
    write_flat(store, "m.f", key, {"outputs": {}})  # an older version still running
    assert Store(store.root).read_entry("m.f", key) is None  # no hit sees it
    report = verify(store)
    assert report.ok and [(p.kind, p.path, p.fixed) for p in report.garbage] == [
        ("stray flat manifest", layout.entry("m.f", key, sharded=False), False)
    ]
    assert verify(store, fix=True).garbage[0].fixed
    assert Store(store.root).read_entry("m.f", key)["key"] == key
    assert verify(store).garbage == []


def test_verify_does_not_list_the_blobs_of_a_stray_flat_manifest_as_unreferenced(tmp_path):
    # --fix moves the stray manifest and keeps its blobs: a report without --fix must not
    # announce them as leftovers it would free.
    store = Store(tmp_path / "s")
    store.write_entry("m.f", "ab" + "1" * 30, {"namespace": "m.f", "outputs": {}})
    value = bytes(range(256)) * 1000
    record = store.put_value(value)
    key = "cd" + "2" * 30
    write_flat(store, "m.f", key, {"outputs": {"return": record}})  # an older version
    report = verify(store, grace=0)
    assert [(p.kind, p.path) for p in report.garbage] == [
        ("stray flat manifest", layout.entry("m.f", key, sharded=False))
    ]
    fixed = verify(store, fix=True, grace=0)
    assert [(p.kind, p.fixed) for p in fixed.garbage] == [("stray flat manifest", True)]
    reader = Store(store.root)
    assert reader.get_value(reader.read_entry("m.f", key)["outputs"]["return"]) == value


def test_the_verify_command_does_not_say_gc_removes_a_stray_flat_manifest(tmp_path, capsys):
    from checkpoint_magic.tools.cli import main

    store = Store(tmp_path / "s")
    store.write_entry("m.f", "ab" + "1" * 30, {"namespace": "m.f", "outputs": {}})
    write_flat(store, "m.f", "cd" + "2" * 30, {"outputs": {}})  # an older version
    assert main(["--store", str(store.root), "verify"]) == 0
    out = capsys.readouterr().out
    assert "stray flat manifest" in out and "`gc`" not in out
    assert "`checkpoint-magic verify --fix` moves the stray manifests into their shards" in out


# ---------------------------------------------------------------------------------------- verify of a store damaged every way
def _key(name: str, c: str) -> str:
    return (c * 2 + name.encode().hex()).ljust(32, "0")[:32]


DAMAGED_KEYS = {n: _key(n, c) for n, c in [("ok", "0"), ("flip", "1"), ("shared1", "2"), ("shared2", "3"), ("gone", "4"), ("folder", "5"), ("link", "6"), ("lone", "7"), ("fifo", "8")]}


def _damaged_store(tmp_path: Path, *, flat_file: bool) -> tuple[Store, dict[str, str]]:
    """Every kind of damage at once: flipped bytes in a manifest and in a shared blob, a missing
    blob, folders where files should be and files where folders should be, planted symlinks
    (to a manifest, a shard folder, a blob folder, a state folder, a state record), a FIFO;
    and leftovers: an unreferenced blob, a staging file, stale state, a stray flat manifest."""
    store = Store(tmp_path / "s")
    outside = outside_of(tmp_path)
    blobs = {
        "shared": store.put_value(bytes(range(256)) * 100),
        "lone": store.put_value(bytes(range(255, -1, -1)) * 100),
        "gone": store.put_value(b"g" * 30_000),
    }
    for name, key in DAMAGED_KEYS.items():
        ref = blobs.get(name.rstrip("12"), {"inline": name})
        store.write_entry("m.f", key, {"namespace": "m.f", "outputs": {"return": ref}})
        store.set_pinned("m.f", key)
    digests = {name: ref["blobs"][0]["digest"] for name, ref in blobs.items()}
    root = store.root

    def manifest(name: str) -> Path:
        return root / layout.entry("m.f", DAMAGED_KEYS[name])

    data = bytearray(manifest("flip").read_bytes())
    data[-3] ^= 1
    manifest("flip").write_bytes(bytes(data))
    blob = root / layout.blob(digests["shared"])
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    (root / layout.blob(digests["gone"])).unlink()
    manifest("folder").unlink()
    (manifest("folder") / "x").mkdir(parents=True)  # a folder where a manifest should be
    (root / "entries" / "other.g").write_bytes(b"a file where a namespace folder should be")
    (root / "objects" / "zz").write_bytes(b"a file where a blob folder should be")
    (root / "state" / "m.f" / "zy").write_bytes(b"a file where a state shard should be")
    if flat_file:
        (root / "entries" / "m.f" / "zz").write_bytes(b"a file where a shard folder should be")
    (outside / "manifest").write_bytes(manifest("link").read_bytes())
    manifest("link").unlink()
    manifest("link").symlink_to(outside / "manifest")
    (outside / ("ee" + "1" * 30)).write_bytes(manifest("ok").read_bytes())
    for folder in ("entries/m.f/ee", "objects/dd", "state/m.f/ee"):
        (root / folder).symlink_to(outside, target_is_directory=True)
    record = root / layout.entry_state("m.f", "9" * 32, layout.HITS)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.symlink_to(outside / "manifest")
    manifest("fifo").unlink()
    os.mkfifo(manifest("fifo"))
    store.put_blob([b"u" * 5000])  # unreferenced
    (root / "tmp" / f"{DEAD_PID}-{'0123abcd' * 4}").write_bytes(b"half a blob")
    (root / "tmp" / f"{DEAD_PID}-stage").write_bytes(b"not a name the store writes: kept")
    for suffix in (layout.HITS, layout.PIN):  # of an entry that no longer exists
        record = root / layout.entry_state("m.f", "a" * 32, suffix)
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_bytes(b"3")
    write_flat(store, "m.f", "ab" + "c" * 30, {"outputs": {"return": blobs["lone"]}})
    (root / "entries" / "m.f" / "00" / ".hidden").write_bytes(b"a dot file")
    (root / "entries" / "m.f" / "00" / ("ff" + "0" * 30)).write_bytes(b"in the wrong shard")
    return store, digests


def test_verify_reports_every_kind_of_damage_as_it_always_has(tmp_path):
    store, digests = _damaged_store(tmp_path, flat_file=True)
    outside = snapshot(tmp_path / "outside")
    report = verify(store)

    def entry(name: str) -> str:
        return layout.entry("m.f", DAMAGED_KEYS[name])

    assert (report.entries, report.blobs, report.ok, report.unsigned) == (6, 2, False, 0)
    assert [(p.kind, p.path, p.detail, p.fixed) for p in report.problems] == [
        ("damaged manifest", entry("flip"), "checksum mismatch (flipped or truncated bytes)", False),
        ("corrupt blob", layout.blob(digests["shared"]), "content does not match its hash", False),
        ("missing blob", layout.blob(digests["gone"]), "referred to by 1 entries", False),
        ("broken entry", entry("shared1"), f"m.f: refers to corrupt blob {digests['shared']}", False),
        ("broken entry", entry("shared2"), f"m.f: refers to corrupt blob {digests['shared']}", False),
        ("broken entry", entry("gone"), f"m.f: refers to missing blob {digests['gone']}", False),
    ]
    unreferenced = xxhash.xxh3_128_hexdigest(b"u" * 5000)
    assert [(p.kind, p.path, p.fixed) for p in report.garbage] == [
        ("unreferenced blob", layout.blob(unreferenced), False),
        ("staging leftover", f"tmp/{DEAD_PID}-{'0123abcd' * 4}", False),
        ("stray flat manifest", f"entries/m.f/ab{'c' * 30}", False),
        ("stale state", "state", False),
    ]
    # The pins of the three entries whose manifest is not a regular file, and both records of a
    # removed entry (the symlinked record and state folder are not listed at all).
    assert report.garbage[-1].detail == "5 usage or miss records of entries that no longer exist"
    assert snapshot(tmp_path / "outside") == outside


def test_verify_fix_removes_what_it_always_has_from_a_store_damaged_every_way(tmp_path):
    store, digests = _damaged_store(tmp_path, flat_file=True)
    outside = snapshot(tmp_path / "outside")
    report = verify(store, fix=True, grace=0)
    assert report.ok and all(p.fixed for p in report.problems + report.garbage)
    assert [p.kind for p in report.problems] == ["damaged manifest", "corrupt blob", "missing blob"] + ["broken entry"] * 3
    assert [(p.kind, p.detail) for p in report.garbage if p.kind == "stale state"] == [
        ("stale state", "6 usage or miss records of entries that no longer exist")
    ]
    assert verify(store).to_dict() == {"ok": True, "entries": 3, "blobs": 1, "unsigned": 0, "problems": [], "garbage": []}
    left = sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_symlink() or not p.is_dir())
    key = DAMAGED_KEYS
    assert left == [
        ".gitignore",
        "FORMAT",
        "entries/m.f/00/.hidden",  # never a name the store writes
        layout.entry("m.f", key["ok"]),
        "entries/m.f/00/ff" + "0" * 30,  # in the wrong shard: not an entry, kept
        layout.entry("m.f", key["link"]),  # a symlink, not listed
        layout.entry("m.f", key["lone"]),
        layout.entry("m.f", key["fifo"]),
        layout.entry("m.f", "ab" + "c" * 30),  # the stray flat manifest, moved into its shard
        "entries/m.f/ee",
        "entries/m.f/zz",  # a file where a shard folder should be: no manifest, kept
        "entries/other.g",
        layout.blob(digests["lone"]),
        "objects/dd",
        "objects/zz",
        layout.entry_state("m.f", key["ok"], layout.PIN),
        layout.entry_state("m.f", key["lone"], layout.PIN),
        layout.entry_state("m.f", "9" * 32, layout.HITS),  # a symlink, not listed
        "state/m.f/ee",
        "state/m.f/zy",
        f"tmp/{DEAD_PID}-stage",
    ]
    assert snapshot(tmp_path / "outside") == outside


def test_verify_of_a_local_store_lists_manifests_and_records_by_name_and_reads_each_once(tmp_path, monkeypatch):
    from checkpoint_magic.store.backends.local import LocalBackend

    store, _ = _shared_blob_store(tmp_path)
    store.set_pinned("m.f", "k1")
    listed: list[str] = []
    read: list[str] = []
    list_files, read_small = LocalBackend.list_files, LocalBackend.read_small
    monkeypatch.setattr(LocalBackend, "list_files", lambda self, folder: listed.append(folder) or list_files(self, folder))
    monkeypatch.setattr(LocalBackend, "read_small", lambda self, name, limit: read.append(name) or read_small(self, name, limit))
    assert verify(store).ok
    assert not [f for f in listed if f.startswith(("entries/", "state/"))]  # names only: no stat per file
    manifests = sorted(name for name in read if name.startswith("entries/"))
    assert manifests == sorted(layout.entry("m.f", k) for k in ("k1", "k2", "k3", "k4"))


def test_a_link_where_a_blob_should_be_is_reported_and_fix_removes_only_the_link(tmp_path):
    store = Store(tmp_path / "s")
    record = store.put_value(bytes(30_000))
    store.write_entry("m.f", "ab" + "1" * 30, {"namespace": "m.f", "outputs": {"return": record}})
    blob = store.root / layout.blob(record["blobs"][0]["digest"])
    target = tmp_path / "elsewhere"
    content = blob.read_bytes()
    target.write_bytes(content)
    blob.unlink()
    os.symlink(target, blob)
    report = verify(store)  # before: UnsafeStoreError out of verify
    assert [p.kind for p in report.problems] == ["unsafe blob", "broken entry"]
    assert not report.ok and os.path.islink(blob)
    fixed = verify(store, fix=True, grace=0)
    assert all(p.fixed for p in fixed.problems)
    assert not os.path.lexists(blob) and target.read_bytes() == content
    assert verify(store).ok


def test_a_file_named_like_a_shard_folder_is_left_alone_by_verify_fix_and_upgrade(tmp_path):
    from checkpoint_magic.store.upgrade import upgrade_store

    store = Store(tmp_path / "s")
    store.write_entry("m.f", "ab" + "1" * 30, {"namespace": "m.f", "outputs": {}})
    planted = store.root / "entries" / "m.f" / "zz"
    planted.write_bytes(b"not written by the store")
    assert verify(store).ok  # before: a "stray flat manifest" that fix could not move...
    assert verify(store, fix=True, grace=0).ok  # ...and fix raised UnsafeStoreError
    upgrade_store(store)
    assert planted.read_bytes() == b"not written by the store"
    assert [e.key for e in list_entries(store)] == ["ab" + "1" * 30]
