"""Tests for checkpoint_magic.fingerprint.code: code fingerprints of functions, methods, classes and snippets."""

from __future__ import annotations

import functools
import gc
import importlib.util
import json
import sys
import textwrap
import types
import weakref
from pathlib import Path

import numpy as np
import pytest

from checkpoint_magic.exceptions import FingerprintError
from checkpoint_magic.fingerprint import bytecode, origin
from checkpoint_magic.fingerprint import code as codehash
from checkpoint_magic.fingerprint.code import (
    code_fingerprint,
    code_inputs,
    code_parts,
    is_user_code,
    package_version,
    referenced_names,
    source_fingerprint,
)


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write ``source`` to a fresh directory and import it as module ``name`` (replacing any earlier one)."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc when a file is rewritten
    names: set[str] = set()
    counter = iter(range(10**6))

    def _load(source: str, name: str = "cm_case", path: Path | None = None) -> types.ModuleType:
        if path is None:
            path = tmp_path / f"v{next(counter)}" / f"{name}.py"
            path.parent.mkdir()
        path.write_text(textwrap.dedent(source))
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        names.add(name)
        spec.loader.exec_module(module)
        return module

    yield _load
    for name in names:
        sys.modules.pop(name, None)


def exec_ns(source: str, ns: dict | None = None) -> dict:
    """Run ``source`` in a namespace (functions made this way have no retrievable source)."""
    ns = {} if ns is None else ns
    exec(textwrap.dedent(source), ns)
    return ns


BASE = '''
def f(a, b=2):
    """Add a and b, then triple."""
    total = a + b
    return total * 3
'''

SAME_CODE = [
    '''
    def f(a, b=2):
        """Add a and b, then triple."""
        # a comment
        total = a + b  # trailing comment

        return total * 3
    ''',
    '''
    def f(a,b = 2):
        """A completely different docstring."""
        total = (a +
                 b)
        return total*3
    ''',
    """


    def f(a, b=2):
        total = a + b
        return total * 3
    """,
]

DIFFERENT_CODE = [
    BASE.replace("a + b", "a - b"),  # operator
    BASE.replace("* 3", "* 4"),  # constant
    BASE.replace("total", "subtotal"),  # name
    BASE.replace("b=2", "b=5"),  # argument default
    BASE.replace("    return", "    total += 1\n    return"),  # added statement
    BASE.replace("(a, b=2)", "(a, *, b=2)"),  # signature
]


def test_comment_whitespace_and_docstring_edits_keep_the_fingerprint(load):
    base = code_fingerprint(load(BASE).f)
    assert len(base) == 32 and int(base, 16) >= 0
    for source in SAME_CODE:
        assert code_fingerprint(load(source).f) == base, source


def test_semantic_edits_change_the_fingerprint(load):
    fps = [code_fingerprint(load(BASE).f)] + [code_fingerprint(load(s).f) for s in DIFFERENT_CODE]
    assert len(set(fps)) == len(fps)


def test_source_is_used_when_available(load):
    f = load(BASE).f
    assert bytecode.function_ast(f.__code__) is not None


def test_exec_defined_functions_fall_back_to_bytecode():
    f1 = exec_ns(BASE)["f"]
    f2 = exec_ns(BASE)["f"]
    assert bytecode.function_ast(f1.__code__) is None  # no source: bytecode only
    assert f1 is not f2
    assert code_fingerprint(f1) == code_fingerprint(f2)
    # comments, docstring
    assert code_fingerprint(exec_ns(SAME_CODE[0])["f"]) == code_fingerprint(f1)
    different = {code_fingerprint(exec_ns(s)["f"]) for s in DIFFERENT_CODE}
    assert len(different) == len(DIFFERENT_CODE) and code_fingerprint(f1) not in different


def test_docstring_equal_to_a_returned_literal_is_not_dropped():
    f1 = exec_ns('def f():\n    "x"\n    return "x"\n')["f"]
    f2 = exec_ns('def f():\n    "y"\n    return "y"\n')["f"]
    assert code_fingerprint(f1) != code_fingerprint(f2)


