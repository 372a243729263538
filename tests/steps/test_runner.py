"""Tests of checkpoint_magic.steps.runner: numeric order, start_from, automatic resume, versions, processes."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from unittest import mock

import pytest

from checkpoint_magic.exceptions import InvalidArgumentError
from checkpoint_magic.steps.runner import Checkpoint, StepCheckpoint, step_names
from checkpoint_magic.store.core import Store

ran: list[str] = []


class Twelve(StepCheckpoint):
    """Twelve steps; step k returns the output of step k-1 plus k (written out of order on purpose)."""

    def step_10(self, outputs):
        ran.append("step_10")
        return outputs["step_9"] + 10

    def step_1(self, outputs):
        ran.append("step_1")
        return 1

    def step_2(self, outputs):
        ran.append("step_2")
        return outputs["step_1"] + 2

    def step_3(self, outputs):
        ran.append("step_3")
        return outputs["step_2"] + 3

    def step_4(self, outputs):
        ran.append("step_4")
        return outputs["step_3"] + 4

    def step_5(self, outputs):
        ran.append("step_5")
        return outputs["step_4"] + 5

    def step_6(self, outputs):
        ran.append("step_6")
        return outputs["step_5"] + 6

    def step_7(self, outputs):
        ran.append("step_7")
        return outputs["step_6"] + 7

    def step_8(self, outputs):
        ran.append("step_8")
        return outputs["step_7"] + 8

    def step_9(self, outputs):
        ran.append("step_9")
        return outputs["step_8"] + 9

    def step_11(self, outputs):
        ran.append("step_11")
        assert sorted(outputs) == sorted(f"step_{k}" for k in range(1, 11))
        return outputs["step_10"] + 11

    def step_12(self, outputs):
        ran.append("step_12")
        return outputs["step_11"] + 12


class EditedSeven(Twelve):
    """The same run with step 7's code edited."""

    def step_7(self, outputs):
        ran.append("step_7")
        return outputs["step_6"] + 700


ALL = [f"step_{k}" for k in range(1, 13)]
TOTAL = sum(range(1, 13))  # 78


@pytest.fixture(autouse=True)
def _clear_ran():
    ran.clear()
    yield
    ran.clear()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "ckpt"


def make(
    folder: Path, cls: type = Twelve, version: int | str = 1, name: str = "twelve"
) -> StepCheckpoint:
    return cls(name=name, checkpoint_folder=folder, version=version)


def test_steps_run_in_numeric_order(folder):
    assert step_names(Twelve) == ALL
    assert make(folder).run() == TOTAL
    assert ran == ALL  # step_10 after step_9, not after step_1


def test_dslib_name_is_an_alias():
    assert Checkpoint is StepCheckpoint


def test_second_run_reuses_everything_and_loads_only_the_last_output(folder):
    make(folder).run()
    ran.clear()
    run = make(folder)
    with mock.patch.object(
        Store, "get_value", autospec=True, side_effect=Store.get_value
    ) as get_value:
        assert run.run() == TOTAL
    assert ran == []
    assert run.last_run.reused == ALL
    assert get_value.call_count == 1


def test_start_from_loads_ten_outputs_and_runs_two(folder, caplog):
    make(folder).run()
    ran.clear()
    run = make(folder)
    with caplog.at_level(logging.INFO, logger="checkpoint_magic.steps"):
        assert run.run(start_from=11) == TOTAL
    assert ran == ["step_11", "step_12"]
    assert run.last_run.loaded == ALL[:10]
    assert run.last_run.ran == ["step_11", "step_12"]
    assert "recomputing" not in caplog.text


def test_start_from_uses_the_latest_output_whatever_its_code(folder):
    make(folder).run()
    make(folder, EditedSeven).run()  # the latest output of step 7 is now 28 - 7 + 700
    ran.clear()
    assert make(folder).run(start_from=8) == TOTAL - 7 + 700
    assert ran == ALL[7:]


def test_start_from_recomputes_a_missing_earlier_output_with_a_log_line(folder, caplog):
    run = make(folder)
    run.run()
    store = Store(folder)
    store.clear(run.namespace("step_3"))
    ran.clear()
    with caplog.at_level(logging.INFO, logger="checkpoint_magic.steps"):
        assert make(folder).run(start_from=5) == TOTAL
    assert ran == ["step_3", *ALL[4:]]
    assert "no stored output of step_3; recomputing it" in caplog.text
    assert make(folder).load_outputs()["step_3"] == 6


