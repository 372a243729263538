"""Every input counts (issue #10): fitted state, dict order, code held in data, data globals,
files, mutated arguments, partial/async/generator functions — each run as a user would, in
fresh processes, twice or more with an edit in between."""

from __future__ import annotations

import functools
import os
from unittest import mock

import numpy as np
import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.exceptions import InvalidArgumentError, MutationNotReplayedWarning
from checkpoint_magic.fingerprint import files

CALLS: list[object] = []  # a global the checkpointed test functions change: state, not an input


@pytest.fixture(autouse=True)
def _calls():
    CALLS.clear()


def runs(script, source: str, *edits: tuple[str, str]) -> list[str]:
    """Run ``source``, then again after each ``(old, new)`` edit; the outputs, stripped."""
    out = [script.run(source).stdout.strip()]
    for old, new in edits:
        assert old in source, old
        source = source.replace(old, new)
        out.append(script.run(source).stdout.strip())
    return out


# 1. fitted estimators with private state, and 6. mutated arguments (one sklearn import per run)
def test_refit_private_state_counts_and_a_hit_replays_a_mutated_argument(script):
    src = """
        import numpy as np
        from sklearn.linear_model import LinearRegression
        from sklearn.neighbors import KNeighborsClassifier
        from checkpoint_magic import checkpoint

        @checkpoint
        def predict(model, X):
            return model.predict(X).tolist()

        @checkpoint
        def train(model, X, y, log):
            print("training")
            model.fit(X, y)
            log.append("trained")
            return float(model.score(X, y))

        X = np.array([[0.0], [1.0], [2.0], [3.0]])
        y = np.array([0, 0, 1, 1])
        print(predict(KNeighborsClassifier(n_neighbors=1).fit(X, y), X))
        model, log = LinearRegression(), []
        train(model, X, y, log)
        print(round(float(model.predict(X[:1])[0]), 6), log)
    """
    first, second = runs(script, src, ("fit(X, y), X)", "fit(X, 1 - y), X)"))
    assert first == "[0, 0, 1, 1]\ntraining\n-0.1 ['trained']"
    assert second == "[1, 1, 0, 0]\n-0.1 ['trained']"  # train hit: model and log replayed


# 2. order of dicts and **kwargs -------------------------------------------------------------------
def test_dict_order_is_part_of_the_value(script):
    src = """
        from checkpoint_magic import checkpoint

        @checkpoint
        def columns(d):
            return list(d)

        @checkpoint
        def kw(**kwargs):
            return list(kwargs)

        print(columns({"a": 1, "b": 2}), kw(a=1, b=2))
    """
    first, second = runs(
        script, src, ('columns({"a": 1, "b": 2}), kw(a=1, b=2)', 'columns({"b": 2, "a": 1}), kw(b=2, a=1)')
    )
    assert first == "['a', 'b'] ['a', 'b']"
    assert second == "['b', 'a'] ['b', 'a']"


# 3. helpers reached through data -----------------------------------------------------------------
def test_helper_held_in_a_module_dict_is_code(script):
    src = """
        import functools
        from dataclasses import dataclass
        from checkpoint_magic import checkpoint

        def double(x):
            return 2 * x

        OPS = {"op": double}
        PIPE = [functools.partial(double)]

        @dataclass
        class Conf:
            fn: object

        CONF = Conf(double)

        @checkpoint
        def apply(name, x):
            return OPS[name](x), PIPE[0](x), CONF.fn(x)

        print(apply("op", 5))
    """
    first, second = runs(script, src, ("return 2 * x", "return 3 * x"))
    assert first == "(10, 10, 10)"
    assert second == "(15, 15, 15)"


# 4. data globals -----------------------------------------------------------------------------------
def test_data_global_read_through_a_helper_is_an_input(script):
    src = """
        import logging
        import threading
        from checkpoint_magic import checkpoint

        CONFIG = {"factor": 2}
        LOG = logging.getLogger("x")
        LOCK = threading.Lock()

        def factor():
            with LOCK:
                LOG.debug("reading")
                return CONFIG["factor"]

        @checkpoint
        def scale(x):
            print("computing")
            return x * factor()

        print(scale(10))
    """
    out = runs(script, src, ('"factor": 2', '"factor": 2'), ('"factor": 2', '"factor": 3'))
    assert out == ["computing\n20", "20", "computing\n30"]


