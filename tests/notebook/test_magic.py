"""Tests of the IPython extension and the ``%%checkpoint`` cell magic.

Two layers: fast in-process tests on IPython's test shell (argument errors, what is
inferred, restored and replayed), and notebooks executed through a real Jupyter kernel
(nbclient + ipykernel), run, then run again in a new kernel.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from checkpoint_magic.exceptions import MissingProducedNameError
from checkpoint_magic.store.core import Store

# --------------------------------------------------------------------------- in-process shell


@pytest.fixture
def ip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """IPython's test shell with the extension loaded; names added by a test are removed after it."""
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.extension_manager.load_extension("checkpoint_magic")
    monkeypatch.chdir(tmp_path)
    before = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]


def cell(ip: Any, source: str, line: str = "-q") -> Any:
    """Run ``%%checkpoint line`` on ``source``; return the magic's value."""
    return ip.run_cell_magic("checkpoint", line, textwrap.dedent(source))


def runs_file(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


SIDE_EFFECT = 'with open("runs.txt", "a") as _fh:\n    _fh.write("ran\\n")\n'


@pytest.mark.parametrize(
    ("line", "fragment"),
    [
        ("--bogus", "unrecognized arguments"),
        ("-w", "expected at least one argument"),
        ("-w 'x + 1'", "is not a name, an attribute path"),
        ("-w not_defined_anywhere", "does not exist; define it before this cell"),
        ("-p __outputs__", "reserved"),
        ("-n ''", "--name needs a non-empty name"),
        ("-w 'unclosed", "check the quotes"),
    ],
)
def test_bad_arguments_raise_usage_error_saying_how_to_fix(
    ip: Any, line: str, fragment: str
) -> None:
    with pytest.raises(UsageError, match="%%checkpoint") as info:
        cell(ip, "y = 1", line)
    assert fragment in str(info.value)
    assert "y" not in ip.user_ns


def test_store_that_is_a_file_empty_cell_and_star_import_are_usage_errors(
    ip: Any, tmp_path: Path
) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UsageError, match="is a file; give a directory"):
        cell(ip, "y = 1", f"--store {tmp_path / 'afile'}")
    with pytest.raises(UsageError, match="the cell is empty"):
        cell(ip, "\n  \n")
    with pytest.raises(UsageError, match="--produce"):
        cell(ip, "from os.path import *")
    cell(ip, "from os.path import *\nj = join('a', 'b')", "-q -p j")  # explicit produce: fine
    assert ip.user_ns["j"] == "a/b"


def test_hit_skips_the_cell_restores_values_and_replays_output(ip: Any, tmp_path: Path) -> None:
    ip.user_ns["base"] = 10
    source = SIDE_EFFECT + "value = base * 2\nprint('computed', value)\nvalue + 1\n"
    with capture_output() as first:
        assert cell(ip, source, "") == 21
    assert first.stdout == "computed 20\n"
    del ip.user_ns["value"]
    with capture_output() as second:
        assert cell(ip, source, "") == 21
    assert runs_file(tmp_path / "runs.txt") == 1
    assert ip.user_ns["value"] == 20
    # the replayed output first, then the note saying it was restored
    replayed, restored_line = second.stdout.rstrip("\n").split("\n", 1)
    assert (
        restored_line.startswith("[checkpoint] restored value (computed ")
        and "cell skipped" in restored_line
    )
    assert replayed == "computed 20"
    with capture_output() as quiet:
        cell(ip, source, "--quiet")
    assert quiet.stdout == "computed 20\n"


