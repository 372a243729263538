"""Lineage from content addresses: an input whose fingerprint is a stored output's came from it.

Scripts run in fresh processes (the ``script`` fixture), ``%%checkpoint`` cells in a real
kernel; ``show`` and ``why`` are asked through the command line's functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.core import lineage
from checkpoint_magic.store.core import Store
from checkpoint_magic.tools.commands import show_output, why_output
from checkpoint_magic.tools.inventory import namespaces
from checkpoint_magic.tools.output import render_text

try:
    from tests import nbhelpers
except ImportError:  # pragma: no cover - the test extras install nbclient
    nbhelpers = None  # type: ignore[assignment]

PIPELINE = """
import numpy as np
from checkpoint_magic import checkpoint

@checkpoint
def load_data(n):
    return np.arange(n, dtype=float)

@checkpoint
def train(a):
    return float(a.sum()) + {bias}

a = load_data(100)
{between}
print(train(a))
"""


def _entries(store: Store, namespace: str) -> list[dict[str, Any]]:
    return [store.read_entry(namespace, key) for key in store.entry_keys_by_age(namespace)]


def _why(store: Store, name: str) -> str:
    return render_text(why_output(store, name).blocks)


def _show(store: Store, namespace: str) -> str:
    (manifest,) = _entries(store, namespace)
    return render_text(show_output(store, manifest["key"]).blocks)


def test_a_script_run_twice_shows_where_its_input_came_from(script: Any, tmp_path: Path) -> None:
    assert script.run(PIPELINE.format(bias=0, between="")).stdout == "4950.0\n"
    store = Store(tmp_path / ".Lutil-checkpoint")
    (producer,) = _entries(store, "__main__.load_data")
    expected = f"input a came from __main__.load_data@{producer['code'][:8]}, "
    assert expected in _why(store, "train")
    assert expected in _show(store, "__main__.train")
    # A second run in a fresh process: both hit, the recorded lineage stays.
    assert script.run().stdout == "4950.0\n"
    assert expected in _why(store, "train")
    # train's code changes: load_data hits (in a fresh process) and train recomputes; the
    # new entry learns its input's origin from the digest load_data's manifest recorded.
    assert script.run(PIPELINE.format(bias=1, between="")).stdout == "4951.0\n"
    why = _why(store, "train")
    assert "because: code changed" in why and expected in why
    (newest, _) = sorted(_entries(store, "__main__.train"), key=lambda m: -m["created"])
    assert newest["lineage"] == [
        {
            "input": "a",
            "from": {
                "namespace": "__main__.load_data",
                "kind": "function",
                "key": producer["key"],
                "code": producer["code"],
                "created": producer["created"],
                "output": "return",
            },
        }
    ]
    assert json.loads(json.dumps(why_output(store, "train").data))["lineage"] == newest["lineage"]


def test_an_input_changed_in_place_after_it_was_produced_has_no_lineage(
    script: Any, tmp_path: Path
) -> None:
    script.run(PIPELINE.format(bias=0, between="a[0] = 99.0"))
    store = Store(tmp_path / ".Lutil-checkpoint")
    (consumer,) = _entries(store, "__main__.train")
    assert "lineage" not in consumer
    assert "came from" not in _why(store, "train") + _show(store, "__main__.train")
    # The same in a fresh process where load_data hits and its result is changed in place.
    script.run(PIPELINE.format(bias=2, between="a[0] = 98.0"))
    assert all("lineage" not in m for m in _entries(store, "__main__.train"))


def test_lineage_never_changes_keys_or_hits(store_dir: Path) -> None:
    @checkpoint(store=store_dir)
    def make(n: int) -> np.ndarray:
        return np.arange(n, dtype=float)

    @checkpoint(store=store_dir)
    def total(a: np.ndarray) -> float:
        return float(a.sum())

    assert total(np.arange(50, dtype=float)) == 1225.0  # an equal value made by hand first
    assert total.is_cached(make(50))  # the produced value finds the same entry
    assert total(make(50)) == 1225.0
    (entry,) = _manifests(Store(store_dir), "total")
    assert "lineage" not in entry  # committed before make ran: no producer known then


def _manifests(store: Store, name: str) -> list[dict[str, Any]]:
    (namespace,) = [n for n in namespaces(store) if n.endswith("." + name)]
    return _entries(store, namespace)


def test_an_equal_copy_counts_as_the_output_and_other_stores_do_not(
    store_dir: Path, tmp_path: Path
) -> None:
    @checkpoint(store=store_dir)
    def make(n: int) -> np.ndarray:
        return np.arange(n, dtype=float)

    @checkpoint(store=store_dir)
    def total(a: np.ndarray) -> float:
        return float(a.sum())

    @checkpoint(store=tmp_path / "other")
    def elsewhere(a: np.ndarray) -> float:
        return float(a.max())

    copy = make(20).copy()
    total(copy)
    elsewhere(copy)
    (entry,) = _manifests(Store(store_dir), "total")
    assert [(link["input"], link["from"]["output"]) for link in entry["lineage"]] == [
        ("a", "return")
    ]
    assert all("lineage" not in m for m in _manifests(Store(tmp_path / "other"), "elsewhere"))


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 1 MiB limit on what commits hash, so that "large" outputs stay small in tests."""
    monkeypatch.setattr(lineage, "BUFFER_MAX", 1 << 20)
    return lineage.BUFFER_MAX


