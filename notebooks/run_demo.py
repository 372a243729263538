"""Execute ``quickstart.ipynb`` twice through a real Jupyter kernel and show, cell by cell, the skip.

``make demo`` calls this. Each run starts a fresh kernel (as after a restart) running
this interpreter; the store lives in ``notebooks/.demo-store/store`` and is emptied
before the first run, so the first run always computes. Cell times come from the
execution timestamps nbclient records in each cell's metadata. The executed notebooks
are kept next to the store (``quickstart-run1.ipynb``, ``quickstart-run2.ipynb``).

``python notebooks/run_demo.py --script`` runs ``quickstart_script.py`` (the same
workflow with ``@checkpoint`` only) twice in fresh processes instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NOTEBOOK = HERE / "quickstart.ipynb"
SCRIPT = HERE / "quickstart_script.py"
DEMO_DIR = HERE / ".demo-store"
STORE = DEMO_DIR / "store"
KERNEL_NAME = "python3"


def _kernelspec_manager(root: Path) -> Any:
    """A kernel spec manager whose ``python3`` kernel runs this interpreter (not whatever is installed)."""
    from jupyter_client.kernelspec import KernelSpecManager

    kernel_dir = root / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (checkpoint_magic demo)", "language": "python"}  # fmt: skip
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root / "kernels")], ensure_native_kernel=False)


def _env() -> dict[str, str]:
    env = dict(os.environ, CHECKPOINT_MAGIC_DIR=str(STORE))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    return env


def run_notebook(ksm: Any) -> tuple[Any, float]:
    """Execute the notebook once in a new kernel; return it (with timings) and the wall time."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(
        nb,
        km=KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm),
        kernel_name=KERNEL_NAME,
        timeout=600,
        record_timing=True,
        resources={"metadata": {"path": str(HERE)}},
    )
    start = time.perf_counter()
    # The kernel's own log lines (stderr) are noise here.
    client.execute(env=_env(), stderr=subprocess.DEVNULL)
    return nb, time.perf_counter() - start


def cell_seconds(cell: Any) -> float:
    """Execution time of a code cell from nbclient's timestamps (execute_input to execute_reply)."""
    timing = cell.get("metadata", {}).get("execution", {})
    start, end = timing.get("iopub.execute_input"), timing.get("shell.execute_reply")
    if not (start and end):
        return float("nan")

    def parse(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    return (parse(end) - parse(start)).total_seconds()


def _label(cell: Any) -> str:
    lines = [line for line in cell.source.splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if first.startswith("%%checkpoint"):  # the line after the magic says more
        first = "%%checkpoint: " + next(
            (ln for ln in lines[1:] if not ln.startswith(("import ", "from "))), ""
        )
    elif first.startswith("@checkpoint"):
        first = "@checkpoint " + (lines[1] if len(lines) > 1 else "")
    elif any("InlineCheckpoint(" in line for line in lines):
        first = "InlineCheckpoint: " + next(ln.strip() for ln in lines if "InlineCheckpoint(" in ln)
    elif sum(line.startswith(("import ", "from ")) for line in lines) > 2:
        first += " + imports"
    return first if len(first) <= 58 else first[:55] + "..."


def _notes(cell: Any) -> list[str]:
    """The ``[checkpoint]`` notes a cell showed (hits, misses with a reason, values not stored)."""
    return [
        str(o["data"].get("text/plain", ""))
        for o in cell.get("outputs", ())
        if o.get("output_type") == "display_data"
        and str(o.get("data", {}).get("text/plain", "")).startswith("[checkpoint] ")
    ]


def _restored(cell: Any) -> bool:
    return any(note.startswith("[checkpoint] restored") for note in _notes(cell))


def main_notebook() -> int:
    import nbformat

    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    print(
        f"notebook: {NOTEBOOK.relative_to(REPO)}\nstore:    {STORE.relative_to(REPO)} (emptied)\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        ksm = _kernelspec_manager(Path(tmp))
        runs = []
        for i in (1, 2):
            nb, wall = run_notebook(ksm)
            nbformat.write(nb, DEMO_DIR / f"quickstart-run{i}.ipynb")
            runs.append((nb, wall))
            print(f"run {i}: {wall:.1f} s (fresh kernel, including its start-up)")
    first, second = runs[0][0], runs[1][0]
    rows = [(i, c, second.cells[i]) for i, c in enumerate(first.cells) if c.cell_type == "code"]
    width = max(len(_label(c)) for _, c, _ in rows)
    print(f"\n{'cell':<{width + 5}} {'1st run':>8} {'2nd run':>8}")
    totals = [0.0, 0.0]
    for i, c1, c2 in rows:
        t1, t2 = cell_seconds(c1), cell_seconds(c2)
        totals[0] += t1
        totals[1] += t2
        note = "  restored" if _restored(c2) else ""
        print(f"[{i:>2}] {_label(c1):<{width}} {t1:>7.2f}s {t2:>7.2f}s{note}")
    print(f"{'all cells':<{width + 5}} {totals[0]:>7.2f}s {totals[1]:>7.2f}s")
    print("\n'restored': the cell showed a note saying what was restored instead of recomputed")
    print("(%%checkpoint always; @checkpoint and InlineCheckpoint when the skipped step took >= 1 s).")
    print("\nnotes shown in the second run:")
    for i, _, c2 in rows:
        for note in _notes(c2):
            print(f"  [{i:>2}] {note}")
    from checkpoint_magic.tools.report import write_report

    report = write_report(DEMO_DIR / "report.html", STORE)
    print(
        f"\nexecuted notebooks: {DEMO_DIR.relative_to(REPO)}/quickstart-run1.ipynb, quickstart-run2.ipynb"
    )
    print(f"store report (open it in a browser): {report}")
    return 0


# --------------------------------------------------------------------------- the plain-script variant
def run_script() -> tuple[float, dict[str, float], str]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)], env=_env(), capture_output=True, text=True, check=True
    )
    total = time.perf_counter() - start
    steps = {
        m.group(1): float(m.group(2))
        for m in re.finditer(r"^\[step\] (.+?): ([0-9.]+) s$", proc.stdout, re.M)
    }
    return total, steps, proc.stdout


def main_script() -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    print(f"script: {SCRIPT.relative_to(REPO)}\nstore:  {STORE.relative_to(REPO)} (emptied)\n")
    runs = [run_script() for _ in range(2)]
    names = list(runs[0][1])
    width = max(len(n) for n in names)
    print(f"{'step':<{width}}  {'1st run':>9}  {'2nd run':>9}")
    for name in names:
        print(
            f"{name:<{width}}  {runs[0][1][name]:>8.3f}s  {runs[1][1].get(name, float('nan')):>8.3f}s"
        )
    print(f"{'whole script (incl. start-up)':<{width}}  {runs[0][0]:>8.3f}s  {runs[1][0]:>8.3f}s")
    print("\nsecond run output:\n" + runs[1][2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main_script() if "--script" in sys.argv[1:] else main_notebook())
