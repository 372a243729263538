"""The package's shape, checked statically: layers, no import cycles, no private names across
modules, size limits, and the public import paths that must keep working.

The layer contract itself (which folder may import which) lives in ``pyproject.toml`` and is
checked by ``lint-imports``, which ``make test`` runs before pytest; this module checks what
import-linter does not: cycles inside a layer, private names, sizes, and fresh-process imports.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "checkpoint_magic"
MAX_MODULE_LINES = 600
# 8 modules + 9 layer folders (DESIGN.md's picture, with core/ and ui/), plus _deprecated/.
MAX_TOP_LEVEL_ENTRIES = 18


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str) -> Iterator[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import in ``module``, at any depth."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, "", node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    yield f"{target}.{alias.name}", "", node.lineno
                else:
                    yield target, alias.name, node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in MODULES:
        for target, _, _ in _imports(module):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in MODULES:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles(
        {
            "checkpoint_magic.config": {"checkpoint_magic.exceptions"},
            "checkpoint_magic.exceptions": {"checkpoint_magic.config"},
        }
    ) == [["checkpoint_magic.config", "checkpoint_magic.exceptions"]]


def test_no_import_cycles_even_through_imports_inside_functions() -> None:
    assert _cycles(_graph()) == []


def test_no_private_name_is_imported_across_modules() -> None:
    crossings = []
    for module in MODULES:
        aliases: dict[str, str] = {}
        for target, name, line in _imports(module):
            if not target.startswith("checkpoint_magic") or target == module:
                continue
            if name.startswith("_") and not name.startswith("__"):
                crossings.append(f"{module}:{line} imports {target}.{name}")
        tree = ast.parse(MODULES[module].read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(module, node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in MODULES:
                        aliases[alias.asname or alias.name] = f"{target}.{alias.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                crossings.append(
                    f"{module}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}"
                )
    assert crossings == []


def test_folders_show_the_layers_and_modules_stay_small() -> None:
    entries = sorted(p.name for p in PACKAGE.iterdir() if p.name != "__pycache__")
    assert len(entries) <= MAX_TOP_LEVEL_ENTRIES, entries
    for folder in ("core", "fingerprint", "store", "savers", "notebook", "steps", "pipelines", "tools", "ui"):
        assert (PACKAGE / folder / "__init__.py").is_file(), folder
    too_long = {
        name: n
        for name, path in MODULES.items()
        if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert too_long == {}


def test_every_module_says_what_it_owns() -> None:
    missing = [
        name for name, path in MODULES.items() if not ast.get_docstring(ast.parse(path.read_text()))
    ]
    assert missing == []


PUBLIC_PATHS = """
import warnings
warnings.simplefilter("error")
import sys
from checkpoint_magic import (
    ComplexParamsIdentifyWarning, InlineCheckpoint, Memory, Store, checkpoint, dump, load,
)
heavy = sorted(m for m in ("IPython", "sklearn", "h5py", "dask", "pandas") if m in sys.modules)
import checkpoint_magic.pipelines
import checkpoint_magic.steps
from checkpoint_magic.steps import Checkpoint, StepCheckpoint
from checkpoint_magic.store import Store as Store2
from checkpoint_magic.pipelines import CheckpointWrapper, Sample, SampleWrapper, wrap
from checkpoint_magic import load_ipython_extension, unload_ipython_extension
assert Store is Store2
print("ok", heavy)
"""

DEPRECATED_PATHS = """
import warnings
for old, attr in [("hashing", "fingerprint"), ("codehash", "code_fingerprint"),
                  ("serializers", "codec_for"), ("cli", "main"), ("magics", "load_ipython_extension"),
                  ("checkpointer", "Checkpointer")]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = __import__(f"checkpoint_magic.{old}", fromlist=[attr])
    assert callable(getattr(module, attr)), old
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught), old
print("ok")
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args, "-c", code] if code else [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_public_import_paths_work_in_a_fresh_process_and_stay_cheap() -> None:
    result = _run(PUBLIC_PATHS)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.split("\n")[0] == "ok []"
    )  # the package root's names import no heavy package


def test_old_module_paths_still_import_with_a_deprecation_warning() -> None:
    result = _run(DEPRECATED_PATHS)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_the_command_line_entry_points_run() -> None:
    result = _run("", "-m", "checkpoint_magic", "--help")
    assert result.returncode == 0 and "checkpoint-magic" in result.stdout
    script = shutil.which("checkpoint-magic", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the checkpoint-magic console script is not installed in this environment")
    result = subprocess.run(
        [script, "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


def test_the_layer_contract_holds() -> None:
    lint_imports = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    if lint_imports is None:
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    result = subprocess.run(
        [lint_imports], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