def test_editing_step_7_reruns_7_to_12_only(folder):
    make(folder).run()
    ran.clear()
    edited = make(folder, EditedSeven)
    assert edited.run() == TOTAL - 7 + 700
    assert ran == ALL[6:]
    assert edited.last_run.reused == ALL[:6]
    ran.clear()
    assert make(folder).run() == TOTAL  # the original code again: every version is kept
    assert ran == []


def test_a_new_version_reruns_everything_and_versions_never_share(folder):
    make(folder).run()
    ran.clear()
    assert make(folder, version=2).run() == TOTAL
    assert ran == ALL
    make(folder, EditedSeven, version=2).run()
    assert make(folder, version=1).load_outputs()["step_12"] == TOTAL
    assert make(folder, version=2).load_outputs()["step_12"] == TOTAL - 7 + 700


def test_load_outputs_keyed_by_step_name(folder):
    assert make(folder).load_outputs() == {}
    make(folder).run(start_from=1)
    outputs = make(folder).load_outputs()
    assert list(outputs) == ALL
    assert outputs["step_12"] == TOTAL


def test_default_folder_is_the_default_store(_isolated_store):
    make(None).run()
    assert any(
        p.name.startswith("twelve_v1_step_") for p in (_isolated_store / "entries").iterdir()
    )


def test_public_attributes_are_part_of_the_key(folder):
    class Scaled(StepCheckpoint):
        def __init__(self, factor, **kw):
            super().__init__(**kw)
            self.factor = factor

        def step_1(self, outputs):
            ran.append("step_1")
            return 2 * self.factor

    assert Scaled(3, name="s", checkpoint_folder=folder).run() == 6
    assert Scaled(3, name="s", checkpoint_folder=folder).run() == 6
    assert Scaled(4, name="s", checkpoint_folder=folder).run() == 8
    assert ran == ["step_1", "step_1"]


COUNTER = [0]


def _next() -> int:
    COUNTER[0] += 1
    return COUNTER[0]


def test_a_recomputed_unreadable_output_that_changes_reruns_later_steps(folder):
    class Flaky(StepCheckpoint):
        def step_1(self, outputs):
            ran.append("step_1")
            return _next()  # not deterministic: a recomputation gives a new value

        def step_2(self, outputs):
            ran.append("step_2")
            return outputs["step_1"] * 10

        def step_3(self, outputs):
            ran.append("step_3")
            return outputs["step_2"] + 1

    COUNTER[0] = 0
    assert Flaky(name="f", checkpoint_folder=folder).run() == 11
    store = Store(folder)
    for manifest in store.iter_manifests("f@v1:step_1"):  # damage step 1's stored output
        for ref in manifest["outputs"]["step_1"].get("blobs", []):
            os.unlink(store.blob_path(ref["digest"]))
        manifest["outputs"]["step_1"].pop("inline", None)
        manifest["outputs"]["step_1"]["blobs"] = [{"digest": "0" * 32, "size": 1}]
        store.write_entry("f@v1:step_1", manifest["key"], manifest)
    store.delete_entry(  # and drop step 3's entry so that step 1's output must be loaded
        "f@v1:step_3", next(k for _, k in store.iter_entry_keys("f@v1:step_3"))
    )
    ran.clear()
    from checkpoint_magic.exceptions import CorruptEntryWarning

    with pytest.warns(CorruptEntryWarning):
        assert Flaky(name="f", checkpoint_folder=folder).run() == 21
    assert ran == ["step_1", "step_2", "step_3"]


@pytest.mark.parametrize(
    "body, message",
    [
        ("pass", "defines no steps"),
        ("def step_one(self, outputs): pass", "named step_<number>"),
        (
            "def step_1(self, outputs): pass\n    def step_01(self, outputs): pass",
            "two steps numbered 1",
        ),
        ("step_1 = 3", "must be a method"),
    ],
)
def test_badly_named_steps_are_clear_errors(body, message):
    ns: dict = {"StepCheckpoint": StepCheckpoint}
    exec(f"class Bad(StepCheckpoint):\n    {body}\n", ns)
    with pytest.raises(InvalidArgumentError, match=message):
        ns["Bad"](name="bad")


def test_gaps_are_allowed(folder):
    class Gaps(StepCheckpoint):
        def step_1(self, outputs):
            ran.append("step_1")
            return 1

        def step_5(self, outputs):
            ran.append("step_5")
            return outputs["step_1"] + 5

    assert Gaps(name="g", checkpoint_folder=folder).run() == 6
    ran.clear()
    assert Gaps(name="g", checkpoint_folder=folder).run(start_from=3) == 6
    assert ran == ["step_5"]


@pytest.mark.parametrize("start_from", [13, "3", 2.0, True, 0, -1])
def test_bad_start_from(folder, start_from):
    with pytest.raises(InvalidArgumentError, match="start_from"):
        make(folder).run(start_from=start_from)


