"""Tests of checkpoint_magic.core.names: a cell's inputs (names read before bound) and outputs
(names bound at top level), through every kind of statement. A read the analysis misses is an
input that does not enter the key: a stale hit when it changes."""

from __future__ import annotations

import sys

import pytest

from checkpoint_magic.core.names import analyze_cell, cell_inputs_outputs

CASES = {
    "try body, handler, else and finally": (
        "try:\n    y = risky(x)\nexcept ValueError as err:\n    y = fallback(err)\nelse:\n"
        "    z = y\nfinally:\n    done = cleanup(w)\nprint(y)",
        ["risky", "x", "ValueError", "fallback", "cleanup", "w", "print"],
        ["y", "z", "err", "done"],
    ),
    "a handler's name is gone after it": (
        "try:\n    a = 1\nexcept KeyError as e:\n    pass\nprint(e)",
        ["KeyError", "print", "e"],
        ["a", "e"],
    ),
    "while body and else": (
        "while cond(n):\n    n = step(n)\nelse:\n    after = m\nprint(n)",
        ["cond", "n", "step", "m", "print"],
        ["n", "after"],
    ),
    "with ... as": (
        "with lock as held, open(p) as fh:\n    data = fh.read(held)\nprint(data)",
        ["lock", "open", "p", "print"],
        ["held", "fh", "data"],
    ),
    "match cases, guards and captures": (
        "match cmd:\n    case {'k': v} if v > lim:\n        r = v\n    case Point(x=px):\n"
        "        r = px\n    case [first, *rest]:\n        r = first\n    case _:\n        r = default\n"
        "print(r)",
        ["cmd", "lim", "Point", "default", "print", "r"],
        ["v", "r", "px", "first", "rest"],
    ),
    "del needs the name and unbinds it": (
        "a = 1\ndel a\nprint(a)\ndel b",
        ["print", "a", "b"],
        ["a"],
    ),
    "global": ("global g\ng = h + 1", ["h"], ["g"]),
    "for body and else; the loop may not run": (
        "for i in items:\n    acc = acc + i\nelse:\n    fin = acc\nprint(i)",
        ["items", "acc", "print", "i"],
        ["i", "acc", "fin"],
    ),
    "augmented assignment reads first": ("total += inc", ["inc", "total"], ["total"]),
    "annotations are evaluated; a bare annotation binds nothing": (
        "x: int\ny: Foo = make()\nprint(x)",
        ["int", "Foo", "make", "print", "x"],
        ["y"],
    ),
    "if/else both bind": ("if c:\n    v = 1\nelse:\n    v = 2\nprint(v)", ["c", "print"], ["v"]),
    "if alone may not bind": ("if c:\n    v = 1\nprint(v)", ["c", "print", "v"], ["v"]),
    "comprehension variables stay inside": (
        "sq = [k * k for k in ks if k > lo]\nprint(k)",
        ["lo", "ks", "print", "k"],
        ["sq"],
    ),
    "lambda defaults and body": ("f = lambda q=qq: q + r", ["r", "qq"], ["f"]),
    "class bodies and methods": (
        "class A(Base):\n    attr = val\n    def m(self):\n        return other\nobj = A()",
        ["Base", "other", "val"],
        ["A", "obj"],
    ),
    "async functions": (
        "async def main():\n    async for x in src:\n        yield x\nres = main()",
        ["src"],
        ["main", "res"],
    ),
    "imports bind their names": (
        "import os.path as osp\nimport numpy\nfrom a import b as c2\nuse(osp, numpy, c2, undefined)",
        ["use", "undefined"],
        ["osp", "numpy", "c2"],
    ),
}
if sys.version_info >= (3, 11):
    CASES["except*"] = (
        "try:\n    t = f()\nexcept* ValueError as eg:\n    t = 0\nprint(t)",
        ["f", "ValueError", "print"],
        ["t", "eg"],
    )


@pytest.mark.parametrize("source, reads, binds", list(CASES.values()), ids=list(CASES))
def test_reads_and_binds_of_every_statement_kind(source, reads, binds):
    assert cell_inputs_outputs(source) == (reads, binds)


def test_a_walrus_binds_its_name():
    assert "n" in cell_inputs_outputs("if (n := size(xs)) > 2:\n    big = n")[1]


def test_star_import_is_flagged():
    assert analyze_cell("from os.path import *\nx = join('a', 'b')").star_import
    assert not analyze_cell("from os.path import join").star_import
