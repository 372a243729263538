"""``@checkpoint``: the seed's behaviour in fresh processes, binding, methods, failures, helpers."""

from __future__ import annotations

import errno
import pathlib
import warnings
from unittest import mock

import numpy as np
import pytest

from checkpoint_magic import ComplexParamsIdentifyWarning, checkpoint
from checkpoint_magic.exceptions import (
    CorruptEntryWarning,
    InvalidArgumentError,
    StoreWriteWarning,
    UncachedWarning,
)
from checkpoint_magic.store.core import Store

FOO = """
from checkpoint_magic import checkpoint

@checkpoint
def foo(a, b):
    print("Heavy computation.")
    return a {op} b

print(foo(1, 2))
print(foo(1, 2))
{extra}
"""


def test_seed_same_call_computed_once_across_runs(script):
    first = script.run(FOO.format(op="+", extra="")).stdout
    assert first == "Heavy computation.\n3\n3\n"
    second = script.run().stdout
    assert second == "3\n3\n"


def test_seed_new_arguments_recompute(script):
    script.run(FOO.format(op="+", extra=""))
    out = script.run(FOO.format(op="+", extra="print(foo(1, 3))")).stdout
    assert out == "3\n3\nHeavy computation.\n4\n"


def test_seed_code_edit_recomputes_and_revert_is_a_hit(script):
    assert script.run(FOO.format(op="+", extra="")).stdout == "Heavy computation.\n3\n3\n"
    assert script.run(FOO.format(op="-", extra="")).stdout == "Heavy computation.\n-1\n-1\n"
    # joblib.Memory would recompute here: every code version is kept.
    assert script.run(FOO.format(op="+", extra="")).stdout == "3\n3\n"
    assert script.run(FOO.format(op="-", extra="")).stdout == "-1\n-1\n"


def test_seed_comment_and_docstring_edits_are_hits(script):
    script.run(FOO.format(op="+", extra=""))
    edited = FOO.format(op="+", extra="").replace(
        "def foo(a, b):\n", 'def foo(a, b):  # a comment\n    """Docstring."""\n\n'
    )
    assert script.run(edited).stdout == "3\n3\n"


def test_seed_force_recompute(script):
    script.run(FOO.format(op="+", extra=""))
    src = FOO.format(op="+", extra="print(foo(1, 2, __recompute__=True))\nprint(foo(1, 2, __recompute__=True))")
    assert script.run(src).stdout == "3\n3\nHeavy computation.\n3\nHeavy computation.\n3\n"


def test_seed_ignore(script):
    src = """
    from checkpoint_magic import checkpoint

    @checkpoint(ignore=["useless"])
    def bar(a, useless):
        print("running")
        return a + 1

    print(bar(1, True))
    print(bar(1, False))
    """
    assert script.run(src).stdout == "running\n2\n2\n"
    assert script.run().stdout == "2\n2\n"


HELPER = """
from checkpoint_magic import checkpoint

def helper(x):
    return x * {factor}

def unrelated():
    return {unrelated}

@checkpoint
def compute(x):
    print("computing")
    return helper(x) + 1

print(compute(2))
"""


def test_editing_a_helper_invalidates_the_caller_and_revert_hits(script):
    assert script.run(HELPER.format(factor=10, unrelated=0)).stdout == "computing\n21\n"
    assert script.run(HELPER.format(factor=10, unrelated=1)).stdout == "21\n"  # unrelated edit: hit
    assert script.run(HELPER.format(factor=100, unrelated=1)).stdout == "computing\n201\n"
    assert script.run(HELPER.format(factor=10, unrelated=1)).stdout == "21\n"


def test_helper_in_a_local_module_is_followed(script):
    script.write("def helper(x):\n    return x + 1\n", "mylib.py")
    src = """
    from checkpoint_magic import checkpoint
    import mylib

    @checkpoint
    def compute(x):
        print("computing")
        return mylib.helper(x)

    print(compute(1))
    """
    assert script.run(src).stdout == "computing\n2\n"
    assert script.run().stdout == "2\n"
    script.write("def helper(x):\n    return x + 2\n", "mylib.py")
    assert script.run().stdout == "computing\n3\n"


def test_store_location_argument_env_and_default(script, tmp_path):
    src = """
    from checkpoint_magic import checkpoint
    @checkpoint
    def f(x):
        return x
    f(1)
    """
    script.run(src)
    assert (tmp_path / ".Lutil-checkpoint" / "FORMAT").exists()
    script.run(env={"CHECKPOINT_MAGIC_DIR": str(tmp_path / "env-store")})
    assert (tmp_path / "env-store" / "FORMAT").exists()
    script.run(src.replace("@checkpoint\n", "@checkpoint(store='arg-store')\n"),
               env={"CHECKPOINT_MAGIC_DIR": str(tmp_path / "env-store2")})
    assert (tmp_path / "arg-store" / "FORMAT").exists()
    assert not (tmp_path / "env-store2").exists()


