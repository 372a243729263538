"""What a ``%%checkpoint`` cell's values are: code or data, plain data, globals its functions read.

Used by :mod:`checkpoint_magic.magics` to split the names a cell reads into code (counted
by their code fingerprint) and data (inputs), to decide which bound names are stored, and
whether a last-expression value is restored as ``Out[n]`` itself.
"""

from __future__ import annotations

import ast
import functools
import inspect
import io
import types
from typing import Any

from ._cell_args import _MISSING

#: Types that are never stored as inferred outputs (they cannot be pickled meaningfully).
_UNSTORABLE = (io.IOBase, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
#: Immutable types: an input of these types cannot have been mutated by the cell.
_IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, frozenset, range, type(Ellipsis))
#: Root packages whose values are restored as ``Out[n]`` itself (not only its display).
_DATA_PACKAGES = frozenset(
    {
        "builtins",
        "numpy",
        "pandas",
        "sklearn",
        "scipy",
        "datetime",
        "decimal",
        "fractions",
        "collections",
        "pathlib",
        "uuid",
        "xarray",
        "polars",
        "pyarrow",
    }
)


def _is_code(value: Any) -> bool:
    """Functions, classes, modules and callable wrappers count as code, not as data."""
    if isinstance(
        value,
        (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, type, functools.partial),
    ):
        return True
    return (
        callable(value)
        and not isinstance(value, type)
        and inspect.isfunction(getattr(value, "__wrapped__", None))
    )


def _is_plain_data(value: Any, depth: int = 0) -> bool:
    """Whether a last-expression value is data worth restoring as ``Out[n]`` itself."""
    if depth > 3:
        return False
    root = (type(value).__module__ or "").partition(".")[0]
    if root not in _DATA_PACKAGES or _is_code(value):
        return False
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_is_plain_data(v, depth + 1) for v in list(value)[:100])
    if isinstance(value, dict):
        items = list(value.items())[:100]
        return all(_is_plain_data(k, depth + 1) and _is_plain_data(v, depth + 1) for k, v in items)
    return root != "builtins" or isinstance(value, (*_IMMUTABLE, bytearray))


def _definition_names(tree: ast.Module) -> set[str]:
    """Names bound by the top-level imports, functions and classes of a cell."""
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.partition(".")[0] for a in stmt.names if a.name != "*")
    return names


def _globals_read_by(roots: list[Any], ns: dict[str, Any], candidate: Any) -> dict[str, Any]:
    """Namespace values read (transitively) by the user functions and classes among ``roots``.

    Code fingerprints cover the code of the helpers a function calls but not the global
    *data* it reads; a cell calling ``train()`` that reads ``X`` must recompute when ``X``
    changes, so such globals become inputs of the cell.
    """
    from . import codehash

    found: dict[str, Any] = {}
    seen: set[int] = set()
    stack = list(roots)
    while stack and len(seen) < 2000:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if not isinstance(obj, type) and not isinstance(obj, types.ModuleType):
            obj = inspect.unwrap(obj) if callable(obj) else obj
        functions: list[Any] = []
        if isinstance(obj, types.FunctionType):
            functions = [obj]
        elif isinstance(obj, type) and codehash.is_user_code(obj):
            for member in vars(obj).values():
                member = getattr(member, "__func__", member)
                if isinstance(member, property):
                    functions.extend(
                        f for f in (member.fget, member.fset, member.fdel) if f is not None
                    )
                elif isinstance(member, types.FunctionType):
                    functions.append(member)
        for func in functions:
            if func.__globals__ is not ns or not codehash.is_user_code(func):
                continue
            for name in sorted(codehash.referenced_names(func)):
                value = candidate(name)
                if value is _MISSING:
                    continue
                found.setdefault(name, value)
                if _is_code(value):
                    stack.append(value)
    return found
