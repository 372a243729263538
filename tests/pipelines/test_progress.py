"""Progress bars of long sample-wise runs: when they show, what they count."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.preprocessing import FunctionTransformer, StandardScaler

import checkpoint_magic.pipelines as mario  # noqa: E402
from checkpoint_magic.ui import progress  # noqa: E402


class RecordingBar:
    """Stands in for ``tqdm.auto.tqdm``: records what a bar was asked to show."""

    made: list[RecordingBar] = []

    def __init__(self, total=None, desc="", unit="", delay=0.0, **kwargs):
        self.total, self.desc, self.unit, self.delay = total, desc, unit, delay
        self.n = 0
        self.closed = False
        RecordingBar.made.append(self)

    def update(self, n=1):
        self.n += n

    def set_postfix_str(self, s="", refresh=True):
        self.postfix = s

    def close(self):
        self.closed = True


@pytest.fixture
def bars(monkeypatch):
    import tqdm.auto

    RecordingBar.made = []
    monkeypatch.setattr(tqdm.auto, "tqdm", RecordingBar)
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    return RecordingBar.made


def samples(n):
    return [mario.Sample(np.full(2, float(i)), key=str(i)) for i in range(n)]


def test_explicit_setting_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "1")
    assert progress.progress_enabled(False) == (False, 0.0)
    monkeypatch.setenv(progress.ENV_VAR, "0")
    assert progress.progress_enabled(True) == (True, 0.0)


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), ("off", False)])
def test_environment_variable_forces_bars(monkeypatch, value, expected):
    monkeypatch.setenv(progress.ENV_VAR, value)
    assert progress.progress_enabled(None) == (expected, 0.0)


def test_automatic_mode_needs_a_terminal_or_a_notebook(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)

    class Stream:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(progress, "_in_notebook", lambda: False)
    monkeypatch.setattr(sys, "stderr", Stream(False))
    assert progress.progress_enabled(None)[0] is False  # logs, CI: silent
    monkeypatch.setattr(sys, "stderr", Stream(True))
    # a terminal: on, but only for runs longer than AUTO_DELAY seconds
    assert progress.progress_enabled(None) == (True, progress.AUTO_DELAY)
    monkeypatch.setattr(sys, "stderr", Stream(False))
    monkeypatch.setattr(progress, "_in_notebook", lambda: True)
    assert progress.progress_enabled(None) == (True, progress.AUTO_DELAY)


def test_checkpoint_transform_counts_every_sample(bars, tmp_path):
    wrapper = mario.wrap(
        ["sample", "checkpoint"], FunctionTransformer(np.sqrt),
        features_dir=str(tmp_path), progress=True,
    )  # fmt: skip
    wrapper.transform(samples(50))
    wrapper.transform(samples(60))  # 50 loaded, 10 computed
    assert [(b.total, b.n, b.closed) for b in bars] == [(50, 50, True), (60, 60, True)]
    assert bars[0].desc == "transform FunctionTransformer" and bars[0].delay == 0.0


def test_sample_sets_count_their_samples(bars, tmp_path):
    sets = [mario.SampleSet(samples(3), key=str(k)) for k in range(2)]
    for k, sset in enumerate(sets):
        for s in sset:
            s.key = f"{k}/{s.key}"
    mario.CheckpointWrapper(
        mario.SampleWrapper(FunctionTransformer()), str(tmp_path), progress=True
    ).transform(sets)
    assert [(b.total, b.n) for b in bars] == [(6, 6)]


def test_no_bar_when_off_or_not_a_terminal(bars, tmp_path):
    wrapper = mario.CheckpointWrapper(
        mario.SampleWrapper(FunctionTransformer()), str(tmp_path / "a"), progress=False
    )
    wrapper.transform(samples(5))
    default = mario.CheckpointWrapper(
        mario.SampleWrapper(FunctionTransformer()), str(tmp_path / "b")
    )
    default.transform(samples(5))  # pytest captures stderr: not a terminal
    assert bars == []


def test_environment_variable_turns_bars_on(bars, tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "1")
    mario.CheckpointWrapper(mario.SampleWrapper(FunctionTransformer()), str(tmp_path)).transform(
        samples(4)
    )
    assert [(b.total, b.n) for b in bars] == [(4, 4)]


def test_checkpointed_fit_shows_a_bar(bars, tmp_path):
    wrapper = mario.wrap(
        ["sample", "checkpoint"], StandardScaler(), model_path=str(tmp_path / "m.pkl"),
        progress=True,
    )  # fmt: skip
    wrapper.fit(samples(4))
    assert [(b.desc, b.total, b.n) for b in bars] == [("fit StandardScaler", 1, 1)]


def test_wrap_accepts_progress_without_a_wrapper_that_uses_it():
    wrapped = mario.wrap(["sample"], FunctionTransformer(), progress=True)
    assert isinstance(wrapped, mario.SampleWrapper)


def test_real_tqdm_bar_is_written_to_stderr(tmp_path, capsys):
    mario.CheckpointWrapper(
        mario.SampleWrapper(FunctionTransformer()), str(tmp_path), progress=True
    ).transform(samples(3))
    err = capsys.readouterr().err
    assert "transform FunctionTransformer" in err and "/3" in err


def test_progress_bar_helper_for_other_front_ends(bars):
    with mario.progress_bar(10, "steps", progress=True, unit="step") as bar:
        bar.update(4)
    with mario.progress_bar(10, "steps", progress=False) as silent:
        silent.update(4)
    assert [(b.desc, b.unit, b.total, b.n, b.closed) for b in bars] == [
        ("steps", "step", 10, 4, True)
    ]


def test_compute_with_progress_on_the_local_scheduler(bars):
    pytest.importorskip("dask.bag")
    bag = mario.ToDaskBag(npartitions=4).transform(list(range(8)))
    doubled = bag.map(lambda x: 2 * x)
    assert mario.compute_with_progress(doubled, progress=True, desc="bag") == [
        2 * x for x in range(8)
    ]
    assert len(bars) == 1 and bars[0].desc == "bag" and bars[0].n == bars[0].total >= 4