def test_lambda(load):
    base = code_fingerprint(load("f = lambda x: x + 1\n").f)
    assert bytecode.function_ast(load("f = lambda x: x + 1\n").f.__code__) is not None
    assert code_fingerprint(load("f = lambda x: x+1  # one more\n").f) == base
    assert code_fingerprint(load("f = lambda x: x + 2\n").f) != base
    two = load("f, g = lambda x: x + 1, lambda x: x * 2\n")  # ambiguous line: bytecode only
    assert code_fingerprint(two.f) != code_fingerprint(two.g)
    assert code_fingerprint(eval("lambda x: x + 1")) == code_fingerprint(eval("lambda x: x + 1"))
    assert code_fingerprint(eval("lambda x: x + 1")) != code_fingerprint(eval("lambda x: x - 1"))


def make_multiplier(k):
    def f(x):
        return x * k

    return f


def test_closure_values_count():
    assert code_fingerprint(make_multiplier(2)) == code_fingerprint(make_multiplier(2))
    assert code_fingerprint(make_multiplier(2)) != code_fingerprint(make_multiplier(3))
    assert code_fingerprint(make_multiplier(2)) != code_fingerprint(make_multiplier(2.0))


def test_closure_values_are_rehashed_on_cached_calls():
    values = [1, 2]

    def f():
        return sum(values)

    before = code_fingerprint(f)
    assert code_fingerprint(f) == before
    values.append(3)
    assert code_fingerprint(f) != before
    values.pop()
    assert code_fingerprint(f) == before


def test_code_inputs_hashes_a_closure_value_once_per_call(monkeypatch):
    from checkpoint_magic.fingerprint import codecache

    values = np.arange(1000)

    def f():
        return values.sum()

    hashed = []
    real = codecache.value_fp
    monkeypatch.setattr(codecache, "value_fp", lambda v: hashed.append(v) or real(v))
    first = code_inputs(f)
    hashed.clear()
    assert code_inputs(f) == first  # a call of a cached function: its closure hashed again...
    assert len(hashed) == 1  # ...once (it was twice: for the fingerprint, then for the inputs)
    values[0] = 7
    assert code_inputs(f)[0] != first[0]


def test_functions_in_closures_are_followed():
    def compose(helper):
        def f(x):
            return helper(x) + 1

        return f

    g1 = exec_ns("def g(x):\n    return x * 2\n")["g"]
    g2 = exec_ns("def g(x):\n    return x * 3\n")["g"]
    g1_again = exec_ns("def g(x):\n    return x * 2\n")["g"]
    assert code_fingerprint(compose(g1)) != code_fingerprint(compose(g2))
    assert code_fingerprint(compose(g1)) == code_fingerprint(compose(g1_again))
    assert "<exec>.g" in code_parts(compose(g1))


def test_empty_closure_cells():
    def outer():
        def f():
            return later

        fp_empty = code_fingerprint(f)
        later = 1
        return fp_empty, code_fingerprint(f)

    empty, filled = outer()
    assert empty != filled


MODULE_V1 = """
import numpy as np

SCALE = 3

def helper(x):
    return x + 1

def other(x):
    return x - 1

def f(x):
    return helper(x) * SCALE + np.sum([x])
"""


def test_helper_edit_invalidates_the_caller_but_unrelated_edits_do_not(load):
    v1 = load(MODULE_V1)
    fp1, parts1 = code_fingerprint(v1.f), code_parts(v1.f)
    assert set(parts1) == {"cm_case.f", "cm_case.helper"}
    v2 = load(MODULE_V1.replace("x + 1", "x + 2"))
    fp2, parts2 = code_fingerprint(v2.f), code_parts(v2.f)
    assert fp2 != fp1
    assert (
        parts2["cm_case.f"] == parts1["cm_case.f"]
        and parts2["cm_case.helper"] != parts1["cm_case.helper"]
    )
    v3 = load(MODULE_V1.replace("x - 1", "x - 7"))  # only `other` changed
    assert code_fingerprint(v3.f) == fp1
    v4 = load(MODULE_V1.replace("SCALE = 3", "SCALE = 4"))  # a global constant the code reads
    assert code_fingerprint(v4.f) != fp1


def test_helper_in_a_user_module_used_as_an_attribute(load):
    main_source = "import cm_helpers\n\ndef f(x):\n    return cm_helpers.g(x)\n"
    load("def g(x):\n    return x * 2\n\ndef unused():\n    return 0\n", name="cm_helpers")
    main = load(main_source, name="cm_main")
    fp1 = code_fingerprint(main.f)
    assert "cm_helpers.g" in code_parts(main.f) and "cm_helpers.unused" not in code_parts(main.f)
    load("def g(x):\n    return x * 2\n\ndef unused():\n    return 1\n", name="cm_helpers")
    assert code_fingerprint(load(main_source, name="cm_main").f) == fp1
    load("def g(x):\n    return x * 3\n", name="cm_helpers")
    assert code_fingerprint(load(main_source, name="cm_main").f) != fp1
    assert code_fingerprint(main.f) == fp1  # the old function still calls the old module's g