# ---------------------------------------------------------------------- in-process behaviour
# Counters live at module level: a closure over a list the function appends to would be a
# closure value that changes on every call, and closure values are part of the key.
CALLS: list = []


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()



def test_positional_keyword_and_default_spellings_are_one_call(store_dir):
    @checkpoint(store=store_dir)
    def f(a, b=2, *, c=3):
        CALLS.append(1)
        return a + b + c

    assert f(1) == 6
    assert f(1, 2) == 6
    assert f(a=1, b=2) == 6
    assert f(1, c=3) == 6
    assert f(b=2, a=1, c=3) == 6
    assert len(CALLS) == 1
    assert f(1, 3) == 7
    assert len(CALLS) == 2


def test_a_call_giving_every_parameter_by_position_is_the_same_call(store_dir):
    @checkpoint(store=store_dir)
    def g(a, b=2):
        CALLS.append(1)
        return a + b

    assert g(1, 2) == g(1) == g(a=1) == g(1, b=2) == 3 and len(CALLS) == 1
    assert g(1, 5) == 6 and len(CALLS) == 2


def test_varargs_and_kwargs(store_dir):
    @checkpoint(store=store_dir)
    def f(a, /, *rest, **named):
        CALLS.append(1)
        return a, rest, named

    assert f(1, 2, 3, k=4) == (1, (2, 3), {"k": 4})
    assert f(1, 2, 3, k=4) == (1, (2, 3), {"k": 4})
    assert f(1, 2, 3, k=5) == (1, (2, 3), {"k": 5})
    assert len(CALLS) == 2


def test_wrong_call_raises_the_functions_own_error(store_dir):
    @checkpoint(store=store_dir)
    def f(a):
        return a

    with pytest.raises(TypeError, match="unexpected keyword|got an unexpected"):
        f(b=1)
    with pytest.raises(TypeError):
        f()


def test_methods_use_instance_state(store_dir):
    class Scaler:
        def __init__(self, k):
            self.k = k

        @checkpoint(store=store_dir)
        def scale(self, x):
            CALLS.append(1)
            return self.k * x

    assert Scaler(2).scale(3) == 6
    assert Scaler(2).scale(3) == 6
    assert Scaler(5).scale(3) == 15
    assert len(CALLS) == 2
    assert Scaler(2).scale.is_cached(3) and not Scaler(7).scale.is_cached(3)


def test_nested_functions_closure_values_count(store_dir):
    def make(k):
        @checkpoint(store=store_dir, name="nested.scaled")
        def scaled(x):
            CALLS.append(k)
            return k * x

        return scaled

    assert make(2)(3) == 6
    assert make(2)(3) == 6
    assert make(3)(3) == 9
    assert CALLS == [2, 3]


def test_numpy_and_pandas_arguments(store_dir):
    import pandas as pd

    @checkpoint(store=store_dir)
    def total(arr, df):
        CALLS.append(1)
        return float(arr.sum() + df["x"].sum())

    arr = np.arange(1_000_000, dtype=np.float64)
    df = pd.DataFrame({"x": [1.0, 2.0]})
    assert total(arr, df) == total(arr.copy(), df.copy())
    changed = arr.copy()
    changed[500_000] += 1
    total(changed, df)
    total(arr, df.assign(x=[1.0, 3.0]))
    assert len(CALLS) == 3


def test_large_array_result_roundtrip(store_dir):
    @checkpoint(store=store_dir)
    def make(n):
        return np.arange(n, dtype=np.float32).reshape(-1, 10)

    first = make(1_000_000)
    second = make(1_000_000)
    assert np.array_equal(first, second) and second.dtype == np.float32


def test_mmap_mode(store_dir):
    @checkpoint(store=store_dir, mmap_mode="r")
    def make(n):
        return np.arange(n, dtype=np.float64)

    make(100_000)
    hit = make(100_000)
    assert isinstance(hit, np.memmap) and hit[99_999] == 99_999


def test_ignore_unknown_name_is_a_value_error_at_decoration():
    with pytest.raises(ValueError, match=r"not parameters.*valid names: \['a', 'b'\]"):

        @checkpoint(ignore=["c"])
        def f(a, b):
            return a

    assert issubclass(InvalidArgumentError, ValueError)


def test_invalid_options():
    with pytest.raises(InvalidArgumentError, match="mmap_mode"):
        checkpoint(mmap_mode="r+")(lambda: 1)
    with pytest.raises(InvalidArgumentError, match="decorates a function"):
        checkpoint(42)


