"""Tests for checkpoint_magic.fingerprint.arrays: numpy arrays and scalars in fingerprints."""

import tracemalloc

import numpy as np
import pandas as pd

from checkpoint_magic.fingerprint import pandas as _hash_pandas
from checkpoint_magic.fingerprint.values import Fingerprinter, fingerprint
from tests.fingerprint.checks import distinct


# -- numpy ---------------------------------------------------------------------------------------
def test_arrays_of_every_ndim_are_distinct_and_stable():
    arrays = [np.array(5.0)] + [
        np.arange(2**k, dtype=np.float64).reshape((2,) * k) for k in range(1, 6)
    ]
    assert distinct(*arrays)
    for a in arrays:
        assert fingerprint(a) == fingerprint(a.copy())


def test_array_dtype_and_shape_count():
    raw = np.arange(12, dtype=np.int32)
    assert distinct(
        raw,
        raw.view(np.float32),
        raw.view(np.uint32),
        raw.reshape(3, 4),
        raw.reshape(4, 3),
        raw.reshape(2, 6),
        raw.reshape(12, 1),
        raw.astype(np.int64),
    )
    assert distinct(
        np.zeros(3, "M8[ns]"), np.zeros(3, "M8[s]"), np.zeros(3, "m8[ns]"), np.zeros(3, "i8")
    )
    assert distinct(
        np.zeros(2, [("a", "<i4"), ("b", "<f8")]),
        np.zeros(2, [("a", "<i4"), ("c", "<f8")]),
        np.zeros(2, [("a", "<f8"), ("b", "<i4")]),
    )
    assert distinct(
        np.array(["ab"]),
        np.array([b"ab"]),
        np.array(["ab"], dtype=object),
        np.array([1.0]),
        np.array([1.0], dtype=">f8"),
    )


def test_one_element_in_the_middle_of_a_big_nested_array():
    a = np.zeros(10_000_000)
    before = fingerprint({"data": [a]})
    a[5_000_000] = 1e-300
    assert fingerprint({"data": [a]}) != before


def test_memory_order_and_strided_views():
    c = np.arange(12.0).reshape(3, 4)
    f = np.asfortranarray(c)
    assert fingerprint(c) != fingerprint(f)  # deliberate: a miss, never a wrong hit
    assert fingerprint(f) == fingerprint(np.asfortranarray(c.copy()))
    assert fingerprint(np.ascontiguousarray(f)) == fingerprint(c)
    view = c[:, ::2]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    assert fingerprint(view) == fingerprint(view.copy())
    # rows bigger than a 1 MiB block: the streamer recurses into the first axis
    big = np.random.default_rng(0).random((3, 300_000, 2))[:, ::2, :]
    assert fingerprint(big) == fingerprint(np.ascontiguousarray(big))
    tall = np.arange(1_000_000, dtype=np.int16)[::3]
    assert fingerprint(tall) == fingerprint(tall.copy())
    big2 = big.copy()
    big2[2, -1, -1] += 1
    assert fingerprint(big2[:, ::1]) != fingerprint(big)


def test_contiguous_array_is_hashed_without_a_copy():
    a = np.random.default_rng(1).random(8_000_000)  # 64 MB
    tracemalloc.start()
    try:
        fingerprint(a)
        strided = a[::2]
        tracemalloc.reset_peak()
        fingerprint(strided)
        _, peak_strided = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fingerprint(a)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert peak_strided < 4_000_000  # one ~1 MiB block at a time, not a 32 MB copy


def test_object_arrays():
    assert distinct(
        np.array(["a", 1], dtype=object),
        np.array(["a", "1"], dtype=object),
        np.array(["a", None], dtype=object),
        np.array(["a", np.nan], dtype=object),
        np.array(["a", "nan"], dtype=object),
        np.array(["a", b"b"], dtype=object),
        np.array(["a", "b"], dtype=object),
    )
    two_d = np.array([["a", "b"], ["c", "d"]], dtype=object)
    assert distinct(two_d, two_d.T, two_d.reshape(4))
    assert fingerprint(two_d.T) == fingerprint(two_d.T.copy())


def test_big_object_string_arrays_use_the_arrow_path(monkeypatch):
    words = np.array([f"w{i}" for i in range(5000)], dtype=object)
    base = fingerprint(words)
    variants = []
    for replacement in (None, np.nan, "nan", b"w7", "w7 ", 7):
        v = words.copy()
        v[7] = replacement
        variants.append(v)
    assert distinct(words, *variants)
    assert fingerprint(variants[0]) == fingerprint(variants[0].copy())
    # the chunking of the Arrow conversion does not change the digest
    monkeypatch.setattr(_hash_pandas, "_CHUNK", 333)
    assert fingerprint(words) == base
    # the fast path takes str and missing values; bytes and numbers go element by element
    fp = Fingerprinter()
    assert all(
        _hash_pandas.object_strings_digest(fp, v) is not None
        for v in [words] + variants[:3] + variants[4:5]
    )
    assert all(
        _hash_pandas.object_strings_digest(fp, v) is None for v in variants[3:4] + variants[5:]
    )
    with_na = words.copy()
    with_na[[3, 9]] = [pd.NA, pd.NaT]
    assert distinct(with_na, variants[0], variants[1])


def test_numpy_scalars_masked_arrays_and_string_dtype():
    assert distinct(
        np.float64(1.5),
        1.5,
        np.float32(1.5),
        np.array(1.5),
        np.str_("a"),
        "a",
        np.datetime64("2020-01-01"),
        np.datetime64("2020-01-01", "ns"),
    )
    m1 = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    m2 = np.ma.masked_array([1, 2, 3], mask=[0, 0, 0])
    assert distinct(m1, m2, np.array([1, 2, 3]))
    sd = np.array(["a", "bc"], dtype=np.dtypes.StringDType())
    assert fingerprint(sd) == fingerprint(np.array(["a", "bc"], dtype=np.dtypes.StringDType()))
    assert fingerprint(sd) != fingerprint(np.array(["a", "bd"], dtype=np.dtypes.StringDType()))
