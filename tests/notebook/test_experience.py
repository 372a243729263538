"""The notebook experience in a real Jupyter kernel: every hit visible, nothing silently uncached.

One notebook is run in two fresh kernels over the same store; the second run must skip
every body (side-effect files count the runs), restore the values, show the expected
one-line notes, and show no warning text.
"""

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


def _ran(name: str) -> str:
    return f"open({name!r}, 'a').write('ran\\n')\n"


CELLS: list[str | tuple[str, list[str]]] = [
    # 0: setup; every hit gets a note (no step here takes a second)
    "%load_ext checkpoint_magic\nimport checkpoint_magic\ncheckpoint_magic.config.NOTE_HIT_SECONDS = 0",
    # 1: a tqdm bar imports multiprocessing, which aliases __mp_main__ to __main__
    "%%checkpoint\nfrom tqdm import tqdm\n" + _ran("tqdm.txt") + "squares = []\n"
    "for i in tqdm(range(5)):\n    squares.append(i * i)\nprint('squares done')",
    # 2: a process pool: the executor cannot be stored, the rest is
    "%%checkpoint\nimport concurrent.futures\n" + _ran("pool.txt")
    + "with concurrent.futures.ProcessPoolExecutor(max_workers=1) as ex:\n"
    "    cubes = list(ex.map(abs, [-1, -8, -27]))",
    # 3: @checkpoint with a helper
    "from checkpoint_magic import checkpoint\n"
    "def clean(x):\n    return x + 1\n"
    "@checkpoint\ndef load_data(n):\n    " + _ran("load.txt") + "    return clean(n)\n"
    "value = load_data(3)",
    # 4: InlineCheckpoint whose block prints
    "from checkpoint_magic import InlineCheckpoint\nbase = 21\n"
    "with InlineCheckpoint(watch=['base'], produce=['fitted']):\n    "
    + _ran("inline.txt")
    + "    fitted = base * 2\n    print('PCA fitted')",
    # 5: a cell timed with %time
    "%%checkpoint\n%time timed = sum(range(1000))",
    # 6: top-level await
    ("%%checkpoint\nimport asyncio\nawait asyncio.sleep(0)\nslept = True", ["raises-exception"]),
    # 7: a cell that uses a helper
    "def helper(v):\n    return v + 1",
    "%%checkpoint -n helped\nhelped = helper(2)",
    "print(squares, cubes, value, fitted, timed, helped)",
]

CELLS.append("%%checkpoint -n wrapped\nwrapped = load_data(5)")  # 10: a note inside a cell

# Only in the second kernel, after the hits: a helper changes.
EDITS: list[str | tuple[str, list[str]]] = [
    "def clean(x):\n    return x + 2\nvalue = load_data(3)",
    "def helper(v):\n    return v + 10",
    "%%checkpoint -n helped\nhelped = helper(2)",
    "%checkpoint_why helped",
]


def _warnings(nb: Any) -> list[str]:
    return [
        text
        for cell in nb.cells
        for text in (nbhelpers.stream_text(cell, "stderr"),)
        if "Warning" in text
    ]


def test_second_kernel_skips_every_body_with_visible_notes_and_no_warnings(
    kernelspec: Any, tmp_path: Path
) -> None:
    env = {"CHECKPOINT_MAGIC_DIR": str(tmp_path / "store")}
    first = nbhelpers.execute(nbhelpers.notebook(CELLS), kernelspec, cwd=tmp_path, env=env)
    second = nbhelpers.execute(
        nbhelpers.notebook(CELLS + EDITS), kernelspec, cwd=tmp_path, env=env
    )
    text, notes = nbhelpers.stream_text, nbhelpers.notes_of
    runs = {
        name: (tmp_path / f"{name}.txt").read_text().count("ran")
        for name in ("tqdm", "pool", "load", "inline")
    }
    # every body ran once (load_data for two arguments, and again after its helper changed)
    assert runs == {"tqdm": 1, "pool": 1, "load": 3, "inline": 1}
    assert _warnings(first) == [] and _warnings(second) == []
    values = "[0, 1, 4, 9, 16] [1, 8, 27] 4 42 499500 3\n"
    assert text(first.cells[9]) == text(second.cells[9]) == values

    # 1: tqdm no longer makes the cell uncacheable; the note lists produced names, not `i`
    assert "squares done" in text(second.cells[1])
    assert notes(second.cells[1])[0].startswith("[checkpoint] restored squares (computed ")
    # 2: the executor is left out with one note, the rest is cached
    assert notes(first.cells[2]) == [
        "[checkpoint] not stored (cannot be saved; a hit leaves them unset): ex (ProcessPoolExecutor)"
    ]
    assert notes(second.cells[2])[0].startswith("[checkpoint] restored cubes (")
    # 3: a hit of @checkpoint is visible, and so is why it recomputes
    assert notes(first.cells[3]) == []
    assert notes(second.cells[3])[0].startswith("[checkpoint] restored load_data (took ")
    assert notes(second.cells[11]) == ["[checkpoint] recomputing load_data: code changed: clean"]
    # 4: InlineCheckpoint replays what the block printed, then says it was restored
    assert text(first.cells[4]) == text(second.cells[4]) == "PCA fitted\n"
    assert notes(second.cells[4])[0].startswith("[checkpoint] restored fitted (took ")
    # 5: the replayed %time output is marked as old
    assert notes(second.cells[5])[0].endswith("; the timings shown are from that run")
    # 6: top-level await is a clear usage error
    for nb in (first, second):
        assert text(nb.cells[6], "stderr").startswith("UsageError: %%checkpoint: line 3 awaits")
    # the hits are counted although a kernel shut down does not run atexit handlers
    from checkpoint_magic.tools.report import entries_frame

    hits = entries_frame(tmp_path / "store").groupby("name")["hits"].sum()
    assert hits["cell:squares"] == 1 and hits["cell:cubes"] == 1
    # 7: %checkpoint_why blames the helper, not the cell's code
    why = nbhelpers.result_text(second.cells[14]) or ""
    # a note shown while a cell ran is not part of the cell's replayed output
    assert notes(first.cells[10]) == ["[checkpoint] recomputing load_data: input changed: n"]
    assert [n[:31] for n in notes(second.cells[10])] == ["[checkpoint] restored wrapped ("]
    assert "code changed: __main__.helper" in why and "<cell" not in why, why