def test_small_and_large_writable_outputs_are_not_hashed_at_commit(
    store_dir: Path, small_limit: int
) -> None:
    @checkpoint(store=store_dir)
    def make(n: int) -> Any:
        return np.zeros(n) if n > 1 else n

    make(1)  # a number: too common to attribute, nothing is hashed
    make((lineage.BUFFER_MAX // 8) + 1)  # over the cheap limit: no second hash of a big result
    assert all("output_fps" not in m for m in _manifests(Store(store_dir), "make"))


def test_blocks_record_where_their_inputs_came_from(script: Any, tmp_path: Path) -> None:
    source = """
    import numpy as np
    from checkpoint_magic import InlineCheckpoint

    with InlineCheckpoint(name="prepare", produce=["X"]):
        X = np.linspace(0.0, 1.0, 64)
    with InlineCheckpoint(name="fit", watch=["X"], produce=["w"]):
        w = float(X.mean()) + {bias}
    print(w)
    """
    script.run(source.format(bias=0))
    script.run(source.format(bias=1))  # prepare hits in a fresh process; fit recomputes
    store = Store(tmp_path / ".Lutil-checkpoint")
    (prepare,) = _entries(store, "prepare")
    assert f"input X came from X of prepare@{prepare['code'][:8]}" in _why(store, "fit")
    assert all(m["lineage"][0]["from"]["key"] == prepare["key"] for m in _entries(store, "fit"))


def test_a_read_only_map_restored_by_a_hit_is_traced_without_rehashing(
    script: Any, tmp_path: Path
) -> None:
    source = """
    import numpy as np
    from checkpoint_magic import checkpoint
    from checkpoint_magic.core import lineage

    lineage.BUFFER_MAX = {limit}  # "large" outputs stay small in a test

    @checkpoint(mmap_mode="r")
    def step1(n):
        return np.ones(n)

    @checkpoint
    def step2(a):
        return float(a.sum()) + {bias}

    print(step2(step1({n})))
    """
    limit = 1 << 20
    n = limit // 8 * 2  # larger than what commits hash
    script.run(source.format(bias=0, n=n, limit=limit))  # step1's miss: writable, no lineage
    store = Store(tmp_path / ".Lutil-checkpoint")
    assert all("lineage" not in m for m in _entries(store, "__main__.step2"))
    # step1 hits (a read-only map), step2 recomputes
    script.run(source.format(bias=1, n=n, limit=limit))
    (step1,) = _entries(store, "__main__.step1")
    assert "output_fps" not in step1
    linked = [m for m in _entries(store, "__main__.step2") if "lineage" in m]
    assert [m["lineage"][0]["from"]["key"] for m in linked] == [step1["key"]]
    assert f"input a came from __main__.step1@{step1['code'][:8]}" in _why(store, "step2")


def test_a_view_of_a_restored_map_is_not_attributed(store_dir: Path, small_limit: int) -> None:
    @checkpoint(store=store_dir, mmap_mode="r")
    def step1(n: int) -> np.ndarray:
        return np.ones(n)

    @checkpoint(store=store_dir)
    def step2(a: np.ndarray) -> float:
        return float(a.sum())

    n = lineage.BUFFER_MAX // 8 * 2
    step1(n)
    a = step1(n)  # a hit: a read-only map
    assert isinstance(a, np.memmap) and lineage.watching
    step2(a[1:])  # another object: hashed, and not the stored output
    assert all("lineage" not in m for m in _manifests(Store(store_dir), "step2"))


def test_old_manifests_without_lineage_fields_show_and_explain(store_dir: Path) -> None:
    store = Store(store_dir)
    store.write_entry(
        "m.f", "k1", {"namespace": "m.f", "key": "k1", "code": "c", "inputs": {}, "outputs": {}}
    )
    assert "came from" not in _show(store, "m.f") + _why(store, "m.f")


def test_output_digests_are_on_the_first_line_a_hit_reads(store_dir: Path) -> None:
    @checkpoint(store=store_dir)
    def make(n: int) -> list[int]:
        return list(range(n))

    make(40)
    store = Store(store_dir)
    (manifest,) = _manifests(store, "make")
    hot = store.read_entry(manifest["namespace"], manifest["key"], hot_only=True)
    assert hot is not None and "inputs" not in hot and set(hot["output_fps"]) == {"return"}


CELLS = [
    "%load_ext checkpoint_magic",
    "%%checkpoint --name load\nimport pandas as pd\ndf = pd.DataFrame({'a': range(50)})",
    "%%checkpoint --name fit\ntotal = int(df['a'].sum()) + BIAS",
    "%checkpoint_why fit",
]


def test_cells_show_where_their_inputs_came_from_in_a_real_kernel(tmp_path: Path) -> None:
    if nbhelpers is None:
        pytest.skip("the real-kernel tests need nbclient, nbformat and ipykernel (the test extras)")
    kernelspec = nbhelpers.write_kernelspec(tmp_path / "kernelspec")
    env = {"CHECKPOINT_MAGIC_DIR": str(tmp_path / "store")}

    def why(bias: int) -> str:
        cells = [c.replace("BIAS", str(bias)) for c in CELLS]
        nb = nbhelpers.execute(nbhelpers.notebook(cells), kernelspec, cwd=tmp_path, env=env)
        return nbhelpers.stream_text(nb.cells[3]) + str(nbhelpers.result_text(nb.cells[3]))

    assert "input df came from df of load@" in why(0)
    assert "input df came from df of load@" in why(1)  # load hits in a new kernel; fit recomputes


def test_a_frame_of_megabytes_returned_by_a_miss_is_traced(store_dir: Path) -> None:
    import pandas as pd

    @checkpoint(store=store_dir)
    def load_data(n: int) -> pd.DataFrame:
        return pd.DataFrame({"x": np.arange(n, dtype=float), "y": np.ones(n)})

    @checkpoint(store=store_dir)
    def train(frame: pd.DataFrame) -> float:
        return float(frame["x"].sum())

    train(load_data(300_000))  # ~4.8 MB: hashed when committed
    (producer,) = _manifests(Store(store_dir), "load_data")
    (consumer,) = _manifests(Store(store_dir), "train")
    assert consumer["lineage"][0]["from"]["key"] == producer["key"]


def test_a_failing_output_fingerprint_never_stops_the_result_being_stored(
    store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from checkpoint_magic.fingerprint.values import QuietFingerprinter

    def broken(self: Any, value: Any, name: Any = None) -> str:
        raise RecursionError("a value whose own methods recurse")

    @checkpoint(store=store_dir)
    def make(n: int) -> list[int]:
        return list(range(n))

    monkeypatch.setattr(QuietFingerprinter, "fingerprint", broken)
    assert make(40) == list(range(40))  # no StoreWriteWarning: it is stored, without lineage
    (manifest,) = _manifests(Store(store_dir), "make")
    assert "output_fps" not in manifest
