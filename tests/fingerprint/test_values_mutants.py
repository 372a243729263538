"""Value fingerprints: cases that mutation testing (``make mutate``) showed no test pinned.

Each test changes one thing a fingerprint must see; a mutant that ignores it is a wrong hit.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from checkpoint_magic.fingerprint.values import fingerprint


def test_ordered_dict_keys_and_values_count():
    base = OrderedDict([("a", 1), ("b", 2)])
    assert fingerprint(base) != fingerprint(OrderedDict([("a", 1), ("b", 3)]))
    assert fingerprint(base) != fingerprint(OrderedDict([("a", 1), ("c", 2)]))
    assert fingerprint(base) != fingerprint(OrderedDict([("b", 2), ("a", 1)]))
    assert fingerprint(base) == fingerprint(OrderedDict([("a", 1), ("b", 2)]))


@pytest.mark.parametrize("n", [3, 2000])  # below and above the Arrow fast path for strings
def test_every_element_of_an_object_array_counts(n):
    values = np.array([f"s{i}" for i in range(n)], dtype=object)
    for index in (0, n // 2, n - 1):
        changed = values.copy()
        changed[index] = "other"
        assert fingerprint(values) != fingerprint(changed), index
    assert fingerprint(values) == fingerprint(values.copy())


def test_mixed_object_arrays_count_each_element():
    values = np.array([1, "a", None, 2.5], dtype=object)
    changed = values.copy()
    changed[0] = 2
    assert fingerprint(values) != fingerprint(changed)


@pytest.mark.parametrize(
    "a, b",
    [(2**64, 2**64 + 1), (-(2**70), 2**70), (2**63, 2**63 - 1), (10**30, 10**31)],
)
def test_integers_beyond_int64_are_exact(a, b):
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a) == fingerprint(int(str(a)))


def test_big_integers_differ_from_their_bytes_and_strings():
    big = 2**100
    assert fingerprint(big) != fingerprint(str(big))
    assert fingerprint(big) != fingerprint(big.to_bytes(13, "little"))


def test_memoryview_format_shape_and_strides_count():
    data = np.arange(12, dtype=np.int32)
    as_int = memoryview(data)
    as_bytes = memoryview(data.view(np.uint8))
    assert fingerprint(as_int) != fingerprint(as_bytes)  # same bytes, another format
    grid = memoryview(data.reshape(3, 4))
    assert fingerprint(grid) != fingerprint(memoryview(data.reshape(4, 3)))  # another shape
    strided = memoryview(data)[::2]
    assert fingerprint(strided) == fingerprint(memoryview(data[::2].copy()))  # same logical value
    assert fingerprint(strided) != fingerprint(memoryview(data[1::2].copy()))
