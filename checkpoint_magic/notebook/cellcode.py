"""What ``%%checkpoint`` reads from a cell's syntax and the modules it loaded, besides its names.

The names a cell reads and binds are :mod:`checkpoint_magic.core.names`' job; this
module answers the smaller questions of :mod:`checkpoint_magic.notebook.magic`: which
bound names are incidental (loop variables, ``with ... as`` targets), whether the cell
awaits at top level or times itself (``%time``), which user modules it imported while
it ran, and the line shown on a hit.

Examples
--------
>>> import ast
>>> source = "import numpy as np\\nfor i in range(3):\\n    total = i\\nwith open('f') as fh:\\n    pass"
>>> tree = ast.parse(source)
>>> sorted(incidental_names(tree))
['fh', 'i', 'np']
>>> top_level_await(ast.parse("x = await f()"))
1
>>> top_level_await(ast.parse("async def f(): await g()")) is None
True
"""

from __future__ import annotations

import ast
import sys
import time
import types
from collections.abc import Iterator
from typing import Any

from ..ui.units import format_duration

__all__ = [
    "default_namespace",
    "ends_with_semicolon",
    "incidental_names",
    "restored_line",
    "top_level_await",
    "user_modules_loaded_since",
    "uses_timing_magic",
]

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_TIMING_MAGICS = ("%time", "%%time", "%timeit", "%%timeit", "%prun", "%%prun")


def _top_level_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of the cell's own scope (not inside functions, classes or lambdas)."""
    stack = list(ast.iter_child_nodes(tree))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, _SCOPES):
            stack.extend(ast.iter_child_nodes(node))


def _stored_names(node: ast.AST | None) -> set[str]:
    if node is None:
        return set()
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    }


def incidental_names(tree: ast.AST) -> set[str]:
    """Names the cell binds only by imports, as loop variables or ``with ... as`` targets.

    They are restored on a hit, like every name the cell binds, but they do not name the
    cell's entries and are not listed in the line a hit shows.

    Parameters
    ----------
    tree : ast.AST
        The parsed cell.

    Returns
    -------
    set of str
        The incidental names (a name also assigned at top level is not incidental).
    """
    incidental: set[str] = set()
    other: set[str] = set()
    for node in _top_level_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                incidental.add((alias.asname or alias.name).split(".")[0])
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            incidental |= _stored_names(node.target)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                incidental |= _stored_names(item.optional_vars)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.NamedExpr)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                other |= _stored_names(target)
    return incidental - other


def top_level_await(tree: ast.AST) -> int | None:
    """The line of the cell's first top-level ``await`` (or ``async for``/``async with``).

    Parameters
    ----------
    tree : ast.AST
        The parsed cell.

    Returns
    -------
    int or None
        The line number, or ``None`` when nothing at top level awaits (awaits inside an
        ``async def`` do not count).
    """
    for node in _top_level_nodes(tree):
        if isinstance(node, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            return getattr(node, "lineno", 0)
        if isinstance(node, ast.comprehension) and node.is_async:
            return getattr(node.iter, "lineno", 0)
    return None


def uses_timing_magic(cell: str) -> bool:
    """Whether the cell times itself (``%time``, ``%timeit``, ``%prun``).

    If so, the timings its replayed output shows are from the stored run.

    Parameters
    ----------
    cell : str
        The cell's source, before IPython's transformations.

    Returns
    -------
    bool
        True when a line starts with a timing magic.

    Examples
    --------
    >>> uses_timing_magic("%time y = f(x)"), uses_timing_magic("y = f(x)  # %time")
    (True, False)
    """
    return any(line.lstrip().startswith(_TIMING_MAGICS) for line in cell.splitlines())


def restored_line(
    tree: ast.AST, cell: str, restored: list[str], created: float, duration: float
) -> str:
    r"""The line shown after a hit's replayed output: the produced names, when, how long.

    Parameters
    ----------
    tree : ast.AST
        The parsed cell (its incidental names are not listed).
    cell : str
        The cell's source (a timing magic adds a warning that its timings are old).
    restored : list of str
        The names restored.
    created : float
        When the entry was stored (seconds since the epoch).
    duration : float
        Seconds the stored run took.

    Returns
    -------
    str
        One line, e.g. ``restored total (computed 2024-05-01 10:00:00, took 4.6 s; ...)``.

    Examples
    --------
    >>> tree = ast.parse("for i in range(3):\n    total = i\n    d[i] = i")
    >>> restored_line(tree, "", ["i", "total"], 0.0, 4.62)  # doctest: +ELLIPSIS
    'restored total (computed 1970-01-01 ..., took 4.6 s; cell skipped)'
    """
    incidental = incidental_names(tree)
    shown = [name for name in restored if name not in incidental] or restored
    names = ", ".join(shown[:6]) + (f" +{len(shown) - 6}" if len(shown) > 6 else "")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
    line = (
        f"restored {names or 'the output'} (computed {when}, took "
        f"{format_duration(duration)}; cell skipped)"
    )
    if uses_timing_magic(cell):
        line += "; the timings shown are from that run"
    return line


def user_modules_loaded_since(before: set[int]) -> list[str]:
    """User (non-installed) modules imported since ``before`` (the ids of the modules loaded then).

    Modules are compared by identity, not by name: a new name for a module already loaded
    (``multiprocessing`` aliases ``__mp_main__`` to ``__main__`` the first time a tqdm bar or
    a process pool runs) is not a new module. Whether a module is the user's is decided by
    its origin (its file outside the standard library and site-packages), so standard
    library and installed modules never count.

    Parameters
    ----------
    before : set of int
        ``id()`` of every module in ``sys.modules`` before the cell ran.

    Returns
    -------
    list of str
        The names of the new user modules, sorted.

    Examples
    --------
    >>> before = {id(m) for m in list(sys.modules.values())}
    >>> sys.modules["__alias_of_main__"] = sys.modules["__main__"]
    >>> user_modules_loaded_since(before)
    []
    >>> del sys.modules["__alias_of_main__"]
    """
    from ..fingerprint import code as codehash

    modules: list[tuple[str, Any]] = list(sys.modules.items())
    return sorted(
        name
        for name, module in modules
        if id(module) not in before
        and isinstance(module, types.ModuleType)
        and codehash.is_user_code(module)
    )


def default_namespace(produced: list[str]) -> str:
    """``cell:`` and the produced names (a few of them), e.g. ``cell:X_pca,pca``.

    Parameters
    ----------
    produced : list of str
        The names the cell produces.

    Returns
    -------
    str
        The namespace a cell's entries are listed under without ``--name``.

    Examples
    --------
    >>> default_namespace(["X", "y"]), default_namespace([]), default_namespace(list("abcdef"))
    ('cell:X,y', 'cell:_', 'cell:a,b,c,d+2')
    """
    if not produced:
        return "cell:_"
    shown = ",".join(produced[:4])
    return f"cell:{shown}+{len(produced) - 4}" if len(produced) > 4 else f"cell:{shown}"


def ends_with_semicolon(source: str) -> bool:
    r"""Whether the cell ends with ``;`` (IPython then shows no ``Out[n]``).

    Parameters
    ----------
    source : str
        The transformed cell source.

    Returns
    -------
    bool
        IPython's own answer; False for source it cannot tokenize.

    Examples
    --------
    >>> ends_with_semicolon("x = 1\nx;"), ends_with_semicolon("x")
    (True, False)
    """
    from IPython.core.displayhook import DisplayHook

    try:
        return bool(DisplayHook.semicolon_at_end_of_expression(source))
    except Exception:  # tokenize errors on odd input: IPython would display
        return False