def test_rich_displays_and_stderr_are_replayed_in_order(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the terminal shell formats text/plain only; a notebook frontend asks for HTML too
    monkeypatch.setattr(ip.display_formatter, "active_types", ["text/plain", "text/html"])
    source = """
        import sys
        from IPython.display import HTML, display
        print("before")
        display(HTML("<table><tr><td>1</td></tr></table>"))
        print("oops", file=sys.stderr)
        shown = True
    """
    with capture_output() as first:
        cell(ip, source)
    with capture_output() as second:
        cell(ip, source)
    for captured in (first, second):
        assert captured.stdout == "before\n" and captured.stderr == "oops\n"
        assert [o.data["text/html"] for o in captured.outputs] == [
            "<table><tr><td>1</td></tr></table>"
        ]


def test_upstream_change_and_code_edit_recompute_but_comments_do_not(
    ip: Any, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.txt"
    ip.user_ns["scale"] = 2
    cell(ip, SIDE_EFFECT + "out = scale * 3")
    cell(ip, SIDE_EFFECT + "out = scale * 3")
    assert runs_file(runs) == 1
    ip.user_ns["scale"] = 5  # an upstream variable changed
    cell(ip, SIDE_EFFECT + "out = scale * 3")
    assert (runs_file(runs), ip.user_ns["out"]) == (2, 15)
    cell(ip, SIDE_EFFECT + "# a comment\nout = scale  *  3   # same code")
    assert runs_file(runs) == 2
    cell(ip, SIDE_EFFECT + "out = scale * 4")  # edited code
    assert (runs_file(runs), ip.user_ns["out"]) == (3, 20)
    ip.user_ns["scale"] = 2  # back to the first inputs: that entry is still there
    cell(ip, SIDE_EFFECT + "out = scale * 3")
    assert (runs_file(runs), ip.user_ns["out"]) == (3, 6)


def test_functions_count_by_code_and_the_globals_they_read(ip: Any, tmp_path: Path) -> None:
    ip.run_cell("factor = 3\ndef helper(v):\n    return v * factor\n")
    ip.user_ns["x"] = 7
    cell(ip, SIDE_EFFECT + "res = helper(x)")
    cell(ip, SIDE_EFFECT + "res = helper(x)")
    assert runs_file(tmp_path / "runs.txt") == 1
    ip.run_cell("factor = 4")  # read by helper, not by the cell itself
    cell(ip, SIDE_EFFECT + "res = helper(x)")
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["res"]) == (2, 28)
    ip.run_cell("def helper(v):\n    return v * factor + 1\n")  # helper's code changed
    cell(ip, SIDE_EFFECT + "res = helper(x)")
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["res"]) == (3, 29)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Write a local (user) module into ``tmp_path/src``, which is on ``sys.path``; forgotten after the test."""
    import importlib
    import sys

    src = tmp_path / "src"
    src.mkdir()
    monkeypatch.syspath_prepend(str(src))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no stale .pyc when a file is rewritten
    written: list[str] = []

    def write(name: str, source: str) -> Path:
        path = src / f"{name}.py"
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        written.append(name)
        return path

    yield write
    for name in written:
        sys.modules.pop(name, None)


def test_user_module_counts_by_its_running_code_not_its_file(
    ip: Any, tmp_path: Path, user_module: Any
) -> None:
    """Edited but not reloaded: the old code runs, so its result must not be filed under the new code."""
    user_module("cm_mod_stale", "def f(x):\n    return x + 1\n")
    ip.run_cell("import cm_mod_stale\nx = 200")
    source = SIDE_EFFECT + "r = cm_mod_stale.f(x)"
    cell(ip, source)
    assert ip.user_ns["r"] == 201
    user_module("cm_mod_stale", "def f(x):\n    return x + 2  # edited, not reloaded\n")
    cell(ip, source)
    assert ip.user_ns["r"] == 201  # what the running (old) code returns
    ip.run_cell("import importlib\nimportlib.reload(cm_mod_stale);")
    cell(ip, source)
    assert ip.user_ns["r"] == 202
    # a function defined in the notebook that calls the module counts by that code too
    user_module("cm_mod_stale", "def f(x):\n    return x + 3\n")
    ip.run_cell("def via_notebook(v):\n    return cm_mod_stale.f(v)\n")
    cell(ip, SIDE_EFFECT + "s = via_notebook(x)")
    assert ip.user_ns["s"] == 202
    ip.run_cell("importlib.reload(cm_mod_stale);")
    cell(ip, SIDE_EFFECT + "s = via_notebook(x)")
    assert ip.user_ns["s"] == 203


def test_modules_imported_by_a_user_module_are_followed(
    ip: Any, tmp_path: Path, user_module: Any
) -> None:
    user_module("cm_helpers", "def g(x):\n    return 2 * x\n")
    user_module("cm_lib", "import cm_helpers\n\ndef f(x):\n    return cm_helpers.g(x) + 1\n")
    ip.run_cell("import cm_lib\nx = 10")
    source = SIDE_EFFECT + "r = cm_lib.f(x)"
    cell(ip, source)
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (1, 21)
    user_module("cm_helpers", "def g(x):\n    return 3 * x\n")  # cm_lib.py is unchanged
    ip.run_cell("import importlib\nimportlib.reload(cm_lib.cm_helpers);")
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (2, 31)


def test_user_module_imported_by_the_cell_itself_is_followed(
    ip: Any, tmp_path: Path, user_module: Any
) -> None:
    import sys

    user_module("cm_own", "SCALE = [1, 2]\n\ndef f(x):\n    return x * sum(SCALE)\n")
    ip.user_ns["x"] = 10
    source = "import cm_own\n" + SIDE_EFFECT + "r = cm_own.f(x)"  # imported first: fingerprinted
    cell(ip, source)
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (1, 30)
    user_module("cm_own", "SCALE = [1, 2]\n\ndef f(x):\n    return x * sum(SCALE) + 1\n")
    del sys.modules["cm_own"]  # as in a new kernel: the cell imports the edited file
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (2, 31)
    user_module("cm_own", "SCALE = [1, 2, 3]\n\ndef f(x):\n    return x * sum(SCALE) + 1\n")
    ip.run_cell("import importlib\nimportlib.reload(cm_own);")  # module data, not code, changed
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (3, 61)
    cell(ip, "import cm_own\n" + SIDE_EFFECT + "%time r = cm_own.f(x)")  # code inside a line magic
    user_module("cm_own", "SCALE = [1, 2, 3]\n\ndef f(x):\n    return x * sum(SCALE) + 2\n")
    ip.run_cell("importlib.reload(cm_own);")
    cell(ip, "import cm_own\n" + SIDE_EFFECT + "%time r = cm_own.f(x)")
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (5, 62)


def test_user_module_first_imported_in_the_middle_of_the_cell_counts_by_its_code(
    ip: Any, tmp_path: Path, user_module: Any
) -> None:
    user_module("cm_late", "def f(x):\n    return x + 1\n")
    ip.user_ns["x"] = 1
    source = SIDE_EFFECT + "y = x\nimport cm_late\nr = cm_late.f(y)"
    cell(ip, source)  # the module is imported while the cell is fingerprinted: stored at once
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (1, 2)
    user_module("cm_late", "def f(x):\n    return x + 5\n")
    ip.run_cell("import importlib\nimportlib.reload(cm_late);")
    cell(ip, source)
    assert (runs_file(tmp_path / "runs.txt"), ip.user_ns["r"]) == (2, 6)


def test_inputs_modified_in_place_are_restored(ip: Any, tmp_path: Path) -> None:
    ip.user_ns["cfg"] = {"a": 1}
    cell(ip, SIDE_EFFECT + "cfg['b'] = cfg['a'] + 1")
    ip.user_ns["cfg"] = {"a": 1}  # as in a new kernel, before the cell runs
    cell(ip, SIDE_EFFECT + "cfg['b'] = cfg['a'] + 1")
    assert runs_file(tmp_path / "runs.txt") == 1
    assert ip.user_ns["cfg"] == {"a": 1, "b": 2}


def test_imports_functions_and_classes_are_defined_again_on_a_hit(ip: Any) -> None:
    source = """
        import json as js
        class Box:
            pass
        def double(v):
            return 2 * v * k
        payload = js.dumps([double(1)])
    """
    ip.user_ns["k"] = 1
    cell(ip, source)
    for name in ("js", "Box", "double", "payload"):
        del ip.user_ns[name]
    cell(ip, source)
    assert ip.user_ns["payload"] == "[2]" and ip.user_ns["js"].dumps(1) == "1"
    ip.user_ns["k"] = 10
    assert ip.user_ns["double"](1) == 20  # the live namespace, not a pickled copy of it
    assert isinstance(ip.user_ns["Box"], type)


def test_explicit_watch_and_produce(ip: Any, tmp_path: Path) -> None:
    ip.run_cell("class Cfg:\n    pass\ncfg = Cfg()\ncfg.alpha = 1\ncfg.other = 'x'\nd = {}")
    line = "-q -w cfg.alpha -p result d['k']"
    source = SIDE_EFFECT + "result = cfg.alpha * 10\nd['k'] = result + 1\ntemp = 5"
    cell(ip, source, line)
    ip.user_ns["cfg"].other = "changed but not watched"
    ip.user_ns["d"] = {}
    del ip.user_ns["result"], ip.user_ns["temp"]
    cell(ip, source, line)
    assert runs_file(tmp_path / "runs.txt") == 1
    assert ip.user_ns["result"] == 10 and ip.user_ns["d"] == {"k": 11} and "temp" not in ip.user_ns
    ip.user_ns["cfg"].alpha = 2
    cell(ip, source, line)
    assert runs_file(tmp_path / "runs.txt") == 2 and ip.user_ns["result"] == 20


def test_missing_produced_name_is_an_error_and_nothing_is_stored(ip: Any, tmp_path: Path) -> None:
    with pytest.raises(MissingProducedNameError, match="'nope'.*Nothing was stored"):
        cell(ip, SIDE_EFFECT + "yes = 1", "-q -p yes nope")
    with pytest.raises(MissingProducedNameError):
        cell(ip, SIDE_EFFECT + "yes = 1", "-q -p yes nope")
    assert runs_file(tmp_path / "runs.txt") == 2


def test_errors_propagate_and_nothing_is_stored(ip: Any, tmp_path: Path) -> None:
    source = SIDE_EFFECT + "partial = 1\nraise ValueError('boom')"
    for _ in range(2):
        with pytest.raises(ValueError, match="boom"):
            cell(ip, source)
    assert runs_file(tmp_path / "runs.txt") == 2
    assert not list(Store().iter_manifests())


def test_last_expression_value_display_and_semicolon(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ip.display_formatter, "active_types", ["text/plain", "text/html"])

    class Fancy:
        def _repr_html_(self) -> str:
            return "<i>fancy</i>"

        def __repr__(self) -> str:
            return "Fancy()"

    ip.user_ns["Fancy"] = Fancy
    assert cell(ip, "Fancy()").__class__ is Fancy
    replayed = cell(ip, "Fancy()")  # not plain data: its display is replayed as Out[n]
    assert repr(replayed) == "Fancy()"
    assert ip.display_formatter.format(replayed)[0]["text/html"] == "<i>fancy</i>"
    assert cell(ip, "[1, 2.5, 'x']") == [1, 2.5, "x"]
    assert cell(ip, "[1, 2.5, 'x']") == [1, 2.5, "x"]
    assert cell(ip, "z = 4\nz") == 4
    del ip.user_ns["z"]
    assert cell(ip, "z = 4\nz") == 4 and ip.user_ns["z"] == 4
    assert cell(ip, "w = 4\nw;") is None
    assert cell(ip, "w = 4\nw;") is None


def test_recompute_and_name(ip: Any, tmp_path: Path) -> None:
    store = tmp_path / "custom-store"
    cell(ip, SIDE_EFFECT + "v = 1", f"-q -n my-step --store {store}")
    cell(ip, SIDE_EFFECT + "v = 1", f"-q -n my-step --store {store}")
    cell(ip, SIDE_EFFECT + "v = 1", f"-q -n my-step --store {store} --recompute")
    assert runs_file(tmp_path / "runs.txt") == 2
    manifests = list(Store(store).iter_manifests("my-step"))
    assert len(manifests) == 1 and manifests[0]["kind"] == "cell"
    cell(ip, "u = 1\nv2 = 2")
    assert [m["namespace"] for m in Store().iter_manifests()] == ["cell:u,v2"]


def test_unload_removes_the_magic_and_restores_a_shadowed_one(ip: Any) -> None:
    manager = ip.magics_manager
    callbacks = {event: list(cbs) for event, cbs in ip.events.callbacks.items()}
    assert {"checkpoint_store", "checkpoint_why"} <= set(manager.magics["line"])
    ip.extension_manager.unload_extension("checkpoint_magic")
    assert "checkpoint" not in manager.magics["cell"] and "CheckpointMagics" not in manager.registry
    assert not {"checkpoint_store", "checkpoint_why"} & set(manager.magics["line"])

    def other(line: str, cell: str) -> str:
        return "other"

    ip.register_magic_function(other, "cell", "checkpoint")
    ip.extension_manager.load_extension("checkpoint_magic")
    assert ip.run_cell_magic("checkpoint", "-q", "q = 1") is None and ip.user_ns["q"] == 1
    ip.extension_manager.reload_extension("checkpoint_magic")
    ip.extension_manager.unload_extension("checkpoint_magic")
    assert ip.run_cell_magic("checkpoint", "", "q = 1") == "other"
    del manager.magics["cell"]["checkpoint"]
    ip.extension_manager.load_extension("checkpoint_magic")
    assert {event: list(cbs) for event, cbs in ip.events.callbacks.items()} == callbacks
    assert "checkpoint_store" in manager.magics["line"]


# --------------------------------------------------------------------------- a real kernel
# Only the real-kernel tests below need nbclient: a missing extra skips them (through the
# ``kernelspec`` fixture), never the in-process tests above.
try:
    from tests import nbhelpers
except ImportError:  # pragma: no cover - the test extras install nbclient
    nbhelpers = None  # type: ignore[assignment]

SNAPSHOT = """
import json
def _snapshot(ip=get_ipython()):
    return [{k: len(v) for k, v in ip.events.callbacks.items()},
            sorted(ip.magics_manager.magics["cell"]), sorted(ip.magics_manager.magics["line"]),
            sorted(ip.magics_manager.registry)]
