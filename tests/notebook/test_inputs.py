"""%%checkpoint cells through a real Jupyter kernel: files read count by content, files written
are outputs, data globals read through a helper count (issue #10). Each notebook runs in a new
kernel several times, with edits in between, as a user would."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

try:
    from tests import nbhelpers
except ImportError:  # pragma: no cover - the test extras install nbclient
    nbhelpers = None  # type: ignore[assignment]


@pytest.fixture(scope="module")
def kernelspec(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if nbhelpers is None:
        pytest.skip("the real-kernel tests need nbclient, nbformat and ipykernel (the test extras)")
    return nbhelpers.write_kernelspec(tmp_path_factory.mktemp("kernelspec"))


CELLS = [
    "%load_ext checkpoint_magic",
    "import pandas as pd\nCONFIG = {'factor': FACTOR}\ndef scale(v):\n    return v * CONFIG['factor']",
    "%%checkpoint\nprint('reading')\ndf = pd.read_csv('data.csv')\ntotal = scale(int(df['a'].sum()))",
    "%%checkpoint\nprint('writing')\ndf.to_csv('out.csv', index=False)\nn = len(df)",
    "print('total', total, 'n', n)",
]


def test_cell_files_and_globals_through_a_real_kernel(kernelspec: Any, tmp_path: Path) -> None:
    env = {"CHECKPOINT_MAGIC_DIR": str(tmp_path / "store")}
    (tmp_path / "data.csv").write_text("a\n1\n2\n")

    def run(factor: int) -> tuple[list[str], list[bool]]:
        """What each cell printed (a hit replays it) and whether it was restored."""
        cells = [c.replace("FACTOR", str(factor)) for c in CELLS]
        nb = nbhelpers.execute(nbhelpers.notebook(cells), kernelspec, cwd=tmp_path, env=env)
        restored = [
            any(n.startswith("[checkpoint] restored") for n in nbhelpers.notes_of(c))
            for c in nb.cells[2:]
        ]
        return [nbhelpers.stream_text(c) for c in nb.cells[2:]], restored

    out, restored = run(2)
    assert out == ["reading\n", "writing\n", "total 6 n 2\n"] and restored == [False, False, False]
    out, restored = run(2)  # nothing changed; out.csv, written by the cell, is not an input
    assert restored[:2] == [True, True] and out[2] == "total 6 n 2\n"
    (tmp_path / "data.csv").write_text("a\n1\n2\n3\n")
    out, restored = run(2)  # the file changed: both cells recompute
    assert restored[:2] == [False, False] and out[2] == "total 12 n 3\n"
    out, restored = run(3)  # a global read through a helper changed
    assert restored[0] is False and out[2] == "total 18 n 3\n"


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


def test_a_cell_follows_code_held_in_data_to_the_globals_it_reads(ip: Any) -> None:
    ip.run_cell("FACTOR = {'k': 2}\ndef double(v):\n    return v * FACTOR['k']\nOPS = {'op': double}")
    cell = "y = OPS['op'](3)\n"
    ip.run_cell_magic("checkpoint", "-q", cell)
    assert ip.user_ns["y"] == 6
    ip.run_cell("FACTOR['k'] = 5")  # a global read by a helper reached through a dict
    ip.run_cell_magic("checkpoint", "-q", cell)
    assert ip.user_ns["y"] == 15


@pytest.mark.parametrize(
    ("setup", "cell", "change", "before", "after"),
    [
        (  # the class of an object the cell reads: its methods' globals
            "K = [3]\nclass P:\n    def run(self, x):\n        return x * K[0]\np = P()",
            "y = [q.run(2) for q in [p]]\n",
            "K = [4]",
            [6],
            [8],
        ),
        (  # a name read by string
            "K = [3]\ndef h(x):\n    return x * globals()['K'][0]",
            "y = h(2)\n",
            "K = [4]",
            6,
            8,
        ),
        (  # an environment variable a helper reads
            "import os\nos.environ['CPM_TEST_SCALE'] = '3'\n"
            "def h(x):\n    return x * int(os.environ['CPM_TEST_SCALE'])",
            "y = h(2)\n",
            "os.environ['CPM_TEST_SCALE'] = '4'",
            6,
            8,
        ),
        (  # an object holding a function that reads a global
            "K = [3]\ndef h(x):\n    return x * K[0]\nclass Box:\n    def __init__(self, fn):\n"
            "        self.fn = fn\nbox = Box(h)",
            "y = box.fn(2)\n",
            "K = [4]",
            6,
            8,
        ),
        (  # np.vectorize of a function that reads a global
            "import numpy as np\nK = [3]\ndef h(x):\n    return x * K[0]\nvh = np.vectorize(h)",
            "y = int(vh(2))\n",
            "K = [4]",
            6,
            8,
        ),
        (  # the cell itself reads by string
            "import os\nK = [3]\nos.environ['CPM_TEST_SCALE'] = '1'",
            "y = globals()['K'][0] * int(os.environ['CPM_TEST_SCALE'])\n",
            "os.environ['CPM_TEST_SCALE'] = '2'",
            3,
            6,
        ),
        (  # a file a helper names
            "open('data.csv', 'w').write('3')\ndef load():\n    return int(open('data.csv').read())",
            "y = load()\n",
            "open('data.csv', 'w').write('4')",
            3,
            4,
        ),
        (  # files named in a list
            "open('data.csv', 'w').write('3')\npaths = ['data.csv']",
            "y = [int(open(p).read()) for p in paths]\n",
            "open('data.csv', 'w').write('4')",
            [3],
            [4],
        ),
    ],
    ids=[
        "instance-method",
        "globals-by-string",
        "environ",
        "box",
        "vectorize",
        "cell-by-string",
        "helper-file",
        "files-in-a-list",
    ],
)
def test_a_cell_sees_what_its_helpers_read_out_of_sight(
    ip: Any,
    monkeypatch: pytest.MonkeyPatch,
    setup: str,
    cell: str,
    change: str,
    before: Any,
    after: Any,
) -> None:
    monkeypatch.setenv("CPM_TEST_SCALE", "1")  # restored (unset) after the test
    ip.run_cell(setup)
    ip.run_cell_magic("checkpoint", "-q", cell)
    assert ip.user_ns["y"] == before
    ip.run_cell(change)
    ip.run_cell_magic("checkpoint", "-q", cell)
    assert ip.user_ns["y"] == after


def test_a_cell_that_stores_its_result_under_a_name_it_also_uses_as_a_key_hits(ip: Any) -> None:
    # The cell calls getattr: its constant "model" was taken as a name read by string, so
    # the cell's own output `model` (new on every run) was an input: it never hit again.
    ip.run_cell("import random")
    cell = "model = {'w': random.random()}\nresults = {'model': model}\nw = getattr(model, 'get')('w')\n"
    ip.run_cell_magic("checkpoint", "-q", cell)
    first = ip.user_ns["model"]
    for _ in range(2):
        ip.run_cell_magic("checkpoint", "-q", cell)
        assert ip.user_ns["model"] == first  # restored, not recomputed


def test_a_cell_reading_an_object_whose_getattr_raises_hits(ip: Any) -> None:
    # Looking for code the object holds read value.__dict__ through its __getattr__.
    ip.run_cell(
        "import random\nclass Proxy:\n    __slots__ = ('target',)\n"
        "    def __getattr__(self, name):\n        raise RuntimeError(name)\n"
        "p = Proxy()\np.target = 3"
    )
    cell = "y = (p.target, random.random())\n"
    ip.run_cell_magic("checkpoint", "-q", cell)
    first = ip.user_ns["y"]
    ip.run_cell_magic("checkpoint", "-q", cell)
    assert ip.user_ns["y"] == first  # restored, not recomputed
