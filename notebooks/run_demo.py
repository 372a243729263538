"""Run the quickstart twice in fresh processes and show, step by step, the second run skipping work.

``make demo`` calls this. Each run uses a fresh interpreter (as after a kernel restart);
the store lives in ``notebooks/.demo-store`` and is emptied before the first run so the
first run always computes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STORE = HERE / ".demo-store"
SCRIPT = HERE / "quickstart_script.py"


def run_script() -> tuple[float, dict[str, float], str]:
    env = dict(os.environ, CHECKPOINT_MAGIC_DIR=str(STORE))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, check=True)
    total = time.perf_counter() - start
    steps = {m.group(1): float(m.group(2)) for m in re.finditer(r"^\[step\] (.+?): ([0-9.]+) s$", proc.stdout, re.M)}
    return total, steps, proc.stdout


def main() -> int:
    shutil.rmtree(STORE, ignore_errors=True)
    print(f"store: {STORE}\n")
    runs = [run_script() for _ in range(2)]
    names = list(runs[0][1])
    width = max(len(n) for n in names)
    print(f"{'step':<{width}}  {'1st run':>9}  {'2nd run':>9}")
    for name in names:
        print(f"{name:<{width}}  {runs[0][1][name]:>8.3f}s  {runs[1][1].get(name, float('nan')):>8.3f}s")
    print(f"{'whole script (incl. start-up)':<{width}}  {runs[0][0]:>8.3f}s  {runs[1][0]:>8.3f}s")
    print("\nsecond run output:\n" + runs[1][2])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
