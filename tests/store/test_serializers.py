"""Codecs: every value round-trips exactly, arrays as .npy, big buffers out of band."""

from __future__ import annotations

import datetime
import pickle

import numpy as np
import pandas as pd
import pytest

from checkpoint_magic.store.codecs import serializers
from checkpoint_magic.store.codecs.serializers import (
    Codec,
    Encoded,
    codec_by_name,
    codec_for,
    register_codec,
    unregister_codec,
)
from checkpoint_magic.store.core import Store


def _roundtrip(store: Store, value):
    return store.get_value(store.put_value(value))


@pytest.mark.parametrize(
    "array",
    [
        np.array(3.5),
        np.arange(10),
        np.arange(24.0).reshape(2, 3, 4),
        np.arange(2 * 3 * 4 * 5 * 2).reshape(2, 3, 4, 5, 2).astype(np.int16),
        np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        np.arange(40)[::3],
        np.zeros((2, 0, 3)),
        np.arange(10).astype("datetime64[ms]"),
        np.arange(5).astype("timedelta64[s]"),
        np.zeros(4, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        np.array(["a", "bc"]),
        np.random.default_rng(0).random(300_000),  # large enough for a separate blob
    ],
    ids=lambda a: f"{a.dtype}-{a.shape}",
)
def test_arrays_roundtrip_exactly(store_dir, array):
    store = Store(store_dir)
    back = _roundtrip(store, array)
    assert codec_for(array).name == "npy"
    assert back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)
    if array.ndim > 1 and array.flags.f_contiguous and not array.flags.c_contiguous:
        assert back.flags.f_contiguous


def test_large_array_blob_is_a_real_npy_file(store_dir):
    store = Store(store_dir)
    array = np.random.default_rng(1).random((500, 300))
    record = store.put_value(array)
    path = store.blob_path(record["blobs"][0]["digest"])
    assert np.array_equal(np.load(path), array)
    assert np.array_equal(np.load(path, mmap_mode="r"), array)
    mapped = store.get_value(record, mmap_mode="r")
    assert isinstance(mapped, np.memmap) and np.array_equal(mapped, array)


def test_object_arrays_use_pickle(store_dir):
    array = np.array([1, "a", None], dtype=object)
    assert codec_for(array).name == "pickle"
    assert list(_roundtrip(Store(store_dir), array)) == [1, "a", None]


@pytest.mark.parametrize(
    "value",
    [
        None,
        1,
        1.5,
        "text",
        b"bytes",
        [1, (2, 3)],
        {"a": {1, 2}},
        datetime.datetime(2020, 1, 2),
        {"nested": np.arange(200_000.0), "other": np.ones(3)},
    ],
    ids=repr,
)
def test_python_values_roundtrip(store_dir, value):
    back = _roundtrip(Store(store_dir), value)
    if isinstance(value, dict) and "nested" in value:
        assert np.array_equal(back["nested"], value["nested"])
    else:
        assert back == value


def test_dataframe_roundtrip_with_strings_categories_and_tz(store_dir):
    n = 50_000
    df = pd.DataFrame(
        {
            "x": np.arange(n, dtype=float),
            "s": [f"row{i}" for i in range(n)],
            "o": pd.Series([f"o{i}" for i in range(n)], dtype=object),
            "c": pd.Categorical(["a", "b"] * (n // 2)),
            "t": pd.date_range("2020", periods=n, freq="s", tz="Europe/Paris"),
        }
    )
    record = Store(store_dir).put_value(df)
    assert record["meta"]["buffers"] >= 2  # numeric and string buffers stored out of band
    back = Store(store_dir).get_value(record)
    pd.testing.assert_frame_equal(back, df)
    assert back["o"].dtype == object


def test_lambda_falls_back_to_cloudpickle(store_dir):
    record = Store(store_dir).put_value(lambda x: x * 2)
    assert record["meta"]["pickler"] == "cloudpickle"
    assert Store(store_dir).get_value(record)(21) == 42


def test_pickle_payload_is_plain_pickle_compatible():
    enc = serializers.PickleCodec().encode({"a": 1})
    assert pickle.loads(b"".join(bytes(b) for b in enc.blobs[0])) == {"a": 1}


def test_registered_codec_takes_precedence_and_unknown_codec_is_keyerror(store_dir):
    class Reverse(Codec):
        name = "test-reverse"

        def can_encode(self, obj):
            return isinstance(obj, str) and obj.startswith("rev:")

        def encode(self, obj):
            return Encoded([[obj[::-1].encode()]])

        def decode(self, meta, source, *, mmap_mode=None):
            return source.read_bytes(0).decode()[::-1]

    codec = register_codec(Reverse())
    try:
        store = Store(store_dir)
        record = store.put_value("rev:hello")
        assert record["codec"] == "test-reverse"
        assert store.get_value(record) == "rev:hello"
    finally:
        unregister_codec(codec)
    with pytest.raises(KeyError, match="test-reverse"):
        codec_by_name("test-reverse")


def test_codec_without_name_is_rejected():
    with pytest.raises(ValueError, match="name"):
        register_codec(Codec())


def test_structured_dtype_with_offsets_and_padding_roundtrips_exactly(store_dir):
    dtype = np.dtype(
        {"names": ["a", "b"], "formats": ["<i4", "<f8"], "offsets": [0, 8], "itemsize": 24}
    )
    array = np.zeros(50_000, dtype=dtype)
    array["a"] = np.arange(50_000)
    back = _roundtrip(Store(store_dir), array)
    assert back.dtype == dtype and back.dtype.itemsize == 24
    assert np.array_equal(back, array)
