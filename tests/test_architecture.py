"""The package's shape, checked statically: layers, no import cycles, no private names across
modules, size limits, and the public import paths that must keep working.

The layer contract itself (which folder may import which) lives in ``pyproject.toml`` and is
checked by ``lint-imports``, which ``make test`` runs before pytest; this module checks what
import-linter does not: cycles inside a layer, private names, sizes, fresh-process imports, and
numpydoc ``Parameters``/``Returns`` sections on every public function, class and method.
"""

from __future__ import annotations

import ast
import re
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
    """Every module opens with a one-line summary (a sentence of at most 100 characters)."""
    unclear = []
    for name, path in MODULES.items():
        doc = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
        lines = doc.splitlines() or [""]
        summary, rest = lines[0].strip(), lines[1:]
        if not summary.endswith(".") or len(summary) > 100 or (rest and rest[0].strip()):
            unclear.append(f"{name}: {summary!r}")
    assert unclear == [], "each module's first docstring line says what it owns, in one line"


# -- numpydoc sections on the public API -----------------------------------------------------------
#: A numpydoc section header: a title line underlined with dashes.
_SECTION = re.compile(r"^([ \t]*)([A-Z][A-Za-z ]+?)[ \t]*\n[ \t]*-{3,}[ \t]*$", re.M)
_PROPERTY_DECORATORS = {"property", "cached_property", "setter", "getter", "deleter"}
_NO_VALUE = {"None", "NoReturn", "Never", "typing.NoReturn"}

Def = ast.FunctionDef | ast.AsyncFunctionDef


def _sections(doc: str) -> dict[str, set[str]]:
    """Section title -> the names its entries document (``x, y : int`` documents x and y)."""
    found: dict[str, set[str]] = {}
    headers = list(_SECTION.finditer(doc))
    for i, header in enumerate(headers):
        end = headers[i + 1].start() if i + 1 < len(headers) else len(doc)
        indent, names = header.group(1), found.setdefault(header.group(2), set())
        for line in doc[header.end() : end].splitlines():
            if line.strip() and len(line) - len(line.lstrip()) == len(indent):
                names.update(n.strip().lstrip("*") for n in line.split(" :")[0].split(","))
    return found


def _bare_entries(doc: str, titles: tuple[str, ...]) -> list[str]:
    """Entries of the sections ``titles`` that have no description line under them."""
    bare = []
    headers = list(_SECTION.finditer(doc))
    for i, header in enumerate(headers):
        if header.group(2) not in titles:
            continue
        end = headers[i + 1].start() if i + 1 < len(headers) else len(doc)
        lines = [line for line in doc[header.end() : end].splitlines() if line.strip()]
        indent = len(header.group(1))
        for line, following in zip(lines, [*lines[1:], ""], strict=True):
            deeper = len(following) - len(following.lstrip()) > indent
            if len(line) - len(line.lstrip()) == indent and not deeper:
                bare.append(line.strip())
    return bare


def _decorators(node: Def | ast.ClassDef) -> set[str]:
    names = set()
    for d in node.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        names.add(d.attr if isinstance(d, ast.Attribute) else getattr(d, "id", ""))
    return names