def test_exec_defined_helpers_rebinding_is_noticed():
    ns = exec_ns("""
        def helper(x):
            return x + 1

        def other():
            return 0

        def f(x):
            return helper(x) * 2
        """)
    f = ns["f"]
    fp1 = code_fingerprint(f)
    assert code_fingerprint(f) == fp1  # cached
    exec_ns("def helper(x):\n    return x + 2\n", ns)  # a notebook re-running a cell
    fp2 = code_fingerprint(f)
    assert fp2 != fp1
    exec_ns("def helper(x):\n    return x + 1\n", ns)  # back to the first version
    assert code_fingerprint(f) == fp1
    exec_ns("def other():\n    return 5\n", ns)
    assert code_fingerprint(f) == fp1


def test_replacing_code_in_place_is_noticed():
    ns = exec_ns("def f(x):\n    return x + 1\n")
    f = ns["f"]
    fp1 = code_fingerprint(f)
    f.__code__ = exec_ns("def f(x):\n    return x + 2\n")["f"].__code__  # what autoreload does
    assert code_fingerprint(f) != fp1
    f.__defaults__ = (3,)
    fp3 = code_fingerprint(f)
    f.__defaults__ = (4,)
    assert code_fingerprint(f) != fp3


def test_global_constants_count_but_data_does_not():
    ns = exec_ns("N = 3\nDATA = [1, 2]\ndef f():\n    return N + len(DATA)\n")
    fp1 = code_fingerprint(ns["f"])
    ns["N"] = 4
    assert code_fingerprint(ns["f"]) != fp1
    ns["N"] = 3
    ns["DATA"] = [5, 6, 7]  # data is an input: pass it as an argument
    assert code_fingerprint(ns["f"]) == fp1
    ns["DATA"] = exec_ns("def DATA():\n    return 1\n")["DATA"]  # became code: followed
    assert code_fingerprint(ns["f"]) != fp1
    assert "<exec>.DATA" in code_parts(ns["f"])


def test_shadowing_a_builtin_is_noticed():
    ns = exec_ns("def f(x):\n    return len(x)\n")
    fp1 = code_fingerprint(ns["f"])
    exec_ns("def len(x):\n    return 0\n", ns)
    assert code_fingerprint(ns["f"]) != fp1


MUTUAL = """
def even(n):
    return True if n == 0 else odd(n - 1)

def odd(n):
    return False if n == 0 else even(n - 1)

def fact(n):
    return 1 if n <= 1 else n * fact(n - 1)
"""


def test_recursion_terminates(load):
    m = load(MUTUAL)
    assert code_fingerprint(m.even) != code_fingerprint(m.odd)
    assert set(code_parts(m.even)) == {"cm_case.even", "cm_case.odd"}
    assert len(code_fingerprint(m.fact)) == 32
    ns = exec_ns(MUTUAL)
    assert code_fingerprint(ns["even"]) != code_fingerprint(ns["odd"])


CLASS = """
class Model:
    '''A model.'''
    RATE = 0.5

    def predict(self, x):
        return self.transform(x) * self.RATE

    def transform(self, x):
        return x + 1

    @staticmethod
    def unit():
        return 1

    @classmethod
    def make(cls):
        return cls()

    @property
    def size(self):
        return 3
"""


def test_class_defined_by_exec():
    base = exec_ns(CLASS)["Model"]
    assert is_user_code(base)
    fp = code_fingerprint(base)
    assert code_fingerprint(exec_ns(CLASS)["Model"]) == fp
    assert code_fingerprint(exec_ns(CLASS.replace("A model.", "Another docstring."))["Model"]) == fp
    for old, new in [
        ("x + 1", "x + 2"),
        ("0.5", "0.25"),
        ("return 1", "return 2"),
        ("return cls()", "return None"),
        ("return 3", "return 4"),
    ]:
        assert code_fingerprint(exec_ns(CLASS.replace(old, new))["Model"]) != fp, new
    assert {"<exec>.Model", "<exec>.Model.predict", "<exec>.Model.transform"} <= set(
        code_parts(base)
    )


