"""Seed 001 (the bob.pipelines "Checkpointing" page) run as a doctest, import changed only.

The seed text is kept verbatim in ``tests/pipelines/seed.txt``. Its ``wrap`` examples use
``features_dir="features"`` and ``model_path="model.pkl"`` relative to the working
directory, and its model example names a file from ``tempfile``: the doctest runs inside a
temporary working directory with ``tempfile`` pointed there, so nothing lands in the repo.
"""

from __future__ import annotations

import doctest
import os
import tempfile

SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed.txt")
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def run_seed() -> tuple[doctest.TestResults, str]:
    with open(SEED, encoding="utf-8") as f:
        text = f.read()
    test = doctest.DocTestParser().get_doctest(text, {"__name__": "__main__"}, "seed_001", SEED, 0)
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=report.append)
    return runner.summarize(verbose=False), "".join(report)


def test_seed_text_is_the_seed_with_only_the_import_changed():
    with open(SEED, encoding="utf-8") as f:
        text = f.read()
    assert ">>> import checkpoint_magic.pipelines as mario" in text
    assert ">>> import bob" not in text
    assert text.count(">>> ") >= 25


def test_seed_001_examples_run_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # NamedTemporaryFile lands here
    results, report = run_seed()
    assert results.attempted >= 25
    assert results.failed == 0, report
    # the model example saved the model to the NamedTemporaryFile's name
    models = [p for p in os.listdir(tmp_path) if p.startswith("model") and p.endswith(".pkl")]
    assert len(models) == 1, os.listdir(tmp_path)
    # the wrap examples only build wrappers: nothing was written to the working directory
    assert not os.path.exists(tmp_path / "features")
    assert not os.path.exists(tmp_path / "model.pkl")


def test_seed_prints_what_it_says(tmp_path, monkeypatch, capsys):
    """The seed's outputs are checked by the doctest; this guards the doctest itself."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with open(SEED, encoding="utf-8") as f:
        broken = f.read().replace("['0.h5', '1.h5', '2.h5']", "['0.h5', '1.h5']")
    test = doctest.DocTestParser().get_doctest(broken, {"__name__": "__main__"}, "seed", SEED, 0)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    runner.run(test, out=lambda s: None)
    assert runner.summarize(verbose=False).failed == 1


SCRIPT_WITH_MODEL = """
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
import checkpoint_magic.pipelines as mario

class MyTransformer(TransformerMixin, BaseEstimator):
    def fit(self, X, y=None):
        print("fit")
        self.mean_ = np.mean(X)
        return self

    def transform(self, X):
        print("transform")
        return np.asarray(X) - self.mean_

samples = [mario.Sample(np.arange(3.0) + i, key=str(i)) for i in range(3)]
est = mario.wrap(["sample", "checkpoint"], MyTransformer(), features_dir="features", model_path="model.pkl")
print([float(s.data.sum()) for s in est.fit(samples).transform(samples)])
"""


def test_a_script_class_with_model_path_and_features_dir_is_reused_on_the_next_run(script):
    """The seed's usual set-up, run twice as a script: the model pickled with its ``__main__``
    class by value must not make every feature file look made by another configuration."""
    first = script.run(SCRIPT_WITH_MODEL)
    assert first.stdout.splitlines()[:2] == ["fit", "transform"]
    second = script.run(SCRIPT_WITH_MODEL)
    assert second.stdout.splitlines() == [first.stdout.splitlines()[-1]]  # no fit, no transform
    assert "Warning" not in second.stderr
