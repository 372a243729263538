"""``InlineCheckpoint``: scripts run twice in fresh processes, as the seed describes, and beyond it."""

from __future__ import annotations

import numpy as np
import pytest

from checkpoint_magic import InlineCheckpoint
from checkpoint_magic.exceptions import (
    InvalidArgumentError,
    MissingProducedNameError,
    UnknownNameError,
)
from checkpoint_magic.store.core import Store

PCA = """
from checkpoint_magic import InlineCheckpoint

import numpy as np
from sklearn.decomposition import PCA

np.random.seed(0)
data = np.random.randn(2000, 50)
pca = PCA({k}, random_state=0)

with InlineCheckpoint(watch=["data", "pca"], produce=["data_t"]):
    data_t = {body}
    print("A thousand years later.")

print(data_t.shape)
"""


def test_seed_pca_example(script):
    src = PCA.format(k=20, body="pca.fit_transform(data)")
    assert script.run(src).stdout == "A thousand years later.\n(2000, 20)\n"
    assert script.run().stdout == "(2000, 20)\n"
    # a changed watched value recomputes
    assert script.run(PCA.format(k=5, body="pca.fit_transform(data)")).stdout == "A thousand years later.\n(2000, 5)\n"
    # a changed body recomputes
    assert script.run(PCA.format(k=5, body="data")).stdout == "A thousand years later.\n(2000, 50)\n"
    # going back to the first version is a hit
    assert script.run(src).stdout == "(2000, 20)\n"


def test_comment_edit_in_body_is_a_hit_and_code_above_may_move(script):
    src = PCA.format(k=3, body="pca.fit_transform(data)")
    script.run(src)
    moved = "# a new comment\n\n\n" + src.replace("    data_t = ", "    # explain\n    data_t = ")
    assert script.run(moved).stdout == "(2000, 3)\n"


def test_attribute_paths_and_subscripts(script):
    src = """
    from checkpoint_magic import InlineCheckpoint

    class Foo:
        pass

    f = Foo()
    f.a = 1
    d = {"a": 2, "items": [10, 20]}

    with InlineCheckpoint(watch=["f.a", "d['a']", "d['items'][1]"], produce=["f.b", "d['b']"]):
        f.b = f.a + 100
        d["b"] = d["a"] + d["items"][1]
        print("ran")

    print(f.b, d["b"])
    """
    assert script.run(src).stdout == "ran\n101 22\n"
    assert script.run().stdout == "101 22\n"
    assert script.run(src.replace('"a": 2', '"a": 3')).stdout == "ran\n101 23\n"


def test_inside_functions_and_methods(script):
    src = """
    from checkpoint_magic import InlineCheckpoint

    def func(a):
        with InlineCheckpoint(watch=["a"], produce=["b", "c"]):
            b = a * 2
            c = [a, b]
            print("func ran")
        return b, c

    class Model:
        def __init__(self, k):
            self.k = k

        def fit(self, x):
            with InlineCheckpoint(watch=["self.k", "x"], produce=["self.coef_", "total"]):
                self.coef_ = self.k * x
                total = self.coef_ + 1
                print("method ran")
            return total

    print(func(3))
    print(Model(2).fit(5))
    """
    assert script.run(src).stdout == "func ran\n(6, [3, 6])\nmethod ran\n11\n"
    assert script.run().stdout == "(6, [3, 6])\n11\n"


def test_one_line_body_with_as_target(store_dir):
    for expected_hit in (False, True):
        with InlineCheckpoint(watch=[], produce=["v"], store=store_dir) as ckpt: v = 41 + 1  # noqa: E701
        assert (ckpt.hit, v) == (expected_hit, 42)


def test_one_line_body_and_nested_blocks(script):
    src = """
    from checkpoint_magic import InlineCheckpoint

    def slow(x):
        print("slow", x)
        return x + 1

    x = 1
    with InlineCheckpoint(watch=["x"], produce=["y"]): y = slow(x)
    with InlineCheckpoint(watch=["y"], produce=["z", "w"]):  # a hit skips the inner block too
        with InlineCheckpoint(watch=["y"], produce=["w"]):
            w = slow(y)
        z = slow(w)
    print(y, w, z)
    """
    assert script.run(src).stdout == "slow 1\nslow 2\nslow 3\n2 3 4\n"
    assert script.run().stdout == "2 3 4\n"


def test_editing_a_function_the_body_calls_recomputes(script):
    src = """
    from checkpoint_magic import InlineCheckpoint

    def helper(v):
        return v * {k}

    with InlineCheckpoint(watch=[], produce=["out"]):
        out = helper(2)
        print("ran")
    print(out)
    """
    assert script.run(src.replace("{k}", "10")).stdout == "ran\n20\n"
    assert script.run(src.replace("{k}", "10")).stdout == "20\n"
    assert script.run(src.replace("{k}", "11")).stdout == "ran\n22\n"


def test_existing_tracer_is_chained_and_restored(script):
    src = """
    import sys
    from checkpoint_magic import InlineCheckpoint

    events = []

    def tracer(frame, event, arg):
        events.append(event)
        return tracer

    def work():
        x = 1
        with InlineCheckpoint(watch=["x"], produce=["y"]):
            y = x + 1
            print("ran")
        return y

    sys.settrace(tracer)
    result = work()
    still_installed = sys.gettrace() is tracer
    n = len(events)
    def after():
        return 1
    after()
    sys.settrace(None)
    print(result, still_installed, len(events) > n)
    """
    assert script.run(src).stdout == "ran\n2 True True\n"
    assert script.run().stdout == "2 True True\n"