def test_user_exceptions_propagate_unchanged_and_nothing_is_cached(store_dir):
    class Boom(Exception):
        pass

    error = Boom("original")

    @checkpoint(store=store_dir)
    def fails(x):
        CALLS.append(x)
        raise error

    for _ in range(2):
        with pytest.raises(Boom) as info:
            fails(1)
        assert info.value is error
    assert CALLS == [1, 1]
    assert list(Store(store_dir).iter_entry_keys()) == []


def test_fingerprint_failure_returns_result_with_one_warning(store_dir):
    @checkpoint(store=store_dir)
    def f(x):
        return x + 1

    failing = mock.patch("checkpoint_magic.core.checkpointer.Fingerprinter.fingerprint", side_effect=RuntimeError("boom"))
    with failing, pytest.warns(UncachedWarning, match="boom") as record:
        assert f(1) == 2
    assert len(record) == 1


def test_store_failure_returns_result_with_one_warning_and_no_entry(store_dir):
    @checkpoint(store=store_dir)
    def f(x):
        return np.ones(100_000) * x

    enospc = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch("checkpoint_magic.store.backends.local.write_full", side_effect=enospc), pytest.warns(
        StoreWriteWarning, match="No space left"
    ) as record:
        result = f(3)
    assert len(record) == 1
    assert result[0] == 3
    assert not f.is_cached(3)
    assert list(Store(store_dir).iter_entry_keys()) == []


def test_unpicklable_result_is_returned_with_a_warning(store_dir):
    import threading

    @checkpoint(store=store_dir)
    def f():
        return threading.Lock()

    with pytest.warns(StoreWriteWarning, match="could not be stored"):
        lock = f()
    assert hasattr(lock, "acquire")


def test_corrupt_blob_is_a_miss_with_warning_then_a_correct_recompute(store_dir):
    @checkpoint(store=store_dir)
    def f(n):
        CALLS.append(n)
        return np.arange(n)

    f(100_000)
    store = Store(store_dir)
    blob = next(p for p in (store_dir / "objects").rglob("*") if p.is_file())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.warns(CorruptEntryWarning):
        result = f(100_000)
    assert np.array_equal(result, np.arange(100_000)) and len(CALLS) == 2
    assert np.array_equal(f(100_000), np.arange(100_000)) and len(CALLS) == 2
    assert store.root == store_dir


def test_wraps_is_cached_and_clear(store_dir):
    @checkpoint(store=store_dir)
    def documented(x):
        """Docs."""
        return x

    assert documented.__wrapped__.__name__ == "documented"
    assert documented.__doc__ == "Docs." and documented.__name__ == "documented"
    assert not documented.is_cached(1)
    documented(1)
    documented(2)
    assert documented.is_cached(1)
    assert documented.clear() == 2
    assert not documented.is_cached(1)


def test_complex_argument_warns_naming_the_attribute(store_dir):
    import threading

    class Holder:
        def __init__(self):
            self.a = 1
            self.lock = threading.Lock()

    @checkpoint(store=store_dir)
    def f(h):
        return h.a

    with pytest.warns(ComplexParamsIdentifyWarning, match=r"h\.lock"):
        assert f(Holder()) == 1