def test_a_global_the_function_changes_is_state_and_never_misses_forever(script):
    src = """
        from checkpoint_magic import checkpoint

        MEMO = {}
        CALLS = [0]

        @checkpoint
        def slow(x):
            print("computing")
            CALLS[0] += 1
            MEMO[x] = x * 2
            return MEMO[x]

        print(slow(4))
    """
    out = runs(script, src, ("x * 2", "x * 2"), ("x * 2", "x * 2"))
    assert out == ["computing\n8", "8", "8"]


def test_ignore_a_global(script):
    src = """
        from checkpoint_magic import checkpoint

        SETTINGS = {"verbose": 0}

        @checkpoint(ignore=["global:SETTINGS"])
        def f(x):
            print("computing")
            return x + len(SETTINGS)

        print(f(1))
    """
    out = runs(script, src, ('{"verbose": 0}', '{"verbose": 1}'))
    assert out == ["computing\n2", "2"]


# 5. files ----------------------------------------------------------------------------------------
def test_file_argument_and_file_constant_count_by_content(script):
    (script.workdir / "data.csv").write_text("a\n1\n2\n")
    src = """
        import sys
        import pandas as pd
        from checkpoint_magic import checkpoint

        @checkpoint
        def load(path):
            print("loading")
            return int(pd.read_csv(path)["a"].sum())

        @checkpoint
        def load_fixed():
            return int(pd.read_csv("data.csv")["a"].sum())

        print(load("data.csv"), load_fixed())
    """
    assert script.run(src).stdout.split() == ["loading", "3", "3"]
    assert script.run(src).stdout.split() == ["3", "3"]
    (script.workdir / "data.csv").write_text("a\n1\n2\n3\n")
    assert script.run(src).stdout.split() == ["loading", "6", "6"]


def test_a_file_written_by_the_computation_is_an_output_not_an_input(script):
    src = """
        import pandas as pd
        from checkpoint_magic import checkpoint

        @checkpoint
        def export(n):
            print("computing")
            pd.DataFrame({"a": range(n)}).to_csv("out.csv", index=False)
            return n

        print(export(3))
    """
    out = runs(script, src, ("range(n)", "range(n)"), ("range(n)", "range(n)"))
    assert out == ["computing\n3", "3", "3"]
    assert (script.workdir / "out.csv").exists()


def test_folder_argument_counts_by_listing_and_contents(tmp_path, store_dir):
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.txt").write_text("1")

    @checkpoint(store=store_dir)
    def count(path):
        CALLS.append(1)
        return sorted(os.listdir(path))

    assert count(str(folder)) == ["a.txt"]
    assert count(str(folder)) == ["a.txt"] and len(CALLS) == 1
    (folder / "b.txt").write_text("2")
    assert count(str(folder)) == ["a.txt", "b.txt"] and len(CALLS) == 2
    (folder / "b.txt").write_text("3")
    count(str(folder))
    assert len(CALLS) == 3


def test_an_unchanged_big_file_costs_a_stat_not_a_read(tmp_path, store_dir):
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.truncate(1 << 30)  # 1 GiB (sparse)

    @checkpoint(store=store_dir)
    def size(p):
        return os.path.getsize(p)

    with mock.patch.object(files, "_read_digest", return_value="0" * 32) as reads:
        assert size(str(path)) == 1 << 30
        assert reads.call_count == 1
        for _ in range(3):
            assert size(str(path)) == 1 << 30
        assert reads.call_count == 1  # hits: a stat each, no read
        os.utime(path, ns=(1, 1))  # a new mtime: read again
        size(str(path))
        assert reads.call_count == 2


# 6. mutated arguments ----------------------------------------------------------------------------
def test_a_mutation_that_cannot_be_replayed_warns_once(store_dir):
    import array

    @checkpoint(store=store_dir)
    def bump(s, k):
        s.append(k)
        return k

    with pytest.warns(MutationNotReplayedWarning, match="'s'"):
        bump(array.array("i", [0]), 1)
    bump(array.array("i", [0]), 2)  # no second warning for the same argument (-W error)


