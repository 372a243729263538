"""What the user is told: hit and miss notes in scripts (quiet unless asked), and advice in each front end's words."""

from __future__ import annotations

import pytest

from checkpoint_magic import config
from checkpoint_magic.exceptions import InvalidArgumentError

SCRIPT = """
import sys
from checkpoint_magic import InlineCheckpoint, checkpoint, config
config.NOTE_HIT_SECONDS = 0

def clean(x):
    return x + {k}

@checkpoint
def load_data(n):
    return clean(n)

print(load_data(3))
base = 2
with InlineCheckpoint(watch=["base"], produce=["fitted"]):
    fitted = base * 10
    print("fitted", fitted)
"""


def test_scripts_are_quiet_unless_notes_are_on(script):
    first = script.run(SCRIPT.format(k=1))
    again = script.run()
    assert first.stdout == "4\nfitted 20\n" and again.stdout == "4\n"  # the seed's behaviour
    assert first.stderr == again.stderr == ""
    on = {"CHECKPOINT_MAGIC_NOTES": "on"}
    hit = script.run(env=on)
    assert hit.stdout == "4\nfitted 20\n"  # notes on: the block's output is replayed too
    lines = hit.stderr.splitlines()
    assert lines[0].startswith("[checkpoint] restored load_data (took ")
    assert lines[1].startswith("[checkpoint] restored fitted (took ")
    miss = script.run(SCRIPT.format(k=2), env=on)
    assert miss.stderr.splitlines()[0] == "[checkpoint] recomputing load_data: code changed: clean"
    assert script.run(env={"CHECKPOINT_MAGIC_NOTES": "off"}).stderr == ""


def test_a_bad_setting_says_what_is_allowed(monkeypatch):
    monkeypatch.setattr(config, "notes", "loud")
    with pytest.raises(InvalidArgumentError, match="'auto', 'on' or 'off'"):
        config.notes_mode()


class _Holder:
    def __init__(self):
        import sqlite3

        self.a = 1
        self.conn = sqlite3.connect(":memory:")


def test_complex_params_advice_uses_the_front_ends_own_arguments(store_dir):
    from checkpoint_magic import ComplexParamsIdentifyWarning, InlineCheckpoint, checkpoint

    @checkpoint(store=store_dir)
    def use(holder):
        return holder.a

    with pytest.warns(ComplexParamsIdentifyWarning) as record:
        use(_Holder())
    text = str(record[0].message)
    assert "@checkpoint(ignore=['holder'])" in text and "watch=" not in text

    holder = _Holder()
    block = InlineCheckpoint(watch=["holder"], produce=["x"], store=store_dir)
    with pytest.warns(ComplexParamsIdentifyWarning) as record, block:
        x = holder.a  # noqa: F841 (produced)
    text = str(record[0].message)
    assert "InlineCheckpoint(watch=['holder.a'])" in text and "ignore=" not in text
