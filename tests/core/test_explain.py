"""Explain a miss: the INFO line and the recorded reason say what changed."""

from __future__ import annotations

import logging

from checkpoint_magic import checkpoint
from checkpoint_magic.core.explain import describe_difference, last_miss
from checkpoint_magic.store.core import Store

HELPER_SOURCE = """
from checkpoint_magic import checkpoint

def helper(x):
    return x * {factor}

@checkpoint(store={store!r}, name="explain.compute")
def compute(x, scale=1):
    return helper(x) * scale
"""


def _load(source: str, tmp_path, version: str):
    """Define compute/helper as module ``explain_mod`` would after an edit (file per version)."""
    namespace: dict = {"__name__": "explain_mod"}
    path = tmp_path / f"explain_mod_{version}.py"
    path.write_text(source)
    exec(compile(source, str(path), "exec"), namespace)
    return namespace["compute"]


def test_first_call_is_not_explained_and_reasons_name_what_changed(tmp_path, caplog):
    store = str(tmp_path / "store")
    compute = _load(HELPER_SOURCE.format(factor=2, store=store), tmp_path, "explain_v1")
    caplog.set_level(logging.INFO, logger="checkpoint_magic.core.checkpointer")
    compute(1)
    assert not [r for r in caplog.records if "recomputing" in r.getMessage()]

    compute(2)
    assert "recomputing (input changed: x)" in caplog.text
    assert last_miss(Store(store), "explain.compute")["reason"] == "input changed: x"

    caplog.clear()
    edited = _load(HELPER_SOURCE.format(factor=3, store=store), tmp_path, "explain_v2")
    edited(1)
    assert "explain.compute: recomputing (code changed: explain_mod.helper)" in caplog.text
    assert last_miss(Store(store), "explain.compute")["reason"] == "code changed: explain_mod.helper"

    caplog.clear()
    edited(1)  # a hit: nothing to explain
    assert "recomputing" not in caplog.text


def test_describe_difference_cases():
    old = {"code": "c1", "code_parts": {"m.f": "1", "m.h": "2"}, "inputs": {"x": "a"}}
    assert describe_difference(old, "c1", None, {"x": "a", "y": "b"}) == "new input: y"
    assert describe_difference(old, "c1", None, {}) == "input no longer used: x"
    assert describe_difference(old, "c2", {"m.f": "1", "m.h": "2", "m.g": "9"}, {"x": "a"}) == "code changed: +m.g"
    assert describe_difference(old, "c2", None, {"x": "b"}) == "code changed; input changed: x"


def test_decorated_miss_explains_code_change_by_function_name(store_dir, caplog):
    @checkpoint(store=store_dir, name="explain.inline")
    def f(x):
        return x + 1

    f(1)
    caplog.set_level(logging.INFO, logger="checkpoint_magic.core.checkpointer")

    @checkpoint(store=store_dir, name="explain.inline")
    def f(x):  # noqa: F811 (an edit of the function above, as in a notebook)
        return x + 2

    assert f(1) == 3
    assert "explain.inline: recomputing (code changed" in caplog.text


def test_without_info_logging_the_reason_is_computed_on_demand(store_dir, caplog):
    caplog.set_level(logging.WARNING, logger="checkpoint_magic.core.checkpointer")

    @checkpoint(store=store_dir, name="explain.lazy")
    def f(x):
        return x + 1

    f(1)
    f(2)  # a miss while an entry exists: recorded, not explained yet
    assert "recomputing" not in caplog.text
    assert last_miss(Store(store_dir), "explain.lazy")["reason"] == "input changed: x"


def test_a_deferred_miss_record_is_written_before_why_reads_it(store_dir):
    from checkpoint_magic.core import explain

    @checkpoint(store=store_dir, name="explain.deferred")
    def f(x):
        return x + 1

    f(1)
    f(2)
    f(3)  # only the namespace's latest miss is kept
    store = Store(store_dir)
    miss = last_miss(store, "explain.deferred")
    assert miss["request"]["key"] == store.entry_keys_by_age("explain.deferred")[0]  # f(3)'s
    assert miss["reason"] == "input changed: x"
    explain._miss_writer.flush()  # nothing pending is left behind


def test_has_entries_follows_entries_added_and_removed(store_dir):
    store = Store(store_dir)
    assert not store.has_entries("m.f")
    record = store.put_value(1)
    manifest = {"format": 1, "key": "k" * 32, "namespace": "m.f", "outputs": {"return": record}}
    store.write_entry("m.f", "k" * 32, manifest)
    assert store.has_entries("m.f")
    store.delete_entry("m.f", "k" * 32)
    assert not store.has_entries("m.f")