def test_body_that_raises_propagates_and_stores_nothing(script, tmp_path):
    src = """
    from checkpoint_magic import InlineCheckpoint
    x = 1
    try:
        with InlineCheckpoint(watch=["x"], produce=["y"]):
            y = 1
            raise KeyError("original")
    except KeyError as exc:
        print("caught", exc)
    """
    assert script.run(src).stdout == "caught 'original'\n"
    assert script.run().stdout == "caught 'original'\n"
    assert list(Store(tmp_path / ".Lutil-checkpoint").iter_entry_keys()) == []


def test_missing_watched_name_is_an_error_before_the_body_runs(script):
    src = """
    from checkpoint_magic import InlineCheckpoint
    try:
        with InlineCheckpoint(watch=["nope"], produce=["y"]):
            print("body ran")
            y = 1
    except NameError as exc:
        print(type(exc).__name__, exc)
    """
    out = script.run(src).stdout
    assert "body ran" not in out
    assert out.startswith("UnknownNameError") and "'nope'" in out


def test_missing_produced_name_is_an_error_and_nothing_is_stored(store_dir):
    with pytest.raises(MissingProducedNameError, match="'never'"), InlineCheckpoint(
        watch=[], produce=["never"], store=store_dir
    ):
        pass
    assert list(Store(store_dir).iter_entry_keys()) == []


@pytest.mark.parametrize("bad", ["x + 1", "f()", "d[k]", "", "1x", 3])
def test_invalid_targets_are_rejected(bad):
    with pytest.raises(InvalidArgumentError):
        InlineCheckpoint(watch=[bad], produce=[])


def test_in_process_hit_restores_module_and_function_values(store_dir):
    runs = []

    def block(a):
        with InlineCheckpoint(watch=["a"], produce=["b"], store=store_dir) as ckpt:
            runs.append(a)
            b = np.arange(a)
        return b, ckpt.hit

    first, hit1 = block(5)
    second, hit2 = block(5)
    assert (hit1, hit2) == (False, True)
    assert np.array_equal(first, second) and runs == [5]


def test_recompute_forces_a_run(store_dir):
    runs = []
    for recompute in (False, False, True):
        with InlineCheckpoint(watch=[], produce=["v"], store=store_dir, recompute=recompute):
            v = len(runs)  # noqa: F841 (produced: read back by the checkpoint)
            runs.append(1)
    assert len(runs) == 2


def test_equal_produced_values_are_stored_once(store_dir):
    big = np.arange(200_000.0)
    with InlineCheckpoint(watch=[], produce=["a", "b"], store=store_dir):
        a = big.copy()  # noqa: F841 (produced)
        b = big.copy()  # noqa: F841 (produced)
    blobs = [p for p in (store_dir / "objects").rglob("*") if p.is_file()]
    assert len(blobs) == 1


def test_unknown_name_error_is_a_name_error():
    assert issubclass(UnknownNameError, NameError)


def test_a_file_edited_while_it_runs_never_gives_a_stale_hit(script):
    # The script rewrites its own body before the block runs: the running code computes
    # x * 10 while the file (what linecache parses) already says x * 99.
    src = """
    import pathlib
    from checkpoint_magic import InlineCheckpoint

    me = pathlib.Path(__file__)
    me.write_text(me.read_text().replace("x * " + "10", "x * " + "99"))
    x = 2
    with InlineCheckpoint(watch=["x"], produce=["y"]):
        y = x * 10
    print(y)
    """
    assert script.run(src).stdout == "20\n"
    assert script.run().stdout == "198\n"  # the file's code, not the first run's result
    assert script.run().stdout == "198\n"


def test_editing_a_module_attribute_the_body_uses_recomputes(script):
    script.write("def g(v):\n    return v * 10\n", "helpers.py")
    src = """
    import helpers
    from checkpoint_magic import InlineCheckpoint

    with InlineCheckpoint(watch=[], produce=["out"]):
        out = helpers.g(2)
        print("ran")
    print(out)
    """
    assert script.run(src).stdout == "ran\n20\n"
    assert script.run().stdout == "20\n"
    script.write("def g(v):\n    return v * 1000\n", "helpers.py")
    assert script.run().stdout == "ran\n2000\n"


def test_changing_the_produce_list_under_a_fixed_name_recomputes(store_dir):
    with InlineCheckpoint(watch=[], produce=["a"], store=store_dir, name="fixed"):
        a = 1
    with InlineCheckpoint(watch=[], produce=["a", "b"], store=store_dir, name="fixed") as ckpt:
        a, b = 1, 2  # noqa: F841 (produced)
    assert ckpt.hit is False


def test_a_block_that_cannot_be_fingerprinted_runs_uncached_with_one_warning(store_dir):
    from unittest import mock

    from checkpoint_magic.exceptions import UncachedWarning

    failing = mock.patch("checkpoint_magic.core.checkpointer.Fingerprinter.fingerprint", side_effect=RuntimeError("boom"))
    x = 1  # noqa: F841 (watched)
    block = InlineCheckpoint(watch=["x"], produce=["y"], store=store_dir)
    with failing, pytest.warns(UncachedWarning, match="boom") as record, block as ckpt:
        y = 2
    assert len(record) == 1 and ckpt.hit is False and y == 2
    assert list(Store(store_dir).iter_entry_keys()) == []
