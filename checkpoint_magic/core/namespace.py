"""What a ``%%checkpoint`` cell's values are: code or data, plain data, globals its functions read.

Used by :mod:`checkpoint_magic.notebook.magic` to split the names a cell reads into code (counted
by their code fingerprint) and data (inputs), to find the data that the user code a cell
reaches reads (notebook globals and user-module globals: inputs too), to decide which bound
names are stored, and whether a last-expression value is restored as ``Out[n]`` itself.
"""

from __future__ import annotations

import ast
import dataclasses
import dis
import functools
import inspect
import io
import os
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

from ..fingerprint.bytecode import code_names, dynamic_names, environ_variables
from ..fingerprint.code import PATHS_KEY
from ..fingerprint.files import code_path_constants, nested_path_values, path_values
from ..fingerprint.origin import is_user_code
from .checkpointer import Checkpointer
from .inputs import FileContent, FileInputs, InputMemory
from .targets import MISSING

__all__ = [
    "cell_files",
    "code_names",
    "globals_read_by",
    "is_code",
    "is_plain_data",
    "read_by_string",
]

#: Types that are never stored as inferred outputs (they cannot be pickled meaningfully).
UNSTORABLE = (io.IOBase, types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType)
#: Immutable types: an input of these types cannot have been mutated by the cell.
IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, frozenset, range, type(Ellipsis),
             FileContent)  # fmt: skip
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


def is_code(value: Any) -> bool:
    """Whether a value is code (functions, classes, modules, callable wrappers) rather than data.

    Parameters
    ----------
    value : object
        A value in the user's namespace.

    Returns
    -------
    bool
        True for code, which a cell re-creates rather than restores.

    Examples
    --------
    >>> import functools
    >>> is_code(len), is_code(functools.partial(max, 1)), is_code([1])
    (True, True, False)
    """
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


def is_plain_data(value: Any, depth: int = 0) -> bool:
    """Whether a last-expression value is data worth restoring as ``Out[n]`` itself.

    Parameters
    ----------
    value : object
        The value of the cell's last expression.
    depth : int, default 0
        The nesting level reached so far (more than 3 levels is not plain data).

    Returns
    -------
    bool
        True for builtin, numpy, pandas... values and containers of them (no code).

    Examples
    --------
    >>> is_plain_data([1, "a"]), is_plain_data(print)
    (True, False)
    """
    if depth > 3:
        return False
    root = (type(value).__module__ or "").partition(".")[0]
    if root not in _DATA_PACKAGES or is_code(value):
        return False
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(is_plain_data(v, depth + 1) for v in list(value)[:100])
    if isinstance(value, dict):
        items = list(value.items())[:100]
        return all(is_plain_data(k, depth + 1) and is_plain_data(v, depth + 1) for k, v in items)
    return root != "builtins" or isinstance(value, (*IMMUTABLE, bytearray))


def definition_names(tree: ast.Module) -> set[str]:
    r"""Return the names bound by the top-level imports, functions and classes of a cell.

    Parameters
    ----------
    tree : ast.Module
        The parsed cell.

    Returns
    -------
    set of str
        The names (an ``import a.b`` binds ``a``; star imports bind nothing known).

    Examples
    --------
    >>> sorted(definition_names(ast.parse("import os.path\ndef f(): pass\nx = 1")))
    ['f', 'os']
    """
    names: set[str] = set()
    for stmt in tree.body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.partition(".")[0] for a in stmt.names if a.name != "*")
    return names


def _held_code(value: Any, depth: int = 0) -> list[Any]:
    """Functions and classes held in a dict's values, a list, a tuple or a dataclass instance.

    Any other object holds the code among its attributes, and an instance of a user class its
    class (``p.run()`` runs the class's code).
    """
    if isinstance(value, dict) and type(value) is dict:
        items: Any = value.values()
    elif type(value) in (list, tuple):
        items = value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = getattr(value, "__dict__", {}).values()
        if is_user_code(type(value)):
            return [type(value), *_held_in(items, depth)]
    elif not is_code(value) and type(attrs := _instance_dict(value)) is dict:
        # An object: the code it holds (``Box(helper)``, ``np.vectorize(helper)``), and the
        # class of a user object (``p.run()`` runs the class's code).
        held = [x for x in attrs.values() if is_code(x) and not isinstance(x, types.ModuleType)]
        return [type(value), *held] if is_user_code(type(value)) else held
    else:
        return []
    return _held_in(items, depth)


