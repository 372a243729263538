"""URL stores through fsspec: the backend on ``memory://`` (fast), then real scenarios on an S3 server (moto)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("fsspec")

from checkpoint_magic import checkpoint  # noqa: E402
from checkpoint_magic.exceptions import (  # noqa: E402
    CorruptEntryWarning,
    StoreWriteWarning,
    UncachedWarning,
)
from checkpoint_magic.store import layout  # noqa: E402
from checkpoint_magic.store.backends.cache import BlobCache  # noqa: E402
from checkpoint_magic.store.backends.streams import ViewsReader  # noqa: E402
from checkpoint_magic.store.backends.url import FsspecBackend, StoreUnreachableError  # noqa: E402
from checkpoint_magic.store.core import Store, get_store  # noqa: E402
from checkpoint_magic.store.walk import entry_files  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# Counters live at module level: a closure over a list the function appends to would be a
# closure value that changes on every call, and closure values are part of the key.
RUNS: list[int] = []


@pytest.fixture(autouse=True)
def _reset_runs() -> None:
    RUNS.clear()


@pytest.fixture
def mem_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh ``memory://`` store (and a private read cache)."""
    monkeypatch.setenv("CHECKPOINT_MAGIC_CACHE", str(tmp_path / "cache"))
    return f"memory://tests-{uuid.uuid4().hex[:12]}/store"


# ------------------------------------------------------------------------------ the backend


def test_backend_primitives_on_memory(mem_url: str) -> None:
    b = FsspecBackend(mem_url)
    assert not b.exists() and b.stat("FORMAT") is None
    assert b.write("state/m.f/notes", b"one")
    assert b.read_bytes("state/m.f/notes") == b"one"
    assert [n for n, _ in b.list_files("state/m.f")] == ["notes"]
    assert b.list_folders("state") == ["m.f"] and b.list_files("nothing/here") == []
    assert b.create("leases/a", b"1") and not b.create("leases/a", b"2")
    assert b.read_bytes("leases/a") == b"1"
    assert b.touch("leases/a") and not b.touch("leases/gone")
    assert b.move("leases/a", "leases/b") and not b.move("leases/a", "leases/c")
    assert b.delete("leases/b") and not b.delete("leases/b")
    with pytest.raises(FileNotFoundError):
        b.open_read("entries/m.f/none")
    with pytest.raises(ValueError):
        b.path("../outside")


@pytest.mark.parametrize("where", ["memory", "s3"])
def test_read_many_and_write_many_batch_in_order(
    where: str, mem_url: str, request: pytest.FixtureRequest
) -> None:
    b = FsspecBackend(mem_url if where == "memory" else request.getfixturevalue("s3_store"))
    names = [f"state/m.f/{i:02x}/r{i}.hits" for i in range(5)]
    for i, name in enumerate(names):
        b.write(name, b"x" * (i + 1))
    b.write("state/m.f/big", b"y" * 1000)
    asked = [names[3], "state/m.f/gone", names[0], "state/m.f/big", *names[1:3], names[4]]
    assert b.read_many(asked, limit=8) == [
        b"xxxx",
        None,
        b"x",
        b"y" * 9,
        b"xx",
        b"xxx",
        b"xxxxx",  # at most limit + 1 bytes
    ]
    assert b.read_many([], limit=8) == []
    assert not b.tracks_folders  # the entry index lists it a namespace at a time
    b.write_many({names[0]: b"new", "state/m.f/00/fresh.hits": b"made"})
    assert b.read_many([names[0], "state/m.f/00/fresh.hits"], limit=8) == [b"new", b"made"]
    b.write_many({})


