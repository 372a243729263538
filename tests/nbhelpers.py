"""Run notebooks through a real Jupyter kernel (nbclient + ipykernel) with this interpreter.

The kernel spec is written into a temporary directory and points at ``sys.executable``,
so the tests use the repository's ``.venv`` whatever kernels the machine has installed.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parents[1]
KERNEL_NAME = "python3"


def write_kernelspec(root: Path) -> KernelSpecManager:
    """A kernel spec manager whose only ``python3`` kernel runs ``sys.executable``."""
    kernel_dir = root / "kernels" / KERNEL_NAME
    kernel_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "checkpoint_magic tests",
        "language": "python",
    }
    (kernel_dir / "kernel.json").write_text(json.dumps(spec))
    return KernelSpecManager(kernel_dirs=[str(root / "kernels")], ensure_native_kernel=False)


def notebook(cells: Sequence[str | tuple[str, Sequence[str]]]) -> Any:
    """A notebook of code cells; a ``(source, tags)`` pair sets cell tags (e.g. ``raises-exception``)."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        source, tags = (cell, ()) if isinstance(cell, str) else cell
        node = nbformat.v4.new_code_cell(source)
        if tags:
            node.metadata["tags"] = list(tags)
        nb.cells.append(node)
    nb.metadata["kernelspec"] = {
        "name": KERNEL_NAME,
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def kernel_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for a kernel: the current one, the repository importable, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    env.update(extra or {})
    return env


def execute(
    nb: Any,
    ksm: KernelSpecManager,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: int = 120,
) -> Any:
    """Execute ``nb`` in a fresh kernel (working directory ``cwd``); return the executed notebook."""
    km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=ksm)
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        kernel_name=KERNEL_NAME,
        record_timing=True,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=kernel_env(env))
    return nb


def stream_text(cell: Any, name: str = "stdout") -> str:
    """Everything a cell wrote to one stream."""
    return "".join(
        o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name
    )


def outputs_of(cell: Any, output_type: str) -> list[Any]:
    """The cell's outputs of one type (``display_data``, ``execute_result``, ``error``...)."""
    return [o for o in cell.outputs if o.output_type == output_type]


def result_text(cell: Any) -> str | None:
    """The ``text/plain`` of the cell's ``Out[n]``, if it has one."""
    results = outputs_of(cell, "execute_result")
    return results[0]["data"].get("text/plain") if results else None


def notes_of(cell: Any) -> list[str]:
    """The text of the ``[checkpoint]`` notes a cell shows (hits, misses with a reason)."""
    return [
        o["data"]["text/plain"]
        for o in outputs_of(cell, "display_data")
        if str(o["data"].get("text/plain", "")).startswith("[checkpoint] ")
    ]