# 8. partial, async, generator -------------------------------------------------------------------
def test_partial_async_and_generator(store_dir):
    import asyncio
    import functools

    def f(x, e=1):
        return x**e

    p = checkpoint(functools.partial(f, e=2), store=store_dir)
    assert p(3) == 9 and p(3) == 9
    assert p.checkpointer.namespace.endswith(".f")

    @checkpoint(store=store_dir)
    async def fetch(x):
        CALLS.append(x)
        await asyncio.sleep(0)
        return x + 1

    assert asyncio.run(fetch(1)) == 2
    assert asyncio.run(fetch(1)) == 2 and CALLS == [1]

    def gen(n):
        yield from range(n)

    with pytest.raises(InvalidArgumentError, match="generator"):
        checkpoint(gen)


def test_restore_into_kinds():
    import pandas as pd

    from checkpoint_magic.core.inputs import restore_into

    a = np.zeros(3)
    assert restore_into(a, np.ones(3)) and a.tolist() == [1, 1, 1]
    d, s = {"a": 1}, {1}
    assert restore_into(d, {"b": 2}) and d == {"b": 2}
    assert restore_into(s, {3}) and s == {3}
    df = pd.DataFrame({"a": [1]})
    new = df.copy()
    new["z"] = 2
    assert restore_into(df, new) and list(df.columns) == ["a", "z"]
    assert not restore_into((1,), (2,))


# 4 and 7: InlineCheckpoint infers inputs and produced names ------------------------------------
def test_inline_infers_produced_names_and_inputs(script):
    src = """
        from checkpoint_magic import InlineCheckpoint

        x = 1
        CONFIG = {"factor": 2}

        def scale(v):
            return v * CONFIG["factor"]

        with InlineCheckpoint(watch=["x"]) as ck:
            q = scale(x) + 41
            print("computed")
        print(q, ck.hit)
    """
    out = runs(script, src, ("x = 1", "x = 1"), ('"factor": 2', '"factor": 3'), ("x = 1", "x = 2"))
    assert out == ["computed\n43 False", "43 True", "computed\n44 False", "computed\n47 False"]


def test_inline_infers_unwatched_reads_files_and_respects_ignore(script):
    (script.workdir / "data.csv").write_text("a\n1\n")
    src = """
        import pandas as pd
        from checkpoint_magic import InlineCheckpoint

        n = 2
        verbose = 0
        with InlineCheckpoint(ignore=["verbose"]) as ck:
            df = pd.read_csv("data.csv") * n
            if verbose:
                print("verbose")
        print(int(df["a"].sum()), ck.hit)
    """
    out = runs(script, src, ("n = 2", "n = 2"), ("verbose = 0", "verbose = 1"), ("n = 2", "n = 3"))
    assert out == ["2 False", "2 True", "2 True", "verbose\n3 False"]  # verbose: ignored
    (script.workdir / "data.csv").write_text("a\n5\n")
    assert script.run().stdout.split() == ["verbose", "15", "False"]


def test_explain_names_files_and_globals(script):
    (script.workdir / "data.csv").write_text("a\n1\n")
    src = """
        import logging
        from checkpoint_magic import checkpoint

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        CONFIG = {"factor": 2}

        @checkpoint
        def load(path):
            return open(path).read() * CONFIG["factor"]

        load("data.csv")
    """
    script.run(src)
    (script.workdir / "data.csv").write_text("a\n2\n")
    assert "file changed: data.csv" in script.run(src).stderr
    assert "global changed: CONFIG" in script.run(src.replace('"factor": 2', '"factor": 3')).stderr


def test_inline_without_source_and_nothing_to_infer_runs_uncached(store_dir):
    from checkpoint_magic import InlineCheckpoint
    from checkpoint_magic.exceptions import UncachedWarning

    code = "with InlineCheckpoint(store=store):\n    q = x + 41\n"
    ns = {"InlineCheckpoint": InlineCheckpoint, "store": store_dir, "x": 1}
    for x in (1, 2):  # never a stale hit: the data the block reads cannot be known
        ns["x"] = x
        with pytest.warns(UncachedWarning, match="cannot be inferred"):
            exec(compile(code, "<typed>", "exec"), ns)
        assert ns["q"] == x + 41


