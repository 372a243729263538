"""Realistic scenarios run as a user would: a script, run again after each edit, in fresh processes.

Every run checks itself: each checkpointed result is compared with a plain call of the
undecorated function in the same run (``CHECK`` must equal ``RESULT``: zero stale results),
and the lines ``run:NAME`` say what was recomputed (no needless recompute for cosmetic edits:
comments, blank lines, docstrings; the order of a dict or of ``**kwargs`` is not cosmetic).
"""

from __future__ import annotations

import re
from collections import Counter

PIPELINE = '''
import json
import pandas as pd
from checkpoint_magic import InlineCheckpoint, checkpoint

CONFIG = {"scale": 2, "columns": ["a", "b"]}  # settings
OPTIONS = {"dropna": True, "fill": 0}


def double(v):
    return v * 2


STEPS = {"double": double}


@checkpoint
def load(path):
    print("run:load")
    return pd.read_csv(path)


@checkpoint
def clean(df, **opts):
    print("run:clean")
    out = df.dropna() if opts.get("dropna") else df.fillna(opts.get("fill", 0))
    return out.reset_index(drop=True), list(opts)


@checkpoint
def features(df, step):
    """Scaled columns."""
    print("run:features")
    return STEPS[step](df[CONFIG["columns"]] * CONFIG["scale"])


@checkpoint
def export(df):
    print("run:export")
    df.to_csv("features.csv", index=False)
    return len(df)


def show(tag, cached, plain):
    print("RESULT", tag, json.dumps(cached, sort_keys=True, default=str))
    print("CHECK", tag, json.dumps(plain, sort_keys=True, default=str))


raw = load("data.csv")
show("load", raw.to_dict("list"), load.__wrapped__("data.csv").to_dict("list"))
cleaned, keys = clean(raw, **OPTIONS)
show("clean", [cleaned.to_dict("list"), keys], [clean.__wrapped__(raw, **OPTIONS)[0].to_dict("list"), list(OPTIONS)])
feats = features(cleaned, "double")
show("features", feats.to_dict("list"), features.__wrapped__(cleaned, "double").to_dict("list"))
show("export", export(feats), len(feats))
with InlineCheckpoint() as block:
    print("run:block")
    summary = {c: float(feats[c].sum()) for c in CONFIG["columns"]}
show("block", summary, {c: float(feats[c].sum()) for c in CONFIG["columns"]})
'''


def _run(script, source: str, plain: frozenset[str] = frozenset()) -> tuple[set[str], dict[str, str]]:
    """Run; return what was recomputed (``plain``: steps also called undecorated once) and results."""
    out = script.run(source).stdout
    counts = Counter(re.findall(r"^run:(\w+)$", out, re.M))
    ran = {name for name, n in counts.items() if n > (1 if name in plain else 0)}
    results = dict(re.findall(r"^RESULT (\w+) (.*)$", out, re.M))
    checks = dict(re.findall(r"^CHECK (\w+) (.*)$", out, re.M))
    assert results == checks, f"stale result:\n{out}"
    return ran, results


PLAIN = frozenset({"load", "clean", "features"})


def test_pipeline_scenario_no_stale_result_no_needless_recompute(script):
    data = script.workdir / "data.csv"
    data.write_text("a,b\n1,2\n,4\n5,6\n")
    src = PIPELINE
    ran, _ = _run(script, src, PLAIN)
    assert ran >= {"clean", "features", "export", "block"}

    # cosmetic edits: comments, blank lines, a docstring; the written features.csv is an output
    src = src.replace("# settings", "# the settings").replace('"""Scaled columns."""', '"""Scale."""')
    src = src.replace("def double(v):\n", "def double(v):\n\n    # twice\n")
    ran, _ = _run(script, src, PLAIN)
    assert ran == set(), ran

    # a data global read through a helper's dict, and the helper held in a dict
    src = src.replace('"scale": 2', '"scale": 3')
    ran, _ = _run(script, src, PLAIN)
    assert ran == {"features", "export", "block"}, ran
    src = src.replace("return v * 2", "return v * 4")
    ran, _ = _run(script, src, PLAIN)
    assert ran == {"features", "export", "block"}, ran

    # the order of **kwargs is part of the call
    src = src.replace('{"dropna": True, "fill": 0}', '{"fill": 0, "dropna": True}')
    ran, _ = _run(script, src, PLAIN)
    assert "clean" in ran, ran

    # the input file changes
    data.write_text("a,b\n1,2\n,4\n5,7\n")
    ran, results = _run(script, src, PLAIN)
    assert ran == {"load", "clean", "features", "export", "block"}, ran


STATEFUL = '''
from checkpoint_magic import checkpoint

MEMO = {}
LOG = []


def fib(n):
    if n not in MEMO:
        MEMO[n] = n if n < 2 else fib(n - 1) + fib(n - 2)
    return MEMO[n]


@checkpoint
def table(n, out):
    print("run:table")
    LOG.append(n)
    out.extend(fib(i) for i in range(n))
    return sum(out)


out = []
total = table(N, out)
print("RESULT table", total, out)
print("CHECK table", sum(fib(i) for i in range(N)), [fib(i) for i in range(N)])
'''


def test_stateful_scenario_memo_globals_and_mutated_arguments(script):
    src = STATEFUL.replace("N", "10")
    assert _run(script, src)[0] == {"table"}
    assert _run(script, src)[0] == set()  # MEMO and LOG are state, not inputs; out is replayed
    assert _run(script, src)[0] == set()
    src = STATEFUL.replace("N", "12")
    assert _run(script, src)[0] == {"table"}