def test_start_from_outside_the_steps_says_the_valid_range(folder):
    with pytest.raises(ValueError, match=r"start_from=0 is before the first step: give a step number from 1 to 12"):
        make(folder).run(start_from=0)


@pytest.mark.parametrize(
    "kwargs", [{"name": ""}, {"name": "x", "version": None}, {"name": "x", "version": True}]
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(InvalidArgumentError):
        Twelve(**kwargs)


PIPELINE_SOURCE = """
import json, sys
from checkpoint_magic.steps.runner import StepCheckpoint

ran = []

class Pipe(StepCheckpoint):
{methods}

if __name__ == "__main__":
    run = Pipe(name="pipe", checkpoint_folder="ckpt", version=1)
    result = run.run()
    print(json.dumps({{"result": result, "ran": ran, "outputs": run.load_outputs()}}))
"""


def _pipeline(step_7: str = "outputs['step_6'] + 7") -> str:
    methods = []
    for k in range(1, 13):
        expr = "1" if k == 1 else (step_7 if k == 7 else f"outputs['step_{k - 1}'] + {k}")
        methods.append(
            f"    def step_{k}(self, outputs):\n        ran.append('step_{k}')\n        return {expr}\n"
        )
    return PIPELINE_SOURCE.format(methods="\n".join(methods))


def test_outputs_survive_a_new_process_and_a_source_edit_reruns_7_to_12(script):
    first = json.loads(script.run(_pipeline(), "pipe.py").stdout)
    assert first["ran"] == ALL and first["result"] == TOTAL
    second = json.loads(script.run(None, "pipe.py").stdout)
    assert second["ran"] == [] and second["result"] == TOTAL
    assert second["outputs"] == first["outputs"]
    third = json.loads(script.run(_pipeline("outputs['step_6'] + 700  # edited"), "pipe.py").stdout)
    assert third["ran"] == ALL[6:]
    assert third["result"] == TOTAL - 7 + 700


def _hits(store: Store, run: StepCheckpoint) -> dict[str, int]:
    """Total recorded uses of each step's entries."""
    return {
        step: sum(
            store.usage(run.namespace(step), key)[0]
            for _, key in store.iter_entry_keys(run.namespace(step))
        )
        for step in ALL
    }


def test_a_full_hit_records_a_use_of_every_reused_step(folder):
    make(folder).run()
    store = Store(folder)
    before = _hits(store, make(folder))
    run = make(folder)
    assert run.run() == TOTAL and run.last_run.reused == ALL
    after = _hits(store, run)
    assert {step: after[step] - before[step] for step in ALL} == dict.fromkeys(ALL, 1)


def test_unsigned_entries_are_no_output_when_signing_is_required(folder, monkeypatch, caplog):
    make(folder).run()
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    ran.clear()
    with caplog.at_level(logging.INFO, logger="checkpoint_magic.steps"):
        assert make(folder).load_outputs() == {}
        assert "treated as no stored output" in caplog.text
        run = make(folder)
        assert run.run(start_from=2) == TOTAL
    assert ran == ALL and run.last_run.recomputed == ["step_1"]
    assert "no stored output of step_1; recomputing it" in caplog.text
    assert make(folder).load_outputs() == {s: sum(range(1, k + 1)) for k, s in enumerate(ALL, 1)}
    ran.clear()
    again = make(folder)
    assert again.run() == TOTAL and ran == [] and again.last_run.reused == ALL


def test_an_unsigned_entry_is_recomputed_by_a_resumed_run(folder, monkeypatch):
    make(folder).run()
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    ran.clear()
    run = make(folder)
    assert run.run() == TOTAL
    assert ran == ALL and run.last_run.ran == ALL
    ran.clear()
    assert make(folder).run() == TOTAL and ran == []


def test_a_run_shows_a_progress_bar_over_its_steps_when_asked(tmp_path, capsys, monkeypatch):
    class Three(StepCheckpoint):
        def step_1(self, outputs):
            return 1

        def step_2(self, outputs):
            return outputs["step_1"] + 1

        def step_3(self, outputs):
            return outputs["step_2"] + 1

    run = Three(name="bar-run", checkpoint_folder=tmp_path / "s")
    assert run.run(progress=True) == 3
    err = capsys.readouterr().err
    assert "bar-run v1" in err and "/3 " in err
    assert run.run(progress=False) == 3 and capsys.readouterr().err == ""
    monkeypatch.setenv("CHECKPOINT_MAGIC_PROGRESS", "1")
    assert run.run() == 3 and "bar-run v1" in capsys.readouterr().err
