"""Tests for checkpoint_magic.fingerprint.values: the walk, its dispatch, and pandas and objects.

Builtins and containers are tested in ``test_stdtypes``, numpy arrays in ``test_arrays``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import fractions
import math
import os
import pathlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pytest
import xxhash

from checkpoint_magic.exceptions import FingerprintError
from checkpoint_magic.fingerprint import arrays as hash_arrays
from checkpoint_magic.fingerprint import pandas as _hash_pandas
from checkpoint_magic.fingerprint import stdtypes as hash_stdtypes
from checkpoint_magic.fingerprint import values as hashing
from checkpoint_magic.fingerprint.values import (
    HASH_SCHEME_VERSION,
    Fingerprinter,
    digest_bytes,
    fingerprint,
)
from tests.fingerprint.checks import distinct, warns_about

REPO = Path(__file__).resolve().parents[2]


# -- basics -------------------------------------------------------------------------------------
def test_format_and_version():
    fp = fingerprint([1, 2])
    assert len(fp) == 32 and fp == fp.lower() and int(fp, 16) >= 0
    assert HASH_SCHEME_VERSION == 2  # 2: ordered dicts, whole estimator state


def test_scheme_version_enters_every_digest(monkeypatch):
    before = [fingerprint(v) for v in (1, "a", np.arange(3), {"a": 1})]
    monkeypatch.setattr(hashing, "HASH_SCHEME_VERSION", HASH_SCHEME_VERSION + 1)
    after = [fingerprint(v) for v in (1, "a", np.arange(3), {"a": 1})]
    assert all(b != a for b, a in zip(before, after, strict=True))


def test_type_tags_keep_lookalikes_apart():
    assert distinct(
        1,
        1.0,
        True,
        "1",
        b"1",
        bytearray(b"1"),
        1 + 0j,
        np.int64(1),
        np.float64(1.0),
        np.int32(1),
        np.bool_(True),
        decimal.Decimal(1),
        fractions.Fraction(1),
        [1],
        (1,),
        {1},
        frozenset([1]),
        {1: None},
        None,
        0,
        False,
        "",
        b"",
        [],
        (),
        {},
        set(),
    )
    assert distinct([1, 2], (1, 2), [[1], 2], [1, [2]], ["ab"], ["a", "b"], [b"ab"], ("a", "b"))
    assert distinct(0.0, -0.0)
    assert fingerprint(float("nan")) == fingerprint(float("nan"))


def test_no_builtin_hash_id_or_repr_in_digest():
    class Loud:
        def __hash__(self):
            raise AssertionError("hash() used")

        def __repr__(self):
            raise AssertionError("repr() used")

        __str__ = __repr__

    a, b = Loud(), Loud()
    a.x, b.x = 1, 1
    assert fingerprint(a) == fingerprint(b)  # id() would differ; hash/repr would raise
    b.x = 2
    assert fingerprint(a) != fingerprint(b)


def test_int_str_bytes_edge_cases():
    assert distinct(2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**200, -(2**200), 2**200 + 1)
    assert fingerprint(10**100) == fingerprint(int("1" + "0" * 100))
    assert distinct("é", "e\u0301", "\ud800", "a\x00", "a")
    assert distinct(b"ab", memoryview(b"ab"), bytearray(b"ab"))
    assert fingerprint(memoryview(b"abcd")[::2]) == fingerprint(memoryview(b"ac"))


def test_stdlib_values():
    utc = datetime.timezone.utc
    plus1 = datetime.timezone(datetime.timedelta(hours=1))
    now = datetime.datetime(2024, 5, 1, 12, 0, 0, 5)
    assert distinct(
        now,
        now.replace(tzinfo=utc),
        now.replace(tzinfo=plus1),
        now.date(),
        now.time(),
        now.time().replace(tzinfo=utc),
        datetime.timedelta(1),
        datetime.timedelta(seconds=1),
    )
    assert fingerprint(datetime.datetime(2024, 5, 1, tzinfo=utc)) == fingerprint(
        datetime.datetime(2024, 5, 1, tzinfo=utc)
    )
    assert distinct(
        decimal.Decimal("1.5"),
        decimal.Decimal("1.50"),
        fractions.Fraction(1, 3),
        fractions.Fraction(2, 3),
    )
    u = uuid.UUID(int=5)
    assert fingerprint(u) == fingerprint(uuid.UUID(int=5)) != fingerprint(uuid.UUID(int=6))
    assert distinct(
        pathlib.Path("/a/b"), pathlib.Path("/a/c"), pathlib.PureWindowsPath("a/b"), "/a/b"
    )
    assert distinct(
        range(3), range(4), range(0, 3, 2), slice(1, 2), slice(1, 3), ..., NotImplemented, [0, 1, 2]
    )


class Color(enum.Enum):
    RED = 1
    BLUE = 2


class Shade(enum.IntEnum):
    RED = 1


@dataclasses.dataclass
class Config:
    lr: float
    layers: list


def test_enums_and_dataclasses():
    assert fingerprint(Color.RED) == fingerprint(Color(1))
    assert distinct(Color.RED, Color.BLUE, Shade.RED, 1)
    assert fingerprint(Config(0.1, [1, 2])) == fingerprint(Config(0.1, [1, 2]))
    assert distinct(Config(0.1, [1, 2]), Config(0.2, [1, 2]), Config(0.1, [1, 3]))


def test_builtin_subclasses_are_tagged_with_their_class():
    Point = collections.namedtuple("Point", "x y")

    class MyList(list):
        pass

    assert distinct(
        Point(1, 2), (1, 2), MyList([1]), [1], collections.Counter("ab"), {"a": 1, "b": 1}
    )
    assert fingerprint(collections.Counter("ab")) != fingerprint(collections.Counter("ba"))  # order


# -- pandas -------------------------------------------------------------------------------------
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"x": [1.0, 2.0, 3.0], "n": [1, 2, 3], "s": ["a", "b", "c"]}, index=[10, 20, 30]
    )


def test_dataframe_changes_are_seen():
    df = frame()
    base = fingerprint(df)
    assert fingerprint(df.copy(deep=True)) == base
    changed = []
    d = df.copy()
    d.iloc[1, 0] = 2.5
    changed.append(d)  # noqa: E702
    d = df.copy()
    d.iloc[2, 2] = "z"
    changed.append(d)  # noqa: E702
    changed.append(df.rename(columns={"x": "y"}))
    changed.append(df.astype({"n": np.int32}))
    changed.append(df.astype({"s": object}))
    changed.append(df.set_axis([10, 20, 31]))
    changed.append(df.reset_index(drop=True))
    changed.append(df[["n", "x", "s"]])
    assert all(fingerprint(c) != base for c in changed)
    assert distinct(*changed)


def test_pandas_indexes():
    assert fingerprint(pd.RangeIndex(5)) == fingerprint(pd.RangeIndex(0, 5))
    assert distinct(
        pd.RangeIndex(5), pd.Index(np.arange(5)), pd.RangeIndex(1, 6), pd.RangeIndex(5, name="i")
    )
    mi = pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["n", "m"])
    assert fingerprint(mi) == fingerprint(
        pd.MultiIndex.from_tuples([(1, "a"), (2, "b")], names=["n", "m"])
    )
    assert distinct(
        mi,
        mi.set_names(["n", "k"]),
        pd.MultiIndex.from_tuples([(1, "a"), (2, "c")], names=["n", "m"]),
        pd.MultiIndex.from_tuples([(2, "a"), (1, "b")], names=["n", "m"]),
    )


def test_pandas_extension_dtypes():
    s = pd.Series(["a", "b", None] * 3)
    assert distinct(s, s.astype(object), s.astype("string"), s.astype("category"))
    cat = pd.Categorical(["a", "b", "a"])
    assert distinct(
        cat,
        pd.Categorical(["a", "b", "a"], ordered=True),
        pd.Categorical(["a", "b", "b"]),
        pd.Categorical(["a", "b", "a"], categories=["a", "b", "c"]),
    )
    times = pd.Series(pd.date_range("2020-01-01", periods=3, tz="UTC"))
    assert distinct(times, times.dt.tz_convert("Europe/Paris"), times.dt.tz_localize(None))
    ints = pd.Series([1, 2, None], dtype="Int64")
    assert distinct(
        ints,
        pd.Series([1, 2, 3], dtype="Int64"),
        pd.Series([1.0, 2.0, np.nan]),
        pd.Series([1, 2, None], dtype="Float64"),
    )
    other = pd.Series([1, 2, 99], dtype="Int64")
    other[2] = pd.NA  # the value under the mask is arbitrary: it must not count
    assert fingerprint(other) == fingerprint(ints)
    arrow = pd.Series([1, None, 3], dtype="int64[pyarrow]")
    assert fingerprint(arrow) == fingerprint(pd.Series([1, None, 3], dtype="int64[pyarrow]"))
    assert distinct(
        arrow,
        pd.Series([1, 0, 3], dtype="int64[pyarrow]"),
        pd.Series([1, None, 4], dtype="int64[pyarrow]"),
    )
    assert distinct(
        pd.Series(pd.period_range("2020", periods=2, freq="M")),
        pd.Series(pd.period_range("2020", periods=2, freq="D")),
        pd.Series(pd.interval_range(0, 2)),
        pd.Series(pd.interval_range(0, 2, closed="left")),
    )


def test_arrow_string_columns_are_independent_of_chunking():
    one = pd.Series([f"s{i}" for i in range(100)] + [None], dtype="str")
    parts = pd.concat([one.iloc[:30], one.iloc[30:]], ignore_index=True)
    assert parts.array.__arrow_array__().num_chunks == 2
    assert fingerprint(one) == fingerprint(parts)
    changed = one.copy()
    changed[50] = "s50!"
    assert distinct(
        one,
        changed,
        one.astype(object),
        pd.Series([f"s{i}" for i in range(100)] + ["nan"], dtype="str"),
    )


def test_arrow_string_slices_hash_like_fresh_columns():
    full = pd.Series(["a", None, "bcd", "", "é", "f"] * 4, dtype="str")
    part = full.iloc[5:].reset_index(drop=True)
    assert part.array.__arrow_array__().chunks[0].offset > 0
    fresh = pd.Series(list(full.iloc[5:]), dtype="str")
    assert fingerprint(part) == fingerprint(fresh)


def test_object_string_columns():
    n = 3000
    base = pd.DataFrame({"s": pd.Series([f"v{i}" for i in range(n)], dtype=object)})
    variants = []
    for replacement in (None, np.nan, "nan", b"v5"):
        v = base.copy()
        v.iloc[5, 0] = replacement
        variants.append(v)
    assert distinct(base, *variants)


def test_series_name_and_index():
    s = pd.Series([1, 2], name="a")
    assert distinct(s, s.rename("b"), s.set_axis(["x", "y"]), s.to_frame(), s.values)


# -- scikit-learn --------------------------------------------------------------------------------
def test_estimators():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.random.default_rng(0).random((40, 3))
    y = (X[:, 0] > 0.5).astype(int)
    unfitted = LogisticRegression(C=1.0)
    assert fingerprint(unfitted) == fingerprint(LogisticRegression(C=1.0))
    assert fingerprint(unfitted) != fingerprint(LogisticRegression(C=2.0))
    fitted = LogisticRegression(C=1.0).fit(X, y)
    assert fingerprint(fitted) != fingerprint(unfitted)
    assert fingerprint(fitted) == fingerprint(LogisticRegression(C=1.0).fit(X, y))
    assert fingerprint(fitted) != fingerprint(LogisticRegression(C=1.0).fit(X[:30], y[:30]))
    rf1 = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    rf2 = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    assert fingerprint(rf1) == fingerprint(rf2)
    p1 = make_pipeline(StandardScaler(), LogisticRegression(C=1.0))
    p2 = make_pipeline(StandardScaler(), LogisticRegression(C=3.0))
    assert fingerprint(p1) != fingerprint(p2)
    assert fingerprint(p1) == fingerprint(
        make_pipeline(StandardScaler(), LogisticRegression(C=1.0))
    )


# -- code and modules ----------------------------------------------------------------------------
def test_functions_classes_methods_modules():
    pytest.importorskip("checkpoint_magic.fingerprint.code")

    def f(x):
        return x + 1

    def g(x):
        return x + 2

    class A:
        def __init__(self, v):
            self.v = v

        def m(self):
            return self.v

    assert fingerprint(f) == fingerprint(f)
    assert distinct(f, g, A, A(1).m, A(2).m, math, os, len, max, "f")
    assert fingerprint(A(1).m) == fingerprint(A(1).m)
    assert fingerprint(int) != fingerprint(float)


def test_instances_include_their_class_code():
    pytest.importorskip("checkpoint_magic.fingerprint.code")
    ns1: dict = {}
    ns2: dict = {}
    exec("class K:\n    def f(self):\n        return 1\n", ns1)
    exec("class K:\n    def f(self):\n        return 2\n", ns2)
    a, b = ns1["K"](), ns2["K"]()
    a.x = b.x = 1
    assert fingerprint(a) != fingerprint(b)


def test_modules_count_by_name():
    assert distinct(math, os, np)


# -- objects that cannot be walked ----------------------------------------------------------------
class Foo:
    pass


def test_unpicklable_attribute_warns_with_its_path_and_fingerprinting_continues():
    f = Foo()
    f.a = 1
    f.conn = sqlite3.connect(":memory:")
    with warns_about("f.conn", "sqlite3.Connection", "unchanged", "watch=['f.a']", "ignore=['f']"):
        fp1 = fingerprint(f, name="f")
    f.conn.close()
    f.conn = sqlite3.connect(":memory:")
    with warns_about("f.conn"):
        assert fingerprint(f, name="f") == fp1  # only the type of the connection counts
    f.a = 2
    with warns_about("f.conn"):
        assert fingerprint(f, name="f") != fp1
    f.conn.close()


def test_warning_paths_through_containers_and_slots():
    d = {"a": [(x for x in [])]}
    with warns_about("d['a'][0]", "generator"):
        fingerprint(d, name="d")

    class Slotted:
        __slots__ = ("db", "n")

    config = Slotted()
    config.db, config.n = threading.Lock(), 1
    with warns_about("config.db", "lock"):
        fingerprint(config, name="config")
    with warns_about("value"):
        fingerprint(threading.Lock())


def test_an_object_whose_walk_fails_raises_instead_of_hashing_its_type():
    class BadDict(dict):
        def items(self):
            raise RuntimeError("boom")

    holder = Foo()
    holder.d = BadDict(a=1)
    fp = Fingerprinter()
    with pytest.raises(FingerprintError, match=r"h\[0\]\.d: .*RuntimeError: boom"):
        fp.fingerprint([holder], name="h")
    assert fp.fingerprint([1], name="ok") == fingerprint([1])  # the instance is still usable


def test_one_warning_for_several_problems_and_no_memo_of_problem_values():
    f = Foo()
    f.lock, f.gen = threading.Lock(), (x for x in [])
    fp = Fingerprinter()
    with warns_about("f.lock", "f.gen"):
        fp.fingerprint(f, name="f")
    with warns_about("g.lock"):  # met again under another name: warned again, with that name
        fp.fingerprint(f, name="g")


def test_object_column_with_an_unpicklable_cell_names_the_column():
    df = pd.DataFrame({"c": [1, threading.Lock()]})
    with warns_about("df['c'][1]"):
        fingerprint(df, name="df")


# -- memoisation ---------------------------------------------------------------------------------
def test_a_value_under_several_names_is_hashed_once():
    a = np.arange(1000.0)
    df = frame()
    fp = Fingerprinter()
    with (
        mock.patch.object(hash_arrays, "_fill_ndarray", wraps=hash_arrays._fill_ndarray) as spy,
        mock.patch.object(_hash_pandas, "_fill_values", wraps=_hash_pandas._fill_values) as spy_pd,
    ):
        first = [
            fp.fingerprint(v, name=n)
            for n, v in (("a", a), ("b", a), ("c", [a, a]), ("df", df), ("df2", df))
        ]
        calls = spy.call_count
    assert spy_pd.call_count == 3 + 2  # df once: its 3 columns, its columns Index and its index
    assert first[0] == first[1] == fingerprint(a)
    assert first[3] == first[4] == fingerprint(df)
    assert calls == 1  # a once
    # a fresh fingerprint() call sees in-place changes (no memo outlives its Fingerprinter)
    a[3] = -1
    assert fingerprint(a) != first[0]


# -- stability across processes -------------------------------------------------------------------
STABILITY_SCRIPT = textwrap.dedent(
    """
    import json, collections
    import numpy as np, pandas as pd
    from checkpoint_magic.fingerprint.values import fingerprint
    values = {
        "set_str": {f"w{i}" for i in range(40)},
        "set_mixed": {1, "a", (2, "b"), b"c", 2.5, None, frozenset({"x", 3})},
        "dict_mixed": {"a": 1, 2: [3], (4, "5"): {"x", "y"}, b"k": 1.5, None: {"in": {1, 2}}},
        "frozenset": frozenset({"p", "q", ("r", 1)}),
        "counter": collections.Counter("hello world"),
        "frame": pd.DataFrame({"s": ["x", "y"], "o": pd.Series([{"k"}, {"j"}], dtype=object)}),
    }
    print(json.dumps({k: fingerprint(v) for k, v in values.items()}))
    """
)


def test_stable_across_processes_and_hash_seeds(tmp_path):
    script = tmp_path / "stability.py"
    script.write_text(STABILITY_SCRIPT)
    outputs = []
    for seed in ("0", "1", "random", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout.strip())
    assert len(set(outputs)) == 1, outputs


GOLDEN = {  # name: (value, pinned digest)
    "int": (42, "3c710433bc4c4cb782d6f0c2a524e357"),
    "negative": (-7, "197ed2435575ac33d0a7ab07fd388169"),
    "str": ("checkpoint", "d8e450455bb79da933df5814960951e9"),
    "nested": (
        {"b": [1, 2.5, "x"], "a": (None, True), 3: {"k": b"v"}},
        "ffe52e6577296a89df07b27192c1509a",
    ),
    "array": (np.arange(12, dtype=np.float64).reshape(3, 4), "59176329f19d985daf367654a7db4da1"),
    "frame": (
        pd.DataFrame({"a": [1.0, 2.0], "b": [3, 4]}, index=pd.Index(["r1", "r2"])),
        "a31af4e22a8fbaa4db748b76e4a96313",
    ),
}


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_golden_digests(name):
    """Pinned digests: if one changes, the encoding changed and HASH_SCHEME_VERSION must be bumped."""
    value, digest = GOLDEN[name]
    assert fingerprint(value) == digest


# -- dispatch ------------------------------------------------------------------------------------
class Widget:
    def __init__(self, size):
        self.size = size


class Sizes(list):
    pass


def test_handlers_are_resolved_in_registration_order(monkeypatch):
    from checkpoint_magic.fingerprint import objects

    # an IntEnum is an int: the enum handler is asked before the builtin-subclass one
    assert hash_stdtypes.subclass_handler_for(Shade) is not None
    assert hashing.handler_for(Shade) is objects.handler_for(Shade)
    assert hashing.handler_for(np.ma.MaskedArray) is hash_arrays.handler_for(np.ma.MaskedArray)
    # a resolver registered later is asked only about types no earlier handler claims
    monkeypatch.setattr(hashing, "_RESOLVERS", list(hashing._RESOLVERS))
    monkeypatch.setattr(hashing, "_RESOLVED", {})
    before = fingerprint(Sizes([1]))

    def by_size(fp, obj, h):
        fp.walk(("Widget", obj.size), h)

    def resolver(cls):
        return by_size if cls in (Widget, Sizes) else None

    hashing.register(resolver=resolver)
    hashing.register(resolver=resolver)  # again: a no-op
    assert hashing._RESOLVERS.count(resolver) == 1
    assert fingerprint(Widget(1)) == fingerprint(("Widget", 1)) != fingerprint(Widget(2))
    assert fingerprint(Sizes([1])) == before  # claimed by the builtin-subclass handler


# -- digest_bytes --------------------------------------------------------------------------------
def test_digest_bytes():
    assert digest_bytes(b"abc") == xxhash.xxh3_128_hexdigest(b"abc")
    a = np.arange(100.0)
    assert digest_bytes(a) == digest_bytes(a.tobytes()) == digest_bytes(memoryview(a))
    assert digest_bytes(memoryview(a)[::2]) == digest_bytes(a[::2].tobytes())
    assert digest_bytes(bytearray(b"abc")) == digest_bytes(b"abc")


# -- subclass state, pandas freq, failing walks ----------------------------------------------------
class UnitArray(np.ndarray):
    """An astropy-Quantity-like subclass: its unit lives in an attribute."""

    def __new__(cls, values, unit):
        obj = np.asarray(values).view(cls)
        obj.unit = unit
        return obj

    def __array_finalize__(self, obj):
        self.unit = getattr(obj, "unit", None)


class SlottedList(list):
    __slots__ = ("extra",)


def test_ndarray_subclass_state_counts():
    assert fingerprint(UnitArray([1.0, 2.0], "m")) == fingerprint(UnitArray([1.0, 2.0], "m"))
    assert distinct(UnitArray([1.0, 2.0], "m"), UnitArray([1.0, 2.0], "km"), np.array([1.0, 2.0]))
    m = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])
    assert fingerprint(m) == fingerprint(np.ma.masked_array([1, 2, 3], mask=[0, 1, 0]))
    assert fingerprint(np.ma.masked_array([1, 2])) == fingerprint(
        np.ma.masked_array([1, 2], mask=[0, 0])  # no mask and an all-False mask are equal
    )
    assert distinct(
        m,
        np.ma.masked_array([1, 2, 3], mask=[0, 1, 0], fill_value=7),
        np.ma.masked_array([1, 2, 3], mask=[0, 1, 0], hard_mask=True),
        np.ma.masked_array([1, 2, 3], mask=[1, 0, 0]),
    )


def test_memmap_counts_by_its_content(tmp_path):
    mm = np.memmap(tmp_path / "a.bin", dtype="f8", mode="w+", shape=(3,))
    mm[:] = [1.0, 2.0, 3.0]
    other = np.memmap(tmp_path / "b.bin", dtype="f8", mode="w+", shape=(3,))
    other[:] = mm
    assert fingerprint(mm) == fingerprint(other)  # no warning: its file is not its value
    other[0] = 5.0
    assert fingerprint(mm) != fingerprint(other)


def test_slots_of_builtin_subclasses_count():
    a, b, c = SlottedList([1]), SlottedList([1]), SlottedList([1])
    a.extra, b.extra = 1, 2
    assert distinct(a, b, c, [1])
    b.extra = 1
    assert fingerprint(a) == fingerprint(b)


def test_index_freq_counts():
    days = pd.date_range("2020-01-01", periods=3, freq="D")
    assert fingerprint(days) == fingerprint(pd.date_range("2020-01-01", periods=3, freq="D"))
    assert distinct(days, pd.DatetimeIndex(list(days), freq=None))
    hours = pd.timedelta_range("1D", periods=3, freq="h")
    assert distinct(hours, pd.TimedeltaIndex(list(hours), freq=None))
    no_freq = pd.DatetimeIndex(list(days), freq=None)
    assert distinct(pd.Series([1, 2, 3], index=days), pd.Series([1, 2, 3], index=no_freq))


def test_lone_surrogates_in_big_string_arrays_and_columns():
    words = np.array([f"w{i}" for i in range(2000)], dtype=object)
    a, b = words.copy(), words.copy()
    a[5], b[5] = "\ud800", "\ud801"
    assert distinct(a, b, words)  # no warning: the element-wise path takes surrogates
    assert fingerprint(a) == fingerprint(a.copy())
    assert distinct(pd.DataFrame({"c": a}, dtype=object), pd.DataFrame({"c": b}, dtype=object))
    assert distinct(pd.Series(a, dtype="string[python]"), pd.Series(b, dtype="string[python]"))


def test_an_unexpected_error_while_walking_raises_fingerprint_error():
    class BadState:
        def __reduce_ex__(self, protocol):
            raise RuntimeError("boom")

    with pytest.raises(FingerprintError, match=r"h\[0\].*RuntimeError: boom"):
        fingerprint([BadState()], name="h")
    bug = KeyError("bug")
    with (
        mock.patch.object(_hash_pandas, "_fill_values", side_effect=bug),
        pytest.raises(FingerprintError, match="KeyError"),
    ):
        fingerprint(frame())


def test_a_checkpoint_whose_input_fails_to_walk_runs_uncached(tmp_path):
    from checkpoint_magic.decorator import checkpoint
    from checkpoint_magic.exceptions import UncachedWarning

    class BadState:
        def __reduce_ex__(self, protocol):
            raise RuntimeError("boom")

    calls = []

    @checkpoint(store=tmp_path / "store")
    def f(x):
        calls.append(1)
        return 1

    for _ in range(2):
        with pytest.warns(UncachedWarning) as record:
            assert f(BadState()) == 1
        assert len(record) == 1
    assert len(calls) == 2


def test_estimators_count_their_whole_fitted_state():
    """Private fitted attributes count: _fit_X/_y (KNN), _tfidf (TfidfVectorizer)."""
    pytest.importorskip("sklearn")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.neighbors import KNeighborsClassifier

    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    y = np.array([0, 0, 1, 1])
    a = KNeighborsClassifier(n_neighbors=1).fit(X, y)
    b = KNeighborsClassifier(n_neighbors=1).fit(X, 1 - y)
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(KNeighborsClassifier(n_neighbors=1).fit(X, y))
    t1 = TfidfVectorizer().fit(["red blue", "red red blue"])
    t2 = TfidfVectorizer().fit(["red blue", "blue blue red", "blue"])
    assert t1.vocabulary_ == t2.vocabulary_
    assert fingerprint(t1) != fingerprint(t2)


def test_remembered_scalar_fingerprints_keep_types_apart():
    from checkpoint_magic.fingerprint.values import Fingerprinter

    for _ in range(2):  # computed, then remembered
        fps = [Fingerprinter().fingerprint(v) for v in (1, True, 1.0, "1", b"1", None, 0, False)]
        assert len(set(fps)) == len(fps)
    assert Fingerprinter().fingerprint("x" * 1000) == Fingerprinter().fingerprint("x" * 1000)