def test_methods_include_their_class():
    m1 = exec_ns(CLASS)["Model"]()
    m2 = exec_ns(CLASS.replace("x + 1", "x + 2"))["Model"]()  # predict unchanged, transform edited
    assert code_fingerprint(m1.predict) != code_fingerprint(m2.predict)
    assert code_fingerprint(m1.predict) == code_fingerprint(exec_ns(CLASS)["Model"]().predict)
    assert code_fingerprint(m1.predict) != code_fingerprint(m1.transform)
    assert "<exec>.Model" in code_parts(m1.predict)
    assert code_fingerprint(type(m1).make) == code_fingerprint(m1.make)


def test_a_plain_method_function_finds_its_class_through_its_qualname():
    ns = exec_ns(CLASS)
    old_predict = ns["Model"].predict  # a plain function, as @checkpoint sees a method
    fp = code_fingerprint(old_predict)
    assert "<exec>.Model" in code_parts(old_predict)
    exec_ns(CLASS.replace("x + 1", "x + 2"), ns)  # the class cell is edited and re-run
    new_fp = code_fingerprint(ns["Model"].predict)
    assert new_fp != fp
    # the old function is not a member of the class its name now refers to: neither fingerprint
    assert code_fingerprint(old_predict) not in (fp, new_fp)


def test_subclass_and_dataclass():
    ns = exec_ns(CLASS + "\nclass Child(Model):\n    def transform(self, x):\n        return x\n")
    ns2 = exec_ns(
        CLASS.replace("0.5", "0.7")
        + "\nclass Child(Model):\n    def transform(self, x):\n        return x\n"
    )
    assert code_fingerprint(ns["Child"]) != code_fingerprint(ns2["Child"])  # a user base counts
    src = (
        "import dataclasses\n@dataclasses.dataclass\nclass P:\n    x: int = 1\n    y: list = None\n"
    )
    assert code_fingerprint(exec_ns(src)["P"]) == code_fingerprint(exec_ns(src)["P"])
    assert code_fingerprint(exec_ns(src)["P"]) != code_fingerprint(
        exec_ns(src.replace("= 1", "= 2"))["P"]
    )
    assert code_fingerprint(exec_ns(src)["P"]) != code_fingerprint(
        exec_ns(src.replace("int", "float"))["P"]
    )


def test_partial_and_wrapped():
    f1 = exec_ns("def f(x, y):\n    return x + y\n")["f"]
    f2 = exec_ns("def f(x, y):\n    return x - y\n")["f"]
    assert code_fingerprint(functools.partial(f1, 1)) == code_fingerprint(functools.partial(f1, 1))
    assert code_fingerprint(functools.partial(f1, 1)) != code_fingerprint(functools.partial(f1, 2))
    assert code_fingerprint(functools.partial(f1, 1)) != code_fingerprint(functools.partial(f2, 1))
    assert code_fingerprint(functools.partial(f1, y=1)) != code_fingerprint(
        functools.partial(f1, 1)
    )
    assert code_parts(functools.partial(f1, 1)) == code_parts(f1)
    assert code_fingerprint(functools.lru_cache(f1)) != code_fingerprint(functools.lru_cache(f2))
    assert code_fingerprint(functools.lru_cache(f1)) == code_fingerprint(functools.lru_cache(f1))
    ns = exec_ns(
        "import functools\ndef g(x):\n    return x\ncached = functools.lru_cache(g)\n"
        "def f(x):\n    return cached(x)\n"
    )
    assert "<exec>.g" in code_parts(ns["f"])


def test_installed_code_counts_by_name_and_version(monkeypatch: pytest.MonkeyPatch):
    assert not is_user_code(np.mean) and not is_user_code(json.dumps)
    fp = code_fingerprint(np.mean)
    assert fp == code_fingerprint(np.mean) != code_fingerprint(np.median)
    assert list(code_parts(np.mean)) == ["numpy.mean"]
    user = exec_ns("import numpy as np\ndef f(x):\n    return np.mean(x)\n")["f"]
    user_fp = code_fingerprint(user)
    monkeypatch.setattr(origin, "package_version", lambda module: "999.0")
    assert code_fingerprint(np.mean) != fp
    assert (
        code_fingerprint(exec_ns("import numpy as np\ndef f(x):\n    return np.mean(x)\n")["f"])
        != user_fp
    )