def test_exported_at_top_level():
    import checkpoint_magic

    assert {"checkpoint", "ComplexParamsIdentifyWarning"} <= set(checkpoint_magic.__all__)
    assert issubclass(ComplexParamsIdentifyWarning, UserWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import checkpoint_magic.decorator  # noqa: F401


def test_a_module_imported_inside_the_function_counts_by_its_code(script):
    script.write("def helper(x):\n    return x + 1\n", "lazylib.py")
    src = """
    from checkpoint_magic import checkpoint

    @checkpoint
    def compute(x):
        import lazylib  # imported only when the function runs
        print("computing")
        return lazylib.helper(x)

    print(compute(1))
    """
    assert script.run(src).stdout == "computing\n2\n"
    assert script.run().stdout == "2\n"
    script.write("def helper(x):\n    return x + 100\n", "lazylib.py")
    assert script.run().stdout == "computing\n101\n"


def test_ignore_leaves_out_the_named_parameters_wherever_they_stand(store_dir):
    """``ignore=`` names parameters; it must not drop the last N of them (every seed example
    ignores the last one, which hid exactly that bug)."""
    CALLS.clear()

    @checkpoint(store=store_dir, ignore=["verbose", "log"])
    def scaled(verbose, x, log=None, *, factor=2):
        CALLS.append((x, factor))
        return x * factor

    assert scaled(True, 3) == 6 and scaled(False, 3, log="a") == 6  # ignored ones: a hit
    assert CALLS == [(3, 2)]
    assert scaled(True, 4) == 8  # the leading argument after an ignored one counts
    assert scaled(True, 4, factor=3) == 12  # so does a keyword-only one at the end
    assert CALLS == [(3, 2), (4, 2), (4, 3)]


def test_a_damaged_blob_read_with_mmap_mode_is_a_miss_not_a_wrong_value(store_dir):
    """Memory-mapped hits must verify the blob like copying reads do."""
    CALLS.clear()

    @checkpoint(store=store_dir, mmap_mode="r")
    def make(n):
        CALLS.append(n)
        return np.arange(n, dtype=np.float64)

    make(200_000)
    blob = max(
        (p for p in (store_dir / "objects").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte in the middle of the array
    blob.write_bytes(bytes(data))
    with pytest.warns(CorruptEntryWarning):
        again = make(200_000)
    assert CALLS == [200_000, 200_000]
    np.testing.assert_array_equal(again, np.arange(200_000, dtype=np.float64))


def test_a_blob_changed_in_place_after_a_verified_mmap_hit_is_caught(store_dir):
    """The verified-blob cache trusts a blob only while its full stat signature is unchanged."""
    import os
    import time

    CALLS.clear()

    @checkpoint(store=store_dir, mmap_mode="r")
    def make(n):
        CALLS.append(n)
        return np.arange(n, dtype=np.float64)

    make(200_000)
    blob = max(
        (p for p in (store_dir / "objects").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    time.sleep(0.2)  # past the racy window, so the verification below is remembered
    for _ in range(2):  # verified once, then trusted by its stat signature
        np.testing.assert_array_equal(make(200_000), np.arange(200_000, dtype=np.float64))
    assert CALLS == [200_000]
    before = blob.stat()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, content changed in place...
    with open(blob, "r+b") as f:  # ...in the same inode
        f.write(bytes(data))
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))  # and its mtime set back
    with pytest.warns(CorruptEntryWarning):
        again = make(200_000)
    assert CALLS == [200_000, 200_000]
    np.testing.assert_array_equal(again, np.arange(200_000, dtype=np.float64))


@pytest.mark.parametrize("n", [200_000, 4_000_000])  # read plainly / hashed on a second thread
def test_a_blob_changed_in_place_after_a_verified_hit_is_caught(store_dir, n):
    """Reads skip hashing a blob this process verified only while its stat signature holds."""
    import os
    import time

    CALLS.clear()

    @checkpoint(store=store_dir)
    def make(n):
        CALLS.append(n)
        return np.arange(n, dtype=np.float64)

    make(n)
    blob = max(
        (p for p in (store_dir / "objects").rglob("*") if p.is_file()),
        key=lambda p: p.stat().st_size,
    )
    time.sleep(0.2)  # past the racy window, so the verification below is remembered
    for _ in range(2):  # verified once, then trusted by its stat signature
        np.testing.assert_array_equal(make(n), np.arange(n, dtype=np.float64))
    assert list(CALLS) == [n]
    before = blob.stat()
    with open(blob, "r+b") as f:  # same size, same inode, one byte changed
        f.seek(before.st_size // 2)
        byte = f.read(1)
        f.seek(before.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(blob, ns=(before.st_atime_ns, before.st_mtime_ns))  # and its mtime set back
    with pytest.warns(CorruptEntryWarning):
        again = make(n)
    assert list(CALLS) == [n, n]
    np.testing.assert_array_equal(again, np.arange(n, dtype=np.float64))


def test_an_argument_whose_getattr_raises_keyerror_is_cached(store_dir):
    # dict.__getitem__ as __getattr__ (a common config idiom) raises KeyError for any
    # missing attribute, __fspath__ included: still an ordinary, cached argument.
    class AttrDict(dict):
        __getattr__ = dict.__getitem__

    @checkpoint(store=store_dir)
    def f(cfg):
        CALLS.append(1)
        return cfg["a"] + 1

    assert f(AttrDict(a=1)) == 2
    assert f(AttrDict(a=1)) == 2
    assert len(CALLS) == 1


def test_a_class_that_becomes_path_like_makes_its_file_an_input(tmp_path):
    """An argument whose class gained __fspath__ since an earlier call names a file from now on."""
    data = tmp_path / "data.txt"
    data.write_text("one")

    class Source:
        def __str__(self) -> str:
            return str(data)

    @checkpoint
    def read(source):
        return pathlib.Path(str(source)).read_text()

    assert read(Source()) == "one"
    Source.__fspath__ = Source.__str__  # type: ignore[attr-defined]
    assert read(Source()) == "one"
    data.write_text("two")
    assert read(Source()) == "two"  # the file is an input now: never the stale "one"


def test_a_checkpointed_function_unpickled_from_an_earlier_version_still_binds(store_dir):
    """An instance whose state predates the positional fast path (no ``_arity``) still works."""

    @checkpoint(store=store_dir)
    def g(a, b):
        return a + b

    del g.__dict__["_arity"]  # as unpickled from the state an earlier version wrote
    assert g(1, 2) == 3 and g(1, 2) == 3 and g(a=1, b=2) == 3
