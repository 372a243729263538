"""Tests for checkpoint_magic.fingerprint.stdtypes: builtins and containers in fingerprints."""

import collections

import numpy as np

from checkpoint_magic.fingerprint import stdtypes
from checkpoint_magic.fingerprint.values import Fingerprinter, fingerprint
from tests.fingerprint.checks import distinct, warns_about


# -- containers -----------------------------------------------------------------------------------
def test_dicts_hash_in_insertion_order():
    # Order is part of a dict's value (list(d), **kwargs, a DataFrame built from it).
    assert fingerprint({"a": 1, "b": 2}) != fingerprint({"b": 2, "a": 1})
    assert fingerprint({1: "x", 2: "y"}) != fingerprint({2: "y", 1: "x"})
    mixed1 = {"a": 1, 2: [3], (4, "5"): None, b"k": 1.5, None: 0}
    mixed2 = dict(reversed(list(mixed1.items())))
    assert fingerprint(mixed1) != fingerprint(mixed2)
    assert fingerprint(mixed1) == fingerprint(dict(mixed1))
    assert distinct(
        {"a": 1},
        {"b": 1},
        {"a": 2},
        {"a": 1, "b": 2},
        {"a": 2, "b": 1},
        {1: "a"},
        {"1": "a"},
        {1.0: "a"},
    )
    assert distinct({"a": 1, 2: 3}, {"a": 3, 2: 1})  # the pairs, not just keys and values, count


def test_sets_order_insensitive():
    words = [f"w{i}" for i in range(50)]
    assert fingerprint(set(words)) == fingerprint(set(reversed(words)))
    mixed = [1, "a", (2, 3), b"x", 2.5, None, frozenset([1])]
    assert fingerprint(set(mixed)) == fingerprint(set(reversed(mixed)))
    assert fingerprint(frozenset(mixed)) == fingerprint(frozenset(reversed(mixed)))
    assert distinct(set(mixed), frozenset(mixed), list(mixed), {1, 2}, {1, 3}, {"1", 2})


def test_ordereddict_is_order_sensitive_and_defaultdict_has_its_factory():
    od1 = collections.OrderedDict([("a", 1), ("b", 2)])
    od2 = collections.OrderedDict([("b", 2), ("a", 1)])
    assert fingerprint(od1) != fingerprint(od2)
    assert fingerprint(od1) == fingerprint(collections.OrderedDict([("a", 1), ("b", 2)]))
    dd_list = collections.defaultdict(list, {"a": 1})
    dd_int = collections.defaultdict(int, {"a": 1})
    assert distinct(dd_list, dd_int, {"a": 1}, od1)
    assert fingerprint(dd_list) == fingerprint(collections.defaultdict(list, {"a": 1}))


def test_cycles_do_not_recurse_forever():
    a = [1]
    a.append(a)
    b = [1]
    b.append(b)
    assert fingerprint(a) == fingerprint(b)
    c = [1, [2]]
    c[1].append(c)
    assert fingerprint(a) != fingerprint(c)
    d = {"x": 1}
    d["self"] = d
    e = {"x": 1}
    e["self"] = e
    assert fingerprint(d) == fingerprint(e) != fingerprint({"x": 1, "self": {}})

    class Node:
        pass

    n1, n2 = Node(), Node()
    n1.other, n2.other = n2, n1
    n1.v, n2.v = 1, 2
    m1, m2 = Node(), Node()
    m1.other, m2.other = m2, m1
    m1.v, m2.v = 1, 2
    assert fingerprint(n1) == fingerprint(m1)
    assert fingerprint(n1) != fingerprint(n2)

    class MyDict(dict):
        pass

    md = MyDict(a=1)
    md.me = md  # a cycle through the instance __dict__ of a builtin subclass
    assert len(fingerprint(md)) == 32
    arr = np.empty(2, dtype=object)
    arr[0], arr[1] = arr, 1
    assert len(fingerprint(arr)) == 32


def test_memoised_value_with_a_cycle_through_its_parent_is_not_stale():
    class Holder:
        pass

    h = Holder()
    h.child = Holder()
    h.child.parent = h  # the child's digest depends on where it is met
    fp = Fingerprinter()
    whole = fp.fingerprint(h, "h")
    alone = fp.fingerprint(h.child, "c")
    assert alone == fingerprint(h.child)
    assert whole == fingerprint(h)


def test_deep_nesting_warns_instead_of_crashing():
    deep: list = []
    cur = deep
    for _ in range(5000):
        cur.append([])
        cur = cur[0]
    with warns_about("nested more than", "deep[0][0]"):
        assert len(fingerprint(deep, "deep")) == 32


def test_packed_runs_of_numbers_hash_like_one_by_one(monkeypatch):
    values = [
        [float(i) for i in range(200)] + [-0.0, float("nan"), float("inf"), 5e-324],
        list(range(-100, 200)) + [2**63 - 1, -(2**63)],
        [2**70] + list(range(200)),
        tuple(range(129)),
        {f"k{i}": i / 3 for i in range(300)},
        np.array([1.5] * 1000, dtype=object),
    ]
    packed = [fingerprint(v) for v in values]
    monkeypatch.setattr(stdtypes, "_PACK_ONE", {})
    assert [fingerprint(v) for v in values] == packed


def test_a_mappingproxy_counts_as_the_dict_it_shows():
    import types

    proxy = types.MappingProxyType
    assert fingerprint(proxy({"a": 1})) == fingerprint(proxy({"a": 1}))
    assert fingerprint(proxy({"a": 1})) != fingerprint(proxy({"a": 2}))
    assert fingerprint(proxy({"a": 1})) != fingerprint({"a": 1})