def test_stale_source_never_gives_the_new_codes_fingerprint(load, tmp_path: Path):
    path = tmp_path / "stale" / "cm_stale.py"
    path.parent.mkdir()
    old = load("def f(x):\n    return x + 1\n", name="cm_stale", path=path)
    path.write_text("def f(x):\n    return x + 2\n")  # edited after import, not reloaded
    stale_fp = code_fingerprint(old.f)
    assert old.f(1) == 2  # still the old code running
    new = load("def f(x):\n    return x + 2\n", name="cm_stale", path=path)
    assert new.f(1) == 3
    assert code_fingerprint(new.f) != stale_fp
    # lines shifted by the edit: the file no longer lines up with the running code
    old2 = load("def f(x):\n    return x * 10\n", name="cm_stale", path=path)
    shifted = "import os\n\n\ndef g():\n    pass\n\ndef f(x):\n    return x * 20\n"
    path.write_text(shifted)
    assert code_fingerprint(old2.f) != code_fingerprint(load(shifted, name="cm_stale", path=path).f)


STABLE_MODULE = """
import numpy as np

LABELS = frozenset({"a", "b", "c", 1, 2.5, (1, "x")})

def helper(x):
    return x in {"alpha", "beta", "gamma", "delta"}

def make(k):
    def inner(x):
        return helper(x) and k
    return inner

class Thing:
    KINDS = ("p", "q")
    def run(self, x):
        return np.mean(x) + len(LABELS)

def f(x):
    return helper(x), Thing().run([x]), make(x)
"""


def test_fingerprints_are_stable_across_processes(load, script):
    m = load(STABLE_MODULE, name="cm_stable")
    expected = json.dumps(
        [
            code_fingerprint(m.f),
            code_fingerprint(m.make(3)),
            code_fingerprint(m.Thing),
            code_fingerprint(m.Thing().run),
            code_parts(m.f),
        ]
    )
    script.write(STABLE_MODULE, "cm_stable.py")
    program = textwrap.dedent("""
        import json, sys
        import cm_stable as m
        from checkpoint_magic.fingerprint.code import code_fingerprint, code_parts
        print(json.dumps([code_fingerprint(m.f), code_fingerprint(m.make(3)), code_fingerprint(m.Thing),
                          code_fingerprint(m.Thing().run), code_parts(m.f)]))
        """)
    outputs = {
        script.run(program, "run_fp.py", env={"PYTHONHASHSEED": seed}).stdout.strip()
        for seed in ("0", "4242")
    }
    assert outputs == {expected}


def test_is_user_code():
    assert is_user_code(make_multiplier) and is_user_code(sys.modules[__name__])
    assert is_user_code(exec_ns("def f():\n    pass\n")["f"])
    assert is_user_code(exec_ns("class A:\n    pass\n")["A"])
    assert is_user_code(eval("lambda: 0"))
    assert not is_user_code(np) and not is_user_code(json) and not is_user_code(np.ndarray)
    assert not is_user_code(len) and not is_user_code(int) and not is_user_code(types.FunctionType)
    assert not is_user_code(code_fingerprint) and not is_user_code(codehash)
    assert not is_user_code(pytest.fixture)
    main = types.FunctionType(make_multiplier.__code__, {"__name__": "__main__"})
    assert is_user_code(main)


def test_package_version():
    assert package_version(np) == np.__version__ == package_version("numpy.linalg")
    assert (
        package_version("json")
        == package_version(json)
        == "python-{}.{}".format(*sys.version_info[:2])
    )
    assert package_version("cm_not_a_module_at_all") is None
    assert package_version("pytest") == pytest.__version__


def test_not_code_raises():
    with pytest.raises(FingerprintError):
        code_fingerprint(42)
    with pytest.raises(TypeError):  # FingerprintError is a TypeError
        code_fingerprint("not code")


def test_callable_instance_counts_by_its_class():
    ns = exec_ns("class Op:\n    def __call__(self, x):\n        return x\n")
    assert code_fingerprint(ns["Op"]()) == code_fingerprint(ns["Op"])