# -- wrong hits found by a review: data reached where the source text does not show it -------
def test_a_helper_default_holding_data_counts_by_value(script):
    src = """
        from checkpoint_magic import checkpoint

        K = [3]

        def helper(x, k=K, *, m=K):  # the text says k=K; the value is what counts
            return x * k[0] * m[0]

        @checkpoint
        def f(x):
            print("computing")
            return helper(x)

        print(f(2))
    """
    out = runs(script, src, ("K = [3]", "K = [3]"), ("K = [3]", "K = [4]"))
    assert out == ["computing\n18", "18", "computing\n32"]


def test_a_helper_default_changed_in_place_recomputes(store_dir):
    limits = [3]

    def helper(x, k=limits):
        return x * k[0]

    @checkpoint(store=store_dir)
    def f(x):
        CALLS.append(x)
        return helper(x)

    assert f(2) == f(2) == 6 and len(CALLS) == 1
    limits[0] = 4
    assert f(2) == 8 and len(CALLS) == 2


def test_globals_read_by_code_passed_in_are_inputs(script):
    (script.workdir / "ops.py").write_text("K = [3]\n\ndef triple(x):\n    return x * K[0]\n")
    src = """
        from checkpoint_magic import checkpoint
        from ops import triple

        SCALE = [10]

        class Scaler:
            def run(self, x):
                return x * SCALE[0]

        @checkpoint
        def apply(fns, model, x):
            print("computing")
            return [fn(x) for fn in fns] + [model.run(x)]

        print(apply([triple], Scaler(), 2))
    """
    out = runs(script, src, ("[10]", "[10]"), ("[10]", "[20]"))
    assert out == ["computing\n[6, 20]", "[6, 20]", "computing\n[6, 40]"]
    (script.workdir / "ops.py").write_text("K = [4]\n\ndef triple(x):\n    return x * K[0]\n")
    assert script.run().stdout.strip() == "computing\n[8, 40]"


def test_a_global_changed_by_code_passed_in_is_state(script):
    src = """
        from checkpoint_magic import checkpoint

        MEMO = {}

        def double(x):
            MEMO[x] = 2 * x
            return MEMO[x]

        @checkpoint
        def apply(fn, x):
            print("computing")
            return fn(x)

        print(apply(double, 4), apply(double, 4))
    """
    assert runs(script, src, ("2 * x", "2 * x")) == ["computing\n8 8", "8 8"]


def test_names_read_by_string_count(script):
    (script.workdir / "settings.py").write_text("RATE = [3]\n")
    src = """
        import settings
        from checkpoint_magic import checkpoint

        K = [10]

        def helper(x):
            return x + 1

        @checkpoint
        def f(x):
            print("computing")
            return globals()["helper"](x) * globals()["K"][0] * getattr(settings, "RATE")[0]

        print(f(1))
    """
    out = runs(script, src, ("[10]", "[10]"), ("[10]", "[20]"), ("x + 1", "x + 2"))
    assert out == ["computing\n60", "60", "computing\n120", "computing\n180"]
    (script.workdir / "settings.py").write_text("RATE = [4]\n")
    assert script.run().stdout.strip() == "computing\n240"


def test_environment_variables_the_code_reads_are_inputs(script):
    src = """
        import os
        from checkpoint_magic import checkpoint

        def scale():
            return int(os.getenv("CPM_SCALE", "1"))

        @checkpoint
        def f(x):
            print("computing")
            return x * scale() * int(os.environ.get("CPM_OFFSET", "1"))

        print(f(2))
    """
    outs = [
        script.run(src, env=env).stdout.strip()
        for env in (
            {"CPM_SCALE": "3"},
            {"CPM_SCALE": "3"},
            {"CPM_SCALE": "4"},
            {"CPM_SCALE": "4", "CPM_OFFSET": "2"},
        )
    ]
    assert outs == ["computing\n6", "6", "computing\n8", "computing\n16"]