def _parameters(fn: Def, method: bool) -> list[str]:
    """The parameters a caller passes (not self/cls, not ``_private`` recursion helpers)."""
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    if method and "staticmethod" not in _decorators(fn):
        positional = positional[1:]
    names = [x.arg for x in (*positional, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None]
    return [n for n in names if not n.startswith("_")]


def _own_nodes(fn: Def) -> Iterator[ast.AST]:
    """The nodes of ``fn``'s body, not those of the functions and classes it defines."""
    todo: list[ast.AST] = list(fn.body)
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def _returns_a_value(fn: Def) -> bool:
    """Judged by the annotation; without one, by a ``return <value>`` or ``yield`` in its body."""
    if fn.returns is not None:
        return ast.unparse(fn.returns) not in _NO_VALUE
    for node in _own_nodes(fn):
        if isinstance(node, (ast.Yield, ast.YieldFrom)):
            return True
        value = node.value if isinstance(node, ast.Return) else None
        if value is not None and not (isinstance(value, ast.Constant) and value.value is None):
            return True
    return False


def _raised(fn: Def) -> set[str]:
    """Exception classes ``fn`` raises itself (``raise Name(...)``; not re-raises, not helpers')."""
    names = set()
    for node in _own_nodes(fn):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.attr if isinstance(exc, ast.Attribute) else getattr(exc, "id", "")
            if name[:1].isupper() and name not in {"NotImplementedError", "AssertionError"}:
                names.add(name)
    return names


def _exception_class(name: str) -> type | None:
    import builtins

    import checkpoint_magic.exceptions

    found = getattr(builtins, name, None) or getattr(checkpoint_magic.exceptions, name, None)
    return found if isinstance(found, type) else None


def _covered(raised: str, written: set[str]) -> bool:
    """Whether a ``Raises`` section naming ``written`` covers ``raised`` (or a base class of it)."""
    if raised in written:
        return True
    cls = _exception_class(raised)
    bases = [b for b in map(_exception_class, written) if b is not None]
    return cls is not None and any(issubclass(cls, b) for b in bases)


def _documented(where: str, doc: str, fn: Def, method: bool, returns: bool = True) -> list[str]:
    if not doc:
        return [f"{where}: no docstring"]
    sections, gaps = _sections(doc), []
    parameters = _parameters(fn, method)
    if parameters:
        written = sections.get("Parameters", set()) | sections.get("Other Parameters", set())
        missing = [p for p in parameters if p not in written]
        unknown = sorted(n for n in written - set(parameters) if not n.startswith("_"))
        if "Parameters" not in sections:
            gaps.append(f"{where}: no Parameters section ({', '.join(parameters)})")
        elif missing or unknown:
            gaps.append(f"{where}: Parameters miss {missing}, name unknown {unknown}")
        elif bare := _bare_entries(doc, ("Parameters", "Other Parameters")):
            gaps.append(f"{where}: Parameters without a description: {bare}")
    if returns and _returns_a_value(fn) and not {"Returns", "Yields"} & set(sections):
        gaps.append(f"{where}: no Returns (or Yields) section")
    elif bare := _bare_entries(doc, ("Returns", "Yields", "Raises")):
        gaps.append(f"{where}: Returns, Yields or Raises without a description: {bare}")
    unsaid = sorted(e for e in _raised(fn) if not _covered(e, sections.get("Raises", set())))
    if unsaid:
        gaps.append(f"{where}: Raises does not name {unsaid}")
    return gaps


class _Classes:
    """Every class of the package by name, to find the docstring a method inherits."""

    def __init__(self, trees: dict[str, ast.Module]) -> None:
        self.by_name: dict[str, list[ast.ClassDef]] = defaultdict(list)
        for tree in trees.values():
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    self.by_name[node.name].append(node)

    def inherited_doc(self, cls: ast.ClassDef, method: str) -> str:
        """The docstring of ``method`` in the nearest package base class that documents it."""
        todo, seen = [cls], set()
        while todo:
            for base in todo.pop(0).bases:
                name = ast.unparse(base).split(".")[-1].split("[")[0]
                for found in self.by_name.get(name, []):
                    if id(found) in seen:
                        continue
                    seen.add(id(found))
                    for node in found.body:
                        if isinstance(node, Def) and node.name == method:
                            doc = ast.get_docstring(node)
                            if doc:
                                return doc
                    todo.append(found)
        return ""


def _class_gaps(where: str, cls: ast.ClassDef, classes: _Classes) -> list[str]:
    doc = ast.get_docstring(cls) or ""
    if not doc:
        return [f"{where}: no docstring"]
    gaps = []
    methods = {n.name: n for n in cls.body if isinstance(n, Def)}
    init = methods.get("__init__") or methods.get("__new__")
    fields = [
        n.target.id
        for n in cls.body
        if isinstance(n, ast.AnnAssign)
        and isinstance(n.target, ast.Name)
        and "ClassVar" not in ast.unparse(n.annotation)
    ]
    named_tuple = any("NamedTuple" in ast.unparse(b) for b in cls.bases)
    records = "dataclass" in _decorators(cls) or named_tuple
    if init is not None:
        init_doc = ast.get_docstring(init) or ""
        gaps += _documented(where, f"{doc}\n\n{init_doc}", init, method=True, returns=False)
    elif records and fields:
        sections = _sections(doc)
        written = sections.get("Attributes", set()) | sections.get("Parameters", set())
        missing = [f for f in fields if f not in written]
        known = set(fields) | set(methods)
        unknown = sorted(written - known)
        if not {"Attributes", "Parameters"} & set(sections):
            gaps.append(f"{where}: no Attributes (or Parameters) section ({', '.join(fields)})")
        elif missing or unknown:
            gaps.append(f"{where}: Attributes miss {missing}, name unknown {unknown}")
        elif bare := _bare_entries(doc, ("Attributes", "Parameters")):
            gaps.append(f"{where}: Attributes without a description: {bare}")
    for node in cls.body:
        if isinstance(node, Def) and not node.name.startswith("_"):
            decorators = _decorators(node)
            if decorators & _PROPERTY_DECORATORS or "overload" in decorators:
                continue
            method_doc = ast.get_docstring(node) or classes.inherited_doc(cls, node.name)
            gaps += _documented(f"{where}.{node.name}", method_doc, node, method=True)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            gaps += _class_gaps(f"{where}.{node.name}", node, classes)
    return gaps


def _public_api_gaps(trees: dict[str, ast.Module]) -> list[str]:
    """Public functions, classes and methods whose numpydoc sections are missing or stale.

    Public: a name without a leading underscore, in a module none of whose path parts starts
    with one (``__init__`` aside). Properties, dunder methods and ``@overload`` stubs are
    exempt; a method without a docstring of its own is judged by the one it inherits from a
    base class of the package (``inspect.getdoc`` shows that one). ``Parameters`` must name
    every parameter a caller passes and no other; ``Returns`` (or ``Yields``) is due unless
    the annotation is ``None``; ``Raises`` must name (or name a base of) every exception class
    the body raises itself; a dataclass or NamedTuple lists its fields under ``Attributes``.
    Every entry of these sections has a description under it.
    """
    classes, gaps = _Classes(trees), []
    for module, tree in trees.items():
        if any(part.startswith("_") for part in module.split(".")):
            continue
        for node in tree.body:
            where = f"{module}:{getattr(node, 'lineno', 0)} {getattr(node, 'name', '')}"
            if isinstance(node, Def) and not node.name.startswith("_"):
                if "overload" not in _decorators(node):
                    doc = ast.get_docstring(node) or ""
                    gaps += _documented(where, doc, node, method=False)
            elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                gaps += _class_gaps(where, node, classes)
    return gaps


def test_the_docstring_checker_finds_gaps() -> None:
    source = '''
def f(a, b=1):
    """Do f.

    Parameters
    ----------
    a : int
        A.
    """
    return a

def g(x) -> None:
    """Do g.

    Parameters
    ----------
    x, y : int
        X.

    Raises
    ------
    OSError
        Never mind.
    """
    if x:
        raise FileNotFoundError(x)  # covered: an OSError
    raise ValueError(x)

def _private(a):
    return a

class C:
    """A C.

    Parameters
    ----------
    n : int
        N.
    """

    def __init__(self, n):
        self.n = n

    def items(self):
        yield self.n

    @property
    def size(self):
        return self.n

def h(q) -> int:
    """Do h.

    Parameters
    ----------
    q : int

    Returns
    -------
    int
    """
'''
    gaps = _public_api_gaps({"checkpoint_magic.demo": ast.parse(source)})
    assert gaps == [
        "checkpoint_magic.demo:2 f: Parameters miss ['b'], name unknown []",
        "checkpoint_magic.demo:2 f: no Returns (or Yields) section",
        "checkpoint_magic.demo:12 g: Parameters miss [], name unknown ['y']",
        "checkpoint_magic.demo:12 g: Raises does not name ['ValueError']",
        "checkpoint_magic.demo:32 C.items: no docstring",
        "checkpoint_magic.demo:51 h: Parameters without a description: ['q : int']",
        "checkpoint_magic.demo:51 h: Returns, Yields or Raises without a description: ['int']",
    ]


def test_the_public_api_has_numpydoc_parameters_and_returns() -> None:
    trees = {name: ast.parse(path.read_text()) for name, path in MODULES.items()}
    gaps = _public_api_gaps(trees)
    assert gaps == [], "\n".join(gaps)


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