def _instance_dict(value: Any) -> Any:
    """``value.__dict__``, never through ``__getattr__`` (a proxy's may raise or compute)."""
    try:
        return object.__getattribute__(value, "__dict__")
    except AttributeError:  # __slots__
        return None


def _held_in(items: Any, depth: int) -> list[Any]:
    found: list[Any] = []
    for item in list(items)[:1000]:
        if is_code(item) and not isinstance(item, types.ModuleType):
            found.append(item)
        elif depth < 3:
            found.extend(_held_code(item, depth + 1))
    return found


_STORES = frozenset({"STORE_NAME", "STORE_GLOBAL"})


def read_by_string(code: types.CodeType, candidate: Callable[[str], Any]) -> dict[str, Any]:
    """What code reads by a constant string: ``globals()["K"]`` and ``os.environ["K"]``.

    The names the code assigns are left out: they are its outputs.

    Parameters
    ----------
    code : types.CodeType
        A cell's code.
    candidate : callable
        ``name -> value`` in the namespace, or ``MISSING``.

    Returns
    -------
    dict of str to object
        The namespace's values by name, and the environment variables set, by
        ``os.environ['K']``.

    Examples
    --------
    >>> ns = {"K": 3}
    >>> read_by_string(compile("y = globals()['K']", "<cell>", "exec"), lambda n: ns.get(n, MISSING))
    {'K': 3}
    """
    found = {}
    # A name the cell assigns is its output, not an input: as one, the cell's last result
    # (new on every run) would make it miss forever (w = f("w") reads no global w).
    names = dynamic_names(code)
    if names:
        names -= {i.argval for i in dis.get_instructions(code) if i.opname in _STORES}
    for name in sorted(names):
        value = candidate(name)
        if value is not MISSING:
            found[name] = value
    for var in environ_variables(code):
        if var in os.environ:
            found[f"os.environ[{var!r}]"] = os.environ[var]
    return found


def _imported_module(scope: Mapping[str, Any], name: str) -> types.ModuleType | None:
    """The loaded module an ``import`` in code with globals ``scope`` refers to, if loaded."""
    package = scope.get("__package__") or ""
    for candidate in (name, f"{package}.{name}" if name and package else package):
        module = sys.modules.get(candidate) if candidate else None
        if isinstance(module, types.ModuleType):
            return module
    return None