def test_code_held_by_installed_callables_and_global_objects_counts(script):
    (script.workdir / "ops.py").write_text("K = [3]\n\ndef triple(x):\n    return x * K[0]\n")
    src = """
        import functools
        import numpy as np
        from checkpoint_magic import checkpoint
        from ops import triple

        SCALE = [10]

        def scale(x):
            return x * SCALE[0]

        class Box:
            def __init__(self, fn):
                self.fn = fn

        BOX = Box(triple)  # an object holding a function that reads a global of its module
        VEC = np.vectorize(scale)

        @functools.singledispatch
        def shift(x):
            return x

        @shift.register
        def _(x: int):
            return x + 1

        @checkpoint
        def f(x):
            print("computing")
            return [BOX.fn(x), int(VEC(x)), shift(x)]

        print(f(2))
    """
    out = runs(script, src, ("[10]", "[10]"), ("[10]", "[20]"), ("x + 1", "x + 2"))
    assert out == ["computing\n[6, 20, 3]", "[6, 20, 3]", "computing\n[6, 40, 3]", "computing\n[6, 40, 4]"]
    (script.workdir / "ops.py").write_text("K = [4]\n\ndef triple(x):\n    return x * K[0]\n")
    assert script.run().stdout.strip() == "computing\n[8, 40, 4]"


def test_a_ufunc_made_by_frompyfunc_is_refused_not_trusted(store_dir):
    from checkpoint_magic.exceptions import UncachedWarning

    twice = np.frompyfunc(lambda v: 2 * v, 1, 1)

    @checkpoint(store=store_dir)
    def f(x):
        CALLS.append(x)
        return int(twice(x))

    for _ in range(2):  # the function it runs cannot be read: uncached, never a stale hit
        with pytest.warns(UncachedWarning, match="frompyfunc"):
            assert f(2) == 4
    assert len(CALLS) == 2


def test_a_compiled_ufunc_without_a_module_is_trusted_like_any_installed_code(store_dir):
    # scipy.special's ufuncs (C code, no __module__) are not made by numpy.frompyfunc: was
    # refused with an UncachedWarning on every call.
    special = pytest.importorskip("scipy.special")
    erf = special.erf

    @checkpoint(store=store_dir)
    def f(x):
        CALLS.append(x)
        return float(erf(x))

    assert f(0.5) == f(0.5) and len(CALLS) == 1


LIMITS = [3]


def _times(x, k):
    return x * k[0]


TIMES = functools.partial(_times, k=LIMITS)


def test_a_global_partial_bound_to_data_counts_by_value(store_dir):
    @checkpoint(store=store_dir)
    def f(x):
        CALLS.append(x)
        return TIMES(x)

    assert f(2) == f(2) == 6 and len(CALLS) == 1
    LIMITS[0] = 4
    try:
        assert f(2) == 8 and len(CALLS) == 2
    finally:
        LIMITS[0] = 3


def test_files_named_by_helpers_globals_and_containers_count_by_content(script):
    for name in ("a.csv", "b.csv", "c.csv", "d.csv", "e.csv"):
        (script.workdir / name).write_text("1\n")
    src = """
        import dataclasses
        import pathlib
        from checkpoint_magic import checkpoint

        B = "b.csv"
        C = pathlib.Path("c.csv")

        @dataclasses.dataclass
        class Config:
            path: str

        def load_a():
            return open("a.csv").read()

        @checkpoint
        def f(paths, cfg):
            print("computing")
            texts = [load_a(), open(B).read(), C.read_text()]
            texts += [open(p).read() for p in paths] + [open(cfg.path).read()]
            return "".join(texts).split()

        print(f(["d.csv"], Config("e.csv")))
    """
    assert script.run(src).stdout.strip() == "computing\n['1', '1', '1', '1', '1']"
    assert script.run(src).stdout.strip() == "['1', '1', '1', '1', '1']"
    for n, name in enumerate(("a.csv", "b.csv", "c.csv", "d.csv", "e.csv"), start=2):
        (script.workdir / name).write_text(f"{n}\n")  # one file at a time: each counts
        out = script.run(src).stdout.strip()
        assert out.startswith("computing\n") and f"'{n}'" in out, (name, out)


