"""The cryptographic digests of signed stores: ``blake3-chunks`` and the parallel read."""

from __future__ import annotations

import blake3
import numpy as np
import pytest

from checkpoint_magic.store import blobstore, digests
from checkpoint_magic.store.blobs import CorruptBlobError, chunked_read_digest
from checkpoint_magic.store.core import Store
from checkpoint_magic.store.digests import CHUNK_BYTES, ChunkedBlake3, chunk_digest, combine


def _digest(data: bytes, step: int) -> str:
    hasher = ChunkedBlake3()
    for i in range(0, len(data), step):
        hasher.update(data[i : i + step])
    return hasher.hexdigest()


@pytest.mark.parametrize("size", [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, 2 * CHUNK_BYTES + 7])
def test_the_chunked_digest_is_one_function_of_the_bytes(size):
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    by_chunks = combine(
        [chunk_digest(data[i : i + CHUNK_BYTES]) for i in range(0, size, CHUNK_BYTES)], size
    )
    assert _digest(data, 1 << 20) == _digest(data, 12_345) == by_chunks
    assert by_chunks != blake3.blake3(data).hexdigest()  # its own algorithm name, own digests


def test_any_changed_byte_or_length_changes_the_digest():
    data = bytearray(np.random.default_rng(0).integers(0, 256, 2 * CHUNK_BYTES + 5, np.uint8))
    reference = _digest(bytes(data), 1 << 20)
    for where in (0, CHUNK_BYTES - 1, CHUNK_BYTES, len(data) - 1):
        data[where] ^= 1
        assert _digest(bytes(data), 1 << 20) != reference
        data[where] ^= 1
    assert _digest(bytes(data) + b"\0", 1 << 20) != reference
    assert _digest(bytes(data[:-1]), 1 << 20) != reference


def test_the_parallel_read_fills_the_buffer_and_agrees_with_the_hasher(tmp_path):
    data = np.random.default_rng(1).integers(0, 256, 3 * CHUNK_BYTES + 11, dtype=np.uint8)
    path = tmp_path / "blob"
    path.write_bytes(data.tobytes())
    out = np.empty_like(data)
    with open(path, "rb", buffering=0) as f:
        digest = chunked_read_digest(f, [memoryview(out)], workers=3)
    np.testing.assert_array_equal(out, data)
    assert digest == _digest(data.tobytes(), 1 << 20)
    path.write_bytes(data.tobytes()[:-1])  # truncated behind the caller's size check
    with open(path, "rb", buffering=0) as f, pytest.raises(CorruptBlobError, match="shorter"):
        chunked_read_digest(f, [memoryview(out)])


@pytest.mark.parametrize("algorithm", ["blake3-chunks", "blake3"])
def test_signed_large_blobs_are_verified_in_parallel_and_old_blake3_ones_still_read(
    tmp_path, monkeypatch, algorithm
):
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    # "blake3": a blob written before blake3-chunks existed must still be read and checked.
    monkeypatch.setattr(
        blobstore, "new_strong_hasher", lambda: (algorithm, digests.strong_hasher(algorithm))
    )
    store = Store(tmp_path / "s")
    value = np.random.default_rng(2).random(5 << 20)  # 40 MiB: the large-read path
    record = store.put_value(value)
    ref = record["blobs"][-1]
    assert algorithm in ref
    np.testing.assert_array_equal(Store(tmp_path / "s").get_value(record), value)
    path = store.blob_path(ref["digest"])
    with open(path, "r+b") as f:
        f.seek(ref["size"] // 2)
        byte = f.read(1)
        f.seek(ref["size"] // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(CorruptBlobError, match="does not match"):
        Store(tmp_path / "s").get_value(record)


@pytest.mark.parametrize("cut", [0, 1, 100, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 3])
def test_the_parallel_read_fills_several_buffers_back_to_back(tmp_path, cut):
    data = np.random.default_rng(cut).integers(0, 256, 2 * CHUNK_BYTES + 11, dtype=np.uint8)
    path = tmp_path / "blob"
    path.write_bytes(data.tobytes())
    head, tail = np.empty(cut, np.uint8), np.empty(data.size - cut, np.uint8)
    with open(path, "rb", buffering=0) as f:
        digest = chunked_read_digest(f, [memoryview(head), memoryview(tail)], workers=2)
    np.testing.assert_array_equal(np.concatenate([head, tail]), data)
    assert digest == _digest(data.tobytes(), 1 << 20)