def globals_read_by(
    roots: list[Any],
    ns: dict[str, Any],
    candidate: Callable[[str], Any],
    attrs: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Data read (transitively) by the user code among ``roots``: the values that become inputs.

    Code fingerprints cover the code of the helpers a function calls but not the global
    *data* it reads; a cell calling ``train()`` that reads ``X`` must recompute when ``X``
    changes, so such globals become inputs of the cell. The same holds for the data of a
    user (non-installed) module: its attributes among ``attrs`` (the attribute names the
    cell's code uses) and the module globals its functions read, under ``module.name``.

    Parameters
    ----------
    roots : list
        Code values the cell reads (functions, classes, modules...) and modules it imports;
        the cell's code object, for what it reads by string (see :func:`read_by_string`).
    ns : dict
        The notebook namespace; a notebook function's globals are looked up through ``candidate``.
    candidate : callable
        ``name -> value`` in ``ns``, or ``_MISSING`` (undefined, builtin, IPython's own).
    attrs : frozenset of str
        The attribute names used by the cell's code, to read from the user modules in ``roots``.

    Returns
    -------
    dict of str to object
        Data values by name: ``name`` for the notebook namespace, ``module.name`` for a module's;
        under ``PATHS_KEY`` the path-shaped string constants of the functions reached.
    """
    from ..fingerprint import origin as codehash

    found: dict[str, Any] = {}
    paths: dict[str, None] = {}
    seen: set[int] = set()
    seen_attrs: set[tuple[int, str]] = set()
    alive: list[Any] = []  # every visited object stays alive while walking, so ids stay unique
    stack: list[tuple[Any, frozenset[str]]] = [(root, attrs) for root in roots]

    def reached(key: str, value: Any, used: frozenset[str]) -> None:
        if value is MISSING:
            return
        if is_code(value):
            stack.append((value, used))
        else:
            found.setdefault(key, value)
            # Code held in data (``OPS = {"op": double}``) is followed like a direct call.
            stack.extend((held, used) for held in _held_code(value))

    while stack and len(seen) < 5000:
        obj, used = stack.pop()
        if isinstance(obj, types.ModuleType):
            if not codehash.is_user_code(obj):
                continue  # installed: counts by name and version
            members = vars(obj)
            for attr in sorted(used):
                if attr in members and (id(obj), attr) not in seen_attrs:
                    seen_attrs.add((id(obj), attr))
                    alive.append(obj)
                    reached(f"{obj.__name__}.{attr}", members[attr], used)
            continue
        if isinstance(obj, types.CodeType):  # a cell's: globals()["K"], os.environ["K"]
            for key, value in read_by_string(obj, candidate).items():
                reached(key, value, used)
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if not is_code(obj):  # a data root: the code it holds is followed
            alive.append(obj)
            stack.extend((held, used) for held in _held_code(obj))
            continue
        alive.append(obj)
        if isinstance(obj, functools.partial):
            stack.append((obj.func, used))
            continue
        if not isinstance(obj, type):
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
            if not codehash.is_user_code(func):
                continue
            scope = func.__globals__
            paths.update(dict.fromkeys(code_path_constants(func.__code__)))  # open("data.csv")
            glob, own, imports = code_names(func.__code__)
            if dynamic := dynamic_names(func.__code__):  # globals()["K"], getattr(module, "K")
                glob, own = glob | {n for n in dynamic if n in scope}, own | dynamic
            for var in environ_variables(func.__code__):  # os.environ["K"], os.getenv("K")
                reached(f"os.environ[{var!r}]", os.environ.get(var, MISSING), own)
            for name in sorted(glob):
                if scope is ns:
                    reached(name, candidate(name), own)
                else:
                    module = scope.get("__name__") or "<exec>"
                    reached(f"{module}.{name}", scope.get(name, MISSING), own)
            for name in sorted(imports):  # ``import helpers`` inside the function
                imported = _imported_module(scope, name)
                if imported is not None:
                    stack.append((imported, own))
    if paths:  # files the helpers name: cell_files makes them inputs by content
        found[PATHS_KEY] = tuple(paths)[:64]
    return found


def cell_files(code: types.CodeType, inputs: dict[str, Any], cp: Checkpointer) -> FileInputs:
    """Return the files a cell names (path inputs, string constants of its code), by content.

    ``.values`` (``file:PATH -> FileContent``) join the cell's inputs; after a miss,
    ``.forget_written(input_fps)`` turns the files the cell wrote into outputs.

    Parameters
    ----------
    code : types.CodeType
        The cell's compiled code (its string constants that look like paths are candidates).
    inputs : dict of str to object
        The cell's input values by name (``str`` and ``os.PathLike`` ones, and paths inside
        containers, are candidates); its ``PATHS_KEY`` entry (the path constants of the
        helpers, see :func:`globals_read_by`) is removed and taken as candidates too.
    cp : Checkpointer
        The cell's checkpointer (its store and namespace hold what earlier runs learnt).

    Returns
    -------
    FileInputs
        The existing files and folders among the candidates, as inputs.
    """
    named = inputs.pop(PATHS_KEY, ())  # by the helpers (see globals_read_by)
    candidates = path_values(inputs.values())
    candidates.update(nested_path_values(inputs.values()))  # paths = ["a.csv", "b.csv"]
    candidates.update((c, c) for c in (*code_path_constants(code), *named) if c not in candidates)
    return FileInputs(candidates, InputMemory.of(cp.store, cp.namespace))