def test_a_global_with_a_part_that_cannot_be_fingerprinted_still_counts(script):
    src = """
        import threading
        import types
        from checkpoint_magic import checkpoint

        class Config:
            def __init__(self, k):
                self.lock = threading.Lock()  # counts by its type; k by its value
                self.k = k

        CFG = Config(3)
        LIMITS = types.MappingProxyType({"n": 10})

        @checkpoint
        def f(x):
            print("computing")
            with CFG.lock:
                return x * CFG.k * LIMITS["n"]

        print(f(2))
    """
    out = runs(script, src, ("Config(3)", "Config(3)"), ("Config(3)", "Config(4)"), ('"n": 10', '"n": 20'))
    assert out == ["computing\n60", "60", "computing\n80", "computing\n160"]


def test_a_user_module_passed_as_a_value_counts_by_what_it_holds(script):
    (script.workdir / "ops.py").write_text("K = [3]\n\ndef helper(x):\n    return x * 10\n")
    src = """
        import ops
        from checkpoint_magic import checkpoint

        @checkpoint
        def f(cfg, x):
            print("computing")
            return cfg["ops"].helper(x) + cfg["ops"].K[0]

        print(f({"ops": ops}, 2))
    """
    assert [script.run(src).stdout.strip() for _ in range(2)] == ["computing\n23", "23"]
    (script.workdir / "ops.py").write_text("K = [3]\n\ndef helper(x):\n    return x * 20\n")
    assert script.run(src).stdout.strip() == "computing\n43"
    (script.workdir / "ops.py").write_text("K = [4]\n\ndef helper(x):\n    return x * 20\n")
    assert script.run(src).stdout.strip() == "computing\n44"


def test_a_dict_key_that_names_the_global_holding_the_result_is_not_an_input(script):
    # The code calls getattr, so its string constants were all taken as names read by
    # string: "model" made the global `model` (the last result) an input, and every call
    # after the first missed.
    src = """
        import random
        from checkpoint_magic import checkpoint

        @checkpoint
        def fit(n):
            print("computing")
            m = {"w": random.random()}
            return {"model": m, "n": getattr(m, "get")("w") * 0 + n}

        for _ in range(3):
            out = fit(2)
            model = out["model"]
        print(out["n"])
    """
    assert script.run(src).stdout.strip() == "computing\n2.0"


class _Proxy:
    """A proxy whose attribute access raises (a remote handle, a lazy module stand-in)."""

    __slots__ = ("target",)

    def __init__(self, target):
        object.__setattr__(self, "target", target)

    def __getattr__(self, name):
        raise RuntimeError(f"no attribute {name!r} on a proxy")

    def __reduce__(self):
        return (_Proxy, (self.target,))


def test_an_argument_whose_getattr_raises_is_fingerprinted_not_refused(store_dir):
    # Looking for paths inside it asked hasattr(value, "__dict__"), which ran its
    # __getattr__: RuntimeError, so every call was uncached with a warning.
    @checkpoint(store=store_dir)
    def f(p, x):
        CALLS.append(x)
        return x

    assert f(_Proxy(3), 2) == f(_Proxy(3), 2) == 2 and len(CALLS) == 1


def test_a_path_global_naming_the_project_folder_is_not_an_input(script):
    # ROOT = Path(__file__).parent held the store itself (changed by every miss) and the
    # whole project: it never hit, and every call stat'ed every file of the project.
    (script.workdir / "data.csv").write_text("1")
    script.run("from checkpoint_magic import checkpoint\ncheckpoint(abs)(1)\n")  # a store
    src = """
        import pathlib
        from checkpoint_magic import checkpoint

        ROOT = pathlib.Path(__file__).resolve().parent

        @checkpoint
        def load(n):
            print("computing")
            return int((ROOT / "data.csv").read_text()) + n

        print(load(1), load(1))
    """
    assert script.run(src).stdout.strip() == "computing\n2 2"
    (script.workdir / "notes.txt").write_text("unrelated")
    assert script.run(src).stdout.strip() == "2 2"


def test_the_temporary_folder_named_by_a_helper_is_not_an_input(store_dir):
    # A helper's os.path.join("/tmp", name) made the whole temporary folder an input: any
    # process writing there made the next call miss.
    import tempfile

    ns: dict = {"os": os}
    exec(f"def scratch(name):\n    return os.path.join({tempfile.gettempdir()!r}, name)\n", ns)
    scratch = ns["scratch"]

    @checkpoint(store=store_dir)
    def f(x):
        CALLS.append(x)
        return len(scratch("x")) * 0 + x

    assert f(2) == 2
    with tempfile.NamedTemporaryFile(prefix="cpm-other-"):  # another process's scratch
        assert f(2) == 2 and len(CALLS) == 1