def test_source_fingerprint():
    base = source_fingerprint("x = load(path)\ny = x.mean()\n")
    assert source_fingerprint("    x = load(path)  # read\n\n    y = x.mean()\n") == base
    assert source_fingerprint("x = load( path )\ny = x.mean(  )") == base
    assert source_fingerprint("x = load(path)\ny = x.sum()\n") != base
    assert source_fingerprint("def f():\n    'doc'\n    return 1\n") == source_fingerprint(
        "def f():\n    return 1\n"
    )
    # a cell's only value is displayed
    assert source_fingerprint("'shown'") != source_fingerprint("'other'")
    assert source_fingerprint("x = (\n") != source_fingerprint("y = (\n")  # unparseable: by text


def test_referenced_names():
    assert referenced_names("y = np.mean(x) + helper(z)\n") == {"np", "x", "helper", "z"}
    assert referenced_names(make_multiplier) == set()
    ns = exec_ns("import numpy as np\ndef f(a):\n    import os.path\n    return np.sum(a) + G\n")
    assert referenced_names(ns["f"]) == {"np", "G", "os"}


def test_cache_entries_die_with_their_functions():
    ns = exec_ns("def helper():\n    return 1\n\ndef f():\n    return helper()\n")
    f = ns["f"]
    code_fingerprint(f)
    key, ref = id(f), weakref.ref(f)
    assert key in codehash.CODE_CACHE
    del f, ns
    gc.collect()
    assert ref() is None and key not in codehash.CODE_CACHE


def test_a_function_inside_its_own_closure_value():
    functions: list = []

    def f():
        return functions

    functions.append(f)
    assert code_fingerprint(f) == code_fingerprint(f)


def test_checkpointed_helpers_and_methods_are_followed(tmp_path: Path):
    from checkpoint_magic.decorator import checkpoint

    source = """
        def g(x):
            return x + 1

        def f(x):
            return helper(x)

        class A:
            @checkpoint(store=STORE)
            def meth(self, x):
                return self.other(x)

            def other(self, x):
                return x * 2
        """

    def namespace(text: str) -> dict:
        ns = exec_ns(
            f"helper = None\n{textwrap.dedent(text)}",
            {"checkpoint": checkpoint, "STORE": str(tmp_path)},
        )
        ns["helper"] = checkpoint(store=str(tmp_path))(ns["g"])
        return ns

    ns1, ns2 = namespace(source), namespace(source.replace("x + 1", "x + 5"))
    assert "<exec>.g" in code_parts(ns1["f"])
    assert code_fingerprint(ns1["f"]) != code_fingerprint(ns2["f"])
    ns3 = namespace(source.replace("x * 2", "x * 3"))  # meth unchanged, the method it calls edited
    meth1, meth3 = ns1["A"].meth.__wrapped__, ns3["A"].meth.__wrapped__
    assert code_fingerprint(meth1) != code_fingerprint(meth3)
    assert "<exec>.A" in code_parts(meth1)


def test_notebook_cells(script):
    """In an IPython shell: functions and classes defined in cells; re-running a cell with an edit."""
    program = textwrap.dedent("""
        from IPython.core.interactiveshell import InteractiveShell
        ip = InteractiveShell.instance()
        cells = [
            "from checkpoint_magic.fingerprint.code import code_fingerprint, code_parts\\n"
            "from checkpoint_magic.fingerprint.bytecode import function_ast",
            "def helper(x):\\n    return x + 1\\n",
            "class K:\\n    def m(self):\\n        return helper(1)\\n",
            "def f(x):\\n    return helper(x) + K().m()\\n",
            "fp1 = code_fingerprint(f)",
            "print(sorted(code_parts(f)), function_ast(f.__code__) is not None)",
            "def helper(x):\\n    return x + 2\\n",
            "print(code_fingerprint(f) != fp1)",
            "def helper(x):\\n    # the first version again\\n    return x + 1\\n",
            "print(code_fingerprint(f) == fp1)",
            "class K:\\n    def m(self):\\n        return helper(2)\\n",
            "print(code_fingerprint(f) != fp1)",
        ]
        for cell in cells:
            ip.run_cell(cell).raise_error()
        """)
    out = script.run(program, "notebook_cells.py").stdout.split("\n")
    assert out[:4] == [
        "['__main__.K', '__main__.K.m', '__main__.f', '__main__.helper'] True",
        "True",
        "True",
        "True",
    ]


# -- class data attributes and instances of user classes -------------------------------------------
DATA_CLASS = """
import numpy as np

class A:
    params = {"lr": 0.1}
    layers = [1, 2]
    weights = np.arange(3.0)
    nested = ((1, [2]),)

    def f(self):
        return self.params["lr"]
"""