def test_a_hit_reads_a_url_manifest_in_one_request_and_sees_it_replaced(
    mem_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(mem_url)
    store.write_entry("m.f", "k", {"namespace": "m.f", "outputs": {"return": store.put_value(1)}})
    heads: list[str] = []
    real = FsspecBackend._info
    monkeypatch.setattr(
        FsspecBackend, "_info", lambda self, path: heads.append(path) or real(self, path)
    )
    for expected in (1, 1, 2):
        if expected == 2:  # another process replaces the entry
            other = Store(mem_url)
            other.write_entry(
                "m.f", "k", {"namespace": "m.f", "outputs": {"return": other.put_value(2)}}
            )
        heads.clear()
        manifest = store.read_entry("m.f", "k", hot_only=True)
        assert heads == []  # no stat before the read: one GET per lookup
        assert manifest is not None
        assert store.get_value(manifest["outputs"]["return"]) == expected
    assert store.read_entry("m.f", "gone", hot_only=True) is None


def test_a_miss_of_a_url_store_asks_whether_its_name_has_entries_without_listing(
    mem_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(mem_url)
    assert not store.has_entries("m.f")
    for key in ("0a" + "1" * 30, "ff" + "2" * 30):
        store.write_entry("m.f", key, {"namespace": "m.f", "outputs": {}})
    assert store.has_entries("m.f")  # listed: a file seen is remembered
    listings: list[str] = []
    for method in ("list_files", "list_folders"):
        real = getattr(FsspecBackend, method)
        monkeypatch.setattr(
            FsspecBackend,
            method,
            lambda self, folder, _real=real: listings.append(folder) or _real(self, folder),
        )
    assert store.has_entries("m.f") and listings == []  # the file seen is still there
    store.delete_entry("m.f", "0a" + "1" * 30)
    assert store.has_entries("m.f") and listings  # gone: listed again, the other one found
    store.delete_entry("m.f", "ff" + "2" * 30)
    assert not store.has_entries("m.f")


def test_an_empty_manifest_object_is_a_damaged_entry_not_an_unreadable_store(
    s3_store: str,
) -> None:
    @checkpoint(store=s3_store, name="m.empty")
    def f(x: int) -> int:
        RUNS.append(x)
        return x + 1

    assert f(1) == 2
    store = Store(s3_store)
    [(key, _)] = entry_files(store.backend, "m.empty", sharded=store.sharded)
    store.backend.write(layout.entry("m.empty", key), b"")  # a ranged GET of it fails (416)
    assert store.backend.read_small(layout.entry("m.empty", key), 100)[0] == b""
    with pytest.warns(CorruptEntryWarning, match="damaged"):
        assert f(1) == 2  # a miss: recomputed and stored again
    assert f(1) == 2 and RUNS == [1, 1]


def test_an_empty_manifest_on_s3_is_damaged_not_a_store_failure(s3_store: str) -> None:
    # S3 refuses a ranged GET of an empty object (416 InvalidRange): a hit's one-request read
    # must still tell a damaged manifest (removed, then recomputed), not fail like an outage.
    from checkpoint_magic.store.core import CorruptManifestError

    store = Store(s3_store)
    store.write_entry("m.f", "k", {"namespace": "m.f", "outputs": {}})
    name = layout.entry("m.f", "k", sharded=store.sharded)
    store.backend.write(name, b"")
    with pytest.raises(CorruptManifestError):
        store.read_entry("m.f", "k", hot_only=True)
    assert store.backend.stat(name) is None  # removed: the next call recomputes
    store.backend.write(layout.entry_state("m.f", "k", layout.HITS), b"")
    assert store.usage("m.f", "k") == (0, pytest.approx(time.time(), abs=300))
    assert store.backend.read_bytes(layout.entry_state("m.f", "k", layout.HITS), 8) == b""
    assert store.backend.read_many([name, layout.entry_state("m.f", "k", layout.HITS)], 8) == [
        None,
        b"",
    ]


def test_an_object_larger_than_any_manifest_is_never_read_whole(
    mem_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An object planted under entries/ (a data file copied there by mistake): listing the
    # store reads at most its first MANIFEST_MAX_BYTES + 1 bytes, not gigabytes into memory.
    from checkpoint_magic.store.manifest import MANIFEST_MAX_BYTES
    from checkpoint_magic.tools.inventory import list_entries

    store = Store(mem_url)
    store.write_entry("m.f", "k", {"namespace": "m.f", "outputs": {}})
    big = layout.entry("m.f", "b" * 32, sharded=store.sharded)
    store.backend.write(big, b"x" * (MANIFEST_MAX_BYTES * 3))
    fs = store.backend.fs
    largest: list[int] = []
    for method in ("cat_file", "cat"):
        real = getattr(fs, method)

        def spy(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            got = _real(*args, **kwargs)
            values = got.values() if isinstance(got, dict) else [got]
            largest.extend(len(v) for v in values if isinstance(v, bytes))
            return got

        monkeypatch.setattr(fs, method, spy)
    assert [e.key for e in list_entries(store)] == ["k"]
    assert max(largest) <= MANIFEST_MAX_BYTES + 1


def test_views_reader_streams_buffers_back_to_back() -> None:
    parts = [memoryview(b"abc"), memoryview(b""), memoryview(b"defgh")]
    reader = ViewsReader(parts)
    assert len(reader) == 8 and reader.read() == b"abcdefgh"
    reader.seek(2)
    assert reader.read(4) == b"cdef"
    reader.seek(-1, io.SEEK_END)
    assert reader.read() == b"h"


def test_decorator_hits_on_a_memory_store_and_verifies_blobs(mem_url: str) -> None:

    @checkpoint(store=mem_url)
    def big(n: int) -> np.ndarray:
        RUNS.append(n)
        return np.arange(n, dtype=np.float64)

    first = big(100_000)
    again = big(100_000)
    assert RUNS == [100_000] and np.array_equal(first, again)
    # Damage the blob in the store and drop the local copy: a miss with a warning, never a wrong value.
    store = get_store(mem_url)
    backend = store.backend
    (ab,) = backend.list_folders(layout.OBJECTS)
    ((digest, _),) = backend.list_files(f"{layout.OBJECTS}/{ab}")
    name = layout.blob(digest)
    data = bytearray(backend.read_bytes(name))
    data[-1] ^= 0xFF
    backend.fs.pipe_file(backend.path(name), bytes(data))
    backend.clear_cache()
    with pytest.warns(CorruptEntryWarning):
        third = big(100_000)
    assert RUNS == [100_000] * 2 and np.array_equal(third, first)


def test_the_read_cache_serves_hits_and_never_outlives_the_blob(mem_url: str) -> None:
    @checkpoint(store=mem_url)
    def big(n: int) -> np.ndarray:
        return np.ones(n)

    big(50_000)
    backend = get_store(mem_url).backend
    assert backend.cache is not None
    with mock.patch.object(backend.fs, "open", wraps=backend.fs.open) as download:
        big(50_000)
        big(50_000)
    assert (
        download.call_count == 1
    )  # the first hit reads the store (keeping a copy), the second the copy
    cached = list(backend.cache.folder.iterdir())
    assert len(cached) == 1
    (ab,) = backend.list_folders(layout.OBJECTS)
    ((digest, _),) = backend.list_files(f"{layout.OBJECTS}/{ab}")
    backend.fs.rm_file(backend.path(layout.blob(digest)))  # collected by someone else
    with pytest.warns(CorruptEntryWarning):
        big(50_000)  # a miss, recomputed: the local copy is not served for a blob that is gone


def _writer(data: bytes) -> Any:
    def fetch(path: str) -> None:  # no digest returned: the cache hashes the file itself
        Path(path).write_bytes(data)

    return fetch


def test_blob_cache_is_bounded_and_trims_least_recently_used(tmp_path: Path) -> None:
    import xxhash

    cache = BlobCache(tmp_path, max_bytes=10_000, location="memory://x")
    blobs = [bytes([i]) * 3000 for i in range(5)]
    for i, data in enumerate(blobs):
        digest = xxhash.xxh3_128_hexdigest(data)
        cache.fill(digest, len(data), _writer(data))
        os.utime(cache.path(digest), (i, i))  # deterministic ages
    assert cache.total() <= 10_000
    kept = {p.name.split(".")[0] for p in cache.folder.iterdir()}
    assert xxhash.xxh3_128_hexdigest(blobs[-1]) in kept
    assert xxhash.xxh3_128_hexdigest(blobs[0]) not in kept
    # a download that does not match its name is not cached
    wrong = xxhash.xxh3_128_hexdigest(b"other")
    assert cache.fill(wrong, 5, _writer(b"wrong")) is None
    assert not cache.accepts(6000)


def test_an_unreachable_store_fails_fast_after_the_first_failure(mem_url: str) -> None:
    b = FsspecBackend(mem_url)

    class EndpointConnectionError(Exception):
        pass

    with mock.patch.object(b.fs, "info", side_effect=EndpointConnectionError("down")) as info:
        with pytest.raises(StoreUnreachableError):
            b.stat("FORMAT")
        with pytest.raises(StoreUnreachableError):
            b.stat("FORMAT")
    assert info.call_count == 1  # the second call did not wait for the network again
    assert isinstance(StoreUnreachableError("x"), OSError)


def test_an_unreachable_store_returns_the_value_with_one_warning(mem_url: str) -> None:

    @checkpoint(store=mem_url)
    def f(x: int) -> int:
        RUNS.append(x)
        return x + 1

    backend = get_store(mem_url).backend
    backend._went_offline(ConnectionError("network down"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert f(1) == 2
    ours = [w for w in caught if issubclass(w.category, (UncachedWarning, StoreWriteWarning))]
    assert len(ours) == 1 and RUNS == [1]


def test_a_hit_whose_blob_cannot_be_read_is_a_miss_with_one_warning(mem_url: str) -> None:
    @checkpoint(store=mem_url)
    def f(n: int) -> np.ndarray:
        RUNS.append(n)
        return np.ones(n)

    f(100_000)
    backend = get_store(mem_url).backend
    backend.clear_cache()
    real_open = backend.open_read

    def flaky(name: str) -> Any:
        if name.startswith(layout.OBJECTS + "/"):
            raise StoreUnreachableError("connection reset while reading")
        return real_open(name)

    with (
        mock.patch.object(backend, "open_read", side_effect=flaky),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        assert f(100_000).sum() == 100_000
    assert [w.category for w in caught] == [CorruptEntryWarning] and RUNS == [100_000] * 2


def test_memory_location_and_store_objects_take_urls(mem_url: str) -> None:
    from checkpoint_magic import Memory
    from checkpoint_magic.store.core import Store

    memory = Memory(location=mem_url)
    assert repr(memory) == f"Memory(location={mem_url!r})"
    cached = memory.cache(np.sqrt)
    assert np.array_equal(cached(np.arange(4.0)), np.sqrt(np.arange(4.0)))
    assert cached.is_cached(np.arange(4.0))
    store = Store(mem_url, storage_options={"skip_instance_cache": True})
    assert store.backend.storage_options == {"skip_instance_cache": True}
    assert len(list(store.iter_entry_keys())) == 1  # the entry Memory.cache stored


def test_store_objects_pickle_without_their_client(mem_url: str) -> None:
    import pickle

    backend = FsspecBackend(mem_url, storage_options={"skip_instance_cache": True})
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.location == backend.location and clone.storage_options == backend.storage_options


# ------------------------------------------------------------------------------ S3 scenarios

SCRIPT = """
import sys
import numpy as np
from checkpoint_magic import checkpoint, InlineCheckpoint

STORE = sys.argv[1]

@checkpoint(store=STORE)
def features(n):
    print("computing features")
    return np.arange(n) * 2.0

x = features(1_000_000)
with InlineCheckpoint(watch=["x"], produce=["total"], store=STORE):
    print("computing total")
    total = float(x.sum())
print("total", total)
"""


def test_a_script_run_twice_against_s3_hits_the_second_time(script: Any, s3_store: str) -> None:
    first = script.run(SCRIPT.replace("sys.argv[1]", repr(s3_store)))
    second = script.run()
    assert "computing features" in first.stdout and "computing total" in first.stdout
    assert "computing" not in second.stdout
    assert first.stdout.splitlines()[-1] == second.stdout.splitlines()[-1] == "total 999999000000.0"
    assert not (script.workdir / ".Lutil-checkpoint").exists()  # nothing went to a local store


def _cli(store: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "checkpoint_magic", "--store", store, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_the_cli_works_on_an_s3_store_and_repairs_a_corrupt_object(
    script: Any, s3_store: str
) -> None:
    script.run(SCRIPT.replace("sys.argv[1]", repr(s3_store)))
    listing = json.loads(_cli(s3_store, "--json", "ls").stdout)
    items = {item["namespace"]: item for ns in listing["namespaces"] for item in ns["items"]}
    features = items["__main__.features"]
    assert features["size"] > 8_000_000
    assert features["key"] in _cli(s3_store, "show", features["key"][:12]).stdout
    assert re.search(r"objects\s+1\s+7\.6 MiB", _cli(s3_store, "du").stdout)  # one 8 MB blob
    _cli(s3_store, "pin", features["key"])
    assert json.loads(_cli(s3_store, "--json", "show", features["key"]).stdout)["pinned"] is True
    _cli(s3_store, "unpin", features["key"])
    assert _cli(s3_store, "verify").returncode == 0
    # Corrupt the large blob in place, on the server.
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    blobs = fs.find(s3_store[len("s3://") :] + "/objects")
    big = max(blobs, key=lambda p: fs.info(p)["size"])
    data = bytearray(fs.cat_file(big))
    data[100] ^= 0xFF
    fs.pipe_file(big, bytes(data))
    broken = _cli(s3_store, "verify", check=False)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    _cli(s3_store, "verify", "--fix", check=False)
    assert _cli(s3_store, "verify").returncode == 0
    assert not fs.exists(big)
    # The script recomputes what was lost (no exception), and hits the rest.
    rerun = script.run()
    assert "computing features" in rerun.stdout and "computing total" not in rerun.stdout
    _cli(s3_store, "why", "__main__.features")
    gc = _cli(s3_store, "--json", "gc")
    assert gc.returncode == 0 and _cli(s3_store, "verify").returncode == 0


def test_signed_entries_refuse_a_swapped_manifest_object(
    tmp_path: Path, s3_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "team-secret")

    @checkpoint(store=s3_store, name="signed.f")
    def f(x: int) -> int:
        RUNS.append(x)
        return x * 10

    assert f(1) == 10 and f(2) == 20
    backend = get_store(s3_store).backend
    (k1, _), (k2, _) = entry_files(backend, layout.namespace_dir("signed.f"), sharded=True)
    n1, n2 = layout.entry("signed.f", k1), layout.entry("signed.f", k2)
    m1, m2 = backend.read_bytes(n1), backend.read_bytes(n2)
    # Someone with write access swaps the two entries' manifest objects: both validly signed.
    backend.write(n1, m2)
    backend.write(n2, m1)
    with pytest.warns(CorruptEntryWarning):
        assert f(1) == 10
    with pytest.warns(CorruptEntryWarning):
        assert f(2) == 20
    assert sorted(RUNS) == [1, 1, 2, 2]
    # ... or forges them with another key: refused before anything is unpickled.
    from checkpoint_magic.store.manifest import decode_manifest, encode_manifest

    for name in (n1, n2):
        manifest, _, _ = decode_manifest(backend.read_bytes(name))
        assert manifest is not None
        backend.write(name, encode_manifest(manifest, b"attacker"))
    with pytest.warns(CorruptEntryWarning, match="signature"):
        assert f(1) == 10 and f(2) == 20
    assert sorted(RUNS) == [1, 1, 1, 2, 2, 2]


NOTEBOOK_CELLS = [
    "%load_ext checkpoint_magic",
    "import numpy as np\ndata = np.arange(10)",
    "%%checkpoint --store {store} --watch data --produce doubled\n"
    "with open('runs.txt', 'a') as f:\n    f.write('ran\\n')\nprint('computing')\ndoubled = data * 2",
    "print(int(doubled.sum()))",
]


def test_checkpoint_magic_cell_on_s3_in_a_real_kernel(tmp_path: Path, s3_store: str) -> None:
    nbhelpers = pytest.importorskip("tests.nbhelpers")
    ksm = nbhelpers.write_kernelspec(tmp_path / "kernelspec")
    cells = [c.format(store=s3_store) for c in NOTEBOOK_CELLS]
    first = nbhelpers.execute(nbhelpers.notebook(cells), ksm, cwd=tmp_path)
    second = nbhelpers.execute(nbhelpers.notebook(cells), ksm, cwd=tmp_path)
    assert nbhelpers.stream_text(first.cells[2]) == "computing\n"
    assert nbhelpers.stream_text(second.cells[2]) == "computing\n"  # replayed
    assert any(
        n.startswith("[checkpoint] restored doubled") for n in nbhelpers.notes_of(second.cells[2])
    )
    assert nbhelpers.stream_text(second.cells[3]) == "90\n"
    assert (tmp_path / "runs.txt").read_text() == "ran\n"  # the cell ran once


STEPS = """
import sys
from checkpoint_magic.steps import StepCheckpoint

class Run(StepCheckpoint):
    def step_1(self, outputs):
        print("step 1 ran")
        return [1, 2, 3]

    def step_2(self, outputs):
        print("step 2 ran")
        return sum(outputs["step_1"])

print(Run(name="demo", checkpoint_folder=sys.argv[1]).run())
"""


def test_steps_on_s3_run_once(script: Any, s3_store: str) -> None:
    first = script.run(STEPS.replace("sys.argv[1]", repr(s3_store)))
    second = script.run()
    assert "step 1 ran" in first.stdout and first.stdout.strip().endswith("6")
    assert "ran" not in second.stdout and second.stdout.strip().endswith("6")


OUTAGE = """
import os, signal, sys, time
from checkpoint_magic import checkpoint

@checkpoint(store=sys.argv[1])
def slow(x):
    os.kill(int(sys.argv[2]), signal.SIGTERM)   # the server goes away mid-call
    time.sleep(1.0)
    return x + 1

print("result", slow(41))
"""


def test_the_server_stopped_mid_call_returns_the_value_with_one_warning(
    script: Any, tmp_path: Path
) -> None:
    pytest.importorskip("moto.server")
    from tests.conftest import _free_port

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        # fail fast: one attempt, short timeouts (the defaults retry for ~10 s per request)
        "CHECKPOINT_MAGIC_STORAGE_OPTIONS": json.dumps(
            {"retries": 1, "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1}}
        ),
        "CHECKPOINT_MAGIC_CACHE": str(tmp_path / "cache"),
    }
    try:
        import s3fs

        deadline = time.monotonic() + 30
        while True:
            try:
                with mock.patch.dict(os.environ, env):
                    s3fs.S3FileSystem(skip_instance_cache=True).mkdir("outage")
                break
            except Exception:  # not up yet
                assert time.monotonic() < deadline
                time.sleep(0.1)
        proc = script.run(
            OUTAGE.replace("sys.argv[1]", repr("s3://outage/store")).replace(
                "sys.argv[2]", repr(str(server.pid))
            ),
            env=env,
        )
    finally:
        server.kill()
        server.wait()
    assert proc.stdout.strip() == "result 42"
    assert proc.stderr.count("Warning:") == 1, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_url_store_never_writes_local_folders(mem_url: str, tmp_path: Path, monkeypatch) -> None:
    """Every record of a URL store (here: what a run taught about its inputs) goes through the
    backend: nothing named after the URL appears in the working directory."""
    monkeypatch.chdir(tmp_path)
    STATE_COUNTER.clear()

    @checkpoint(store=mem_url)
    def write_and_count(path: str) -> int:
        STATE_COUNTER.append(1)  # a global it changes: learned as state, not an input
        Path(path).write_text("out")  # a file it writes: learned as an output
        return len(STATE_COUNTER)

    write_and_count(str(tmp_path / "out.txt"))
    write_and_count(str(tmp_path / "out.txt"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


STATE_COUNTER: list[int] = []


def test_a_large_signed_blob_of_a_url_store_is_verified_from_a_stream(
    mem_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    monkeypatch.setenv("CHECKPOINT_MAGIC_CACHE_SIZE", "0")  # no local copy: read the stream
    value = np.random.default_rng(3).random(4 << 20)  # 32 MiB: the large-read path
    record = Store(mem_url).put_value(value)
    assert "blake3-chunks" in record["blobs"][-1]
    np.testing.assert_array_equal(Store(mem_url).get_value(record), value)