def test_an_environment_variable_the_code_sets_itself_is_not_an_input(script):
    # os.environ["OMP_NUM_THREADS"] = "1" in the function: unset on the first call of a
    # process, set on the next ones, two keys: the second call missed.
    src = """
        import os
        from checkpoint_magic import checkpoint

        @checkpoint
        def f(x):
            os.environ["CPM_TEST_THREADS"] = "1"
            print("computing")
            return x * int(os.environ["CPM_TEST_THREADS"])

        print(f(2), f(2))
    """
    assert script.run(src).stdout.strip() == "computing\n2 2"


def test_a_file_handle_open_only_for_writing_is_not_an_input(script):
    # A log handle grows with every write by anyone: as an input, every run after a write
    # missed. A handle open for reading still counts by the file's content.
    (script.workdir / "data.txt").write_text("1")
    src = """
        from checkpoint_magic import checkpoint

        LOG = open("run.log", "a")
        SRC = open("data.txt")

        @checkpoint
        def f(x):
            print("computing")
            LOG.write("f\\n")
            return x * int(SRC.read())

        print(f(2))
        LOG.write("something else\\n")
    """
    assert [script.run(src).stdout.strip() for _ in range(2)] == ["computing\n2", "2"]
    (script.workdir / "data.txt").write_text("3")
    assert script.run(src).stdout.strip() == "computing\n6"


def test_a_user_module_whose_data_holds_the_module_itself_is_still_fingerprinted(script):
    # REG = [this module] sent each attribute walk back into the module: RecursionError,
    # so every call was uncached with a warning.
    (script.workdir / "plugins.py").write_text(
        "import sys\n\nK = [3]\nREG = {'me': sys.modules[__name__]}\n"
    )
    src = """
        import plugins
        from checkpoint_magic import checkpoint

        @checkpoint
        def f(mod, x):
            print("computing")
            return mod.K[0] * x

        print(f(plugins, 2))
    """
    assert [script.run(src).stdout.strip() for _ in range(2)] == ["computing\n6", "6"]
    (script.workdir / "plugins.py").write_text(
        "import sys\n\nK = [4]\nREG = {'me': sys.modules[__name__]}\n"
    )
    assert script.run(src).stdout.strip() == "computing\n8"


def test_a_partial_bound_to_data_in_a_closure_or_a_class_counts_by_value(store_dir):
    limits = [3]
    times = functools.partial(_times, k=limits)

    class Scaler:
        op = functools.partial(_times, k=limits)

    @checkpoint(store=store_dir)
    def f(x):
        CALLS.append(x)
        return times(x) + Scaler.op(x)

    assert f(2) == f(2) == 12 and len(CALLS) == 1
    limits[0] = 4
    assert f(2) == 16 and len(CALLS) == 2


def test_a_global_named_in_a_pandas_query_string_is_an_input(script):
    src = """
        import pandas as pd
        from checkpoint_magic import checkpoint

        LIMIT = 3

        @checkpoint
        def count(n):
            print("computing")
            return len(pd.DataFrame({"a": range(n)}).query("a > @LIMIT"))

        print(count(10))
    """
    out = runs(script, src, ("LIMIT = 3", "LIMIT = 3"), ("LIMIT = 3", "LIMIT = 5"))
    assert out == ["computing\n6", "6", "computing\n4"]


def test_a_file_read_through_an_open_handle_counts_by_content(script):
    (script.workdir / "data.csv").write_text("1\n")
    src = """
        from checkpoint_magic import checkpoint

        SOURCE = open("da" + "ta.csv")  # no constant names the file: the handle does

        @checkpoint
        def f(x):
            print("computing")
            return int(SOURCE.read()) * x

        print(f(2))
    """
    assert [script.run(src).stdout.strip() for _ in range(2)] == ["computing\n2", "2"]
    (script.workdir / "data.csv").write_text("5\n")
    assert script.run(src).stdout.strip() == "computing\n10"