def test_class_data_attributes_count():
    from checkpoint_magic.fingerprint.values import fingerprint

    base = exec_ns(DATA_CLASS)["A"]
    assert code_fingerprint(exec_ns(DATA_CLASS)["A"]) == code_fingerprint(base)
    assert fingerprint(exec_ns(DATA_CLASS)["A"]()) == fingerprint(base())
    for old, new in [("0.1", "0.2"), ("[1, 2]", "[1, 3]"), ("arange(3.0)", "arange(4.0)"),
                     ("[2]", "[3]")]:  # fmt: skip
        edited = exec_ns(DATA_CLASS.replace(old, new))["A"]
        assert code_fingerprint(edited) != code_fingerprint(base), new
        assert code_fingerprint(edited.f) != code_fingerprint(base.f), new
        assert fingerprint(edited()) != fingerprint(base()), new
    assert "<exec>.A" in code_parts(base.f)


def test_class_data_attributes_mutated_in_place_are_rehashed():
    cls = exec_ns(DATA_CLASS)["A"]
    fp, parts = code_fingerprint(cls.f), code_parts(cls.f)
    assert code_fingerprint(cls.f) == fp
    cls.params["lr"] = 0.3
    assert code_fingerprint(cls.f) != fp
    assert code_parts(cls.f)["<exec>.A"] != parts["<exec>.A"]
    cls.params["lr"] = 0.1
    assert code_fingerprint(cls.f) == fp
    cls.params = {"lr": 0.1}  # rebound to an equal value
    assert code_fingerprint(cls.f) == fp


def test_class_attributes_referring_to_the_class_and_unpicklable_ones():
    import enum
    import threading

    from checkpoint_magic.fingerprint.values import fingerprint

    src = "class B:\n    lock = LOCK\n    def f(self):\n        return 1\nB.me = B\nB.registry = [B]\nB.one = B()\n"
    b1 = exec_ns(src, {"LOCK": threading.Lock()})["B"]
    b2 = exec_ns(src, {"LOCK": threading.Lock()})["B"]
    assert code_fingerprint(b1) == code_fingerprint(b2)  # no warning: only the lock's type
    assert fingerprint(b1()) == fingerprint(b2())
    assert code_fingerprint(b1.f) == code_fingerprint(b2.f)
    E1 = enum.Enum("E", {"A": [1, 2], "B": 2})
    E2 = enum.Enum("E", {"A": [1, 3], "B": 2})
    E1.__module__ = E2.__module__ = "__main__"
    assert code_fingerprint(E1) != code_fingerprint(E2)  # members with non-constant values


SCORER = """
class S:
    def __call__(self, x):
        return x * 2

scorer = S()

def f(x):
    return scorer(x)
"""


def test_instances_of_user_classes_count_by_their_class_code(load):
    ns = exec_ns(SCORER)
    fp = code_fingerprint(ns["f"])
    assert code_fingerprint(exec_ns(SCORER)["f"]) == fp
    assert code_fingerprint(exec_ns(SCORER.replace("x * 2", "x * 3"))["f"]) != fp
    assert "<exec>.S" in code_parts(ns["f"])
    ns["scorer"].k = 5  # instance data is not included: pass it as an argument
    assert code_fingerprint(ns["f"]) == fp
    exec_ns(SCORER.replace("x * 2", "x * 3").split("def f")[0], ns)  # the class cell re-run
    assert code_fingerprint(ns["f"]) != fp
    m1 = load(SCORER)
    fp1 = code_fingerprint(m1.f)
    m2 = load(SCORER.replace("x * 2", "x * 4"))
    assert code_fingerprint(m2.f) != fp1


def test_an_installed_module_first_imported_inside_the_function(script):
    # The function imports a standard-library module nobody has imported yet: it counts by
    # name and version (it used to fail with AttributeError and leave the call uncached).
    proc = script.run(
        """
        import sys
        from checkpoint_magic.fingerprint.code import code_fingerprint

        def f():
            import colorsys
            return colorsys.rgb_to_hsv(1, 0, 0)

        assert "colorsys" not in sys.modules
        print(code_fingerprint(f) == code_fingerprint(f), "colorsys" in sys.modules)
        """
    )
    assert proc.stdout.split() == ["True", "False"]