"""

MAIN_CELL = """%%checkpoint
with open("side_effect.txt", "a") as fh:
    fh.write("ran\\n")
data = np.arange(5) * factor
print("computed data", data.sum())
from IPython.display import HTML, display
display(HTML("<b>a table</b>"))
int(data.sum()) + 1"""

PLOT_CELL = """%%checkpoint
import matplotlib.pyplot as plt
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot(data)
print("plotted")"""

FIRST_CELLS: list[str | tuple[str, list[str]]] = [
    SNAPSHOT + "_before_load = _snapshot()",
    "%load_ext checkpoint_magic",
    "import numpy as np\nfactor = 3",
    MAIN_CELL,
    "print('restored:', data.tolist(), HTML.__name__)",
    PLOT_CELL,
]

# Only in the second kernel, after the cells above have hit.
EXTRA_CELLS: list[str | tuple[str, list[str]]] = [
    "factor = 4",  # an upstream change: MAIN_CELL recomputes
    MAIN_CELL,
    MAIN_CELL.replace("data = np.arange(5) * factor", "data = np.arange(5) * factor  # same code"),
    MAIN_CELL.replace("np.arange(5)", "np.arange(6)"),  # an edit: recomputes
    """
_after_load = _snapshot()
%reload_ext checkpoint_magic
%reload_ext checkpoint_magic
_after_reload = _snapshot()
%unload_ext checkpoint_magic
_after_unload = _snapshot()
%load_ext checkpoint_magic
print(json.dumps([_before_load, _after_load, _after_reload, _after_unload, _snapshot()]))
""",
    ("%%checkpoint --watch\nx = 1", ["raises-exception"]),
    ("%%checkpoint\nraise KeyError('boom')", ["raises-exception"]),
]


@pytest.fixture(scope="module")
def kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if nbhelpers is None:
        pytest.skip("the real-kernel tests need nbclient, nbformat and ipykernel (the test extras)")
    return nbhelpers.write_kernelspec(tmp_path_factory.mktemp("kernelspec"))


def test_notebook_second_kernel_skips_restores_and_replays(kernelspec: Any, tmp_path: Path) -> None:
    env = {"CHECKPOINT_MAGIC_DIR": str(tmp_path / "store")}
    first = nbhelpers.execute(nbhelpers.notebook(FIRST_CELLS), kernelspec, cwd=tmp_path, env=env)
    second = nbhelpers.execute(
        nbhelpers.notebook(FIRST_CELLS + EXTRA_CELLS), kernelspec, cwd=tmp_path, env=env
    )
    runs = (tmp_path / "side_effect.txt").read_text().splitlines()
    text = nbhelpers.stream_text
    main1, main2 = first.cells[3], second.cells[3]

    # first run: the cell ran, its output shown live
    assert text(main1) == "computed data 30\n"
    assert [o["data"]["text/html"] for o in nbhelpers.outputs_of(main1, "display_data")] == [
        "<b>a table</b>"
    ]
    assert nbhelpers.result_text(main1) == "31"
    # second run, new kernel: not run again, variables restored, output replayed, then a note
    assert text(main2) == "computed data 30\n"
    displays = nbhelpers.outputs_of(main2, "display_data")
    assert displays[0]["data"]["text/html"] == "<b>a table</b>" and len(displays) == 2
    assert nbhelpers.notes_of(main2) == [displays[1]["data"]["text/plain"]]
    assert displays[1]["data"]["text/plain"].startswith("[checkpoint] restored data (computed ")
    assert displays[1]["data"]["text/plain"].endswith("cell skipped)")
    assert nbhelpers.result_text(main2) == "31"
    assert text(second.cells[4]) == "restored: [0, 3, 6, 9, 12] HTML\n"
    # the matplotlib figure is replayed as its image, once
    for plot in (first.cells[5], second.cells[5]):
        images = [o for o in nbhelpers.outputs_of(plot, "display_data") if "image/png" in o["data"]]
        assert len(images) == 1 and text(plot).endswith("plotted\n")
    assert nbhelpers.notes_of(second.cells[5])[0].startswith("[checkpoint] restored ax, fig (")

    # extra cells: upstream change recomputes, a comment does not, an edit does
    changed, commented, edited = second.cells[7], second.cells[8], second.cells[9]
    assert text(changed) == "computed data 40\n" and nbhelpers.result_text(changed) == "41"
    assert nbhelpers.notes_of(changed) == ["[checkpoint] recomputing cell:data: input changed: factor"]
    assert nbhelpers.notes_of(commented)[0].startswith("[checkpoint] restored data")
    assert text(edited) == "computed data 60\n"
    assert runs == ["ran"] * 3  # first run, upstream change, edit

    # %reload_ext / %unload_ext: no duplicate hooks, nothing left behind
    before, loaded, reloaded, unloaded, again = json.loads(text(second.cells[10]))
    # event callbacks: one post_execute (writing hit counts), removed by %unload_ext
    assert before[0] == unloaded[0] and loaded[0] == reloaded[0] == again[0]
    assert loaded[0] == {**before[0], "post_execute": before[0]["post_execute"] + 1}
    assert "checkpoint" in loaded[1] and loaded == reloaded == again
    assert "checkpoint" not in unloaded[1] and "CheckpointMagics" not in unloaded[3]
    assert unloaded[1:3] == before[1:3]
    # IPython registers ExtensionMagics lazily, on the first %load_ext
    assert set(unloaded[3]) - {"ExtensionMagics"} == set(before[3])
    # bad arguments and errors inside the cell show as errors
    usage, boom = second.cells[11:13]
    assert text(usage, "stderr").startswith("UsageError: %%checkpoint: argument -w/--watch")
    assert [e["ename"] for e in nbhelpers.outputs_of(boom, "error")] == ["KeyError"]


def test_a_progress_widget_is_replayed_in_its_final_state(
    ip: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tqdm-style widget (label, progress, label) is shown as it ended, not at 0%."""
    import types as _types

    class Label:
        def __init__(self, value: str) -> None:
            self.value = value

    class Progress:
        def __init__(self) -> None:
            self.value, self.max = 0, 10

    class Box:
        def __init__(self, children: list[Any]) -> None:
            self.children = children

    bar = Box([Label("fit: "), Progress(), Label(" 0/10")])
    fake = _types.ModuleType("ipywidgets")
    fake.Widget = type("Widget", (), {"widgets": {"m1": bar}})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ipywidgets", fake)
    ip.user_ns["_bar"] = bar
    monkeypatch.setitem(ip.user_ns_hidden, "_bar", bar)  # not an input: the bar's state changes
    source = """
        from IPython.display import display
        display({"application/vnd.jupyter.widget-view+json": {"model_id": "m1"}, "text/plain": "fit: 0%"}, raw=True)
        _bar.children[1].value = 10
        _bar.children[2].value = " 10/10"
        done = True
    """
    with capture_output():
        cell(ip, source)
    with capture_output() as second:
        cell(ip, source)
    assert [o.data["text/plain"] for o in second.outputs] == ["fit: |████████████████████| 10/10"]
    assert "<progress value='10' max='10'>" in second.outputs[0].data["text/html"]
