"""Code fingerprints (public API): how code is encoded, what is user code, package versions.

A function's fingerprint covers its normalized AST (comments, whitespace, blank lines,
docstrings and its own decorators do not count) *and* the bytecode that is running, so a
source file edited after import can never file the old code's result under the new
code's key; bytecode alone is used when there is no source (``exec``, a prompt). It also
covers, transitively, every user-defined function and class reached through a global
name, a closure cell, a used attribute of a user module or the class of a method.
Installed packages count by name and version, small global constants (None, bool,
numbers, str, bytes and tuples/frozensets of them) by value, closure values and the data
attributes of user classes (``params = {'lr': 0.1}`` in a class body) through
:func:`checkpoint_magic.fingerprint.values.fingerprint`. A global that is an instance of a user class
(``scorer = Scorer()``) counts by its class's code, not by its data. Other global values
(data) are *not* included: pass data as arguments so that it is an input.

Fingerprints are cached per function object with what they depended on (the object each
global name was bound to, every function's ``__code__``, defaults and closure cells): a
repeated :func:`code_fingerprint` costs a few identity checks, and rebinding a helper (a
notebook re-running a cell, IPython's autoreload swapping ``__code__``) is noticed. The
traversal of what a function reaches and that cache live in :mod:`checkpoint_magic.fingerprint.codegraph`;
this module encodes code objects, constants and ASTs, tells user code from installed code
and finds package versions.
"""

from __future__ import annotations

import ast
import dis
import functools
import importlib.metadata
import inspect
import logging
import os
import site
import struct
import sys
import sysconfig
import textwrap
import tokenize
import types
from typing import TYPE_CHECKING, Any

import xxhash

from ..exceptions import FingerprintError

if TYPE_CHECKING:
    from .codegraph import Entry

__all__ = [
    "code_fingerprint",
    "code_parts",
    "is_user_code",
    "package_version",
    "referenced_names",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

CODEHASH_VERSION = 1
PYTHON_TAG = "python-{}.{}".format(*sys.version_info[:2])
_HASCONST = frozenset(dis.hasconst)
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_SCALARS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))


def values_module() -> Any:
    from . import values as hashing  # lazy: hashing imports this module lazily too

    return hashing


def frame(*items: str | bytes) -> bytes:
    """Length-prefix every item so that no two different sequences give the same bytes."""
    out: list[bytes] = []
    for item in items:
        data = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
        out += (struct.pack("<Q", len(data)), data)
    return b"".join(out)


def hex_digest(*items: str | bytes) -> str:
    return xxhash.xxh3_128_hexdigest(frame(*items))


def is_const(v: Any, depth: int = 0) -> bool:
    """True for small plain constants: scalars of the builtin types, tuples/frozensets of them."""
    t = type(v)
    if t in _SCALARS:
        return not (t is str or t is bytes) or len(v) <= 65536
    return (
        (t is tuple or t is frozenset)
        and depth < 4
        and len(v) <= 1024
        and all(is_const(x, depth + 1) for x in v)
    )


def _const_bytes(c: Any, out: list[bytes]) -> None:
    """Append a type-tagged, framed encoding of a constant (or a nested code object) to ``out``."""
    t = type(c)
    if c is None or c is Ellipsis or t is bool:
        out.append({None: b"N", Ellipsis: b"E", True: b"T", False: b"F"}[c])
    elif t is int:
        out.append(b"i" + frame(c.to_bytes(c.bit_length() // 8 + 1, "little", signed=True)))
    elif t is float or t is complex:
        out.append(
            b"f" + struct.pack("<d", c) if t is float else b"c" + struct.pack("<dd", c.real, c.imag)
        )
    elif t is str or t is bytes:
        out.append((b"s" if t is str else b"b") + frame(c))
    elif t is tuple:
        out.append(b"t" + struct.pack("<Q", len(c)))
        for x in c:
            _const_bytes(x, out)
    elif t is frozenset:  # iteration order depends on PYTHONHASHSEED: sort the elements' hashes
        items = sorted(bytes.fromhex(const_fingerprint(x)) for x in c)
        out.append(b"z" + struct.pack("<Q", len(items)) + b"".join(items))
    elif isinstance(c, types.CodeType):
        code_bytes(c, out)
    else:  # not made by CPython's compiler up to 3.13; hash the value anyway
        out.append(b"?" + frame(f"{t.__module__}.{t.__qualname__}", values_module().fingerprint(c)))


def const_fingerprint(v: Any) -> str:
    out: list[bytes] = []
    _const_bytes(v, out)
    return xxhash.xxh3_128_hexdigest(b"".join(out))


def _docstring_slot(code: types.CodeType) -> bool:
    """Whether ``co_consts[0]`` is a function's docstring slot (a str or None the code never loads)."""
    if (
        not code.co_flags & inspect.CO_OPTIMIZED
        or code.co_name.startswith("<")
        or not code.co_consts
    ):
        return False
    if not (code.co_consts[0] is None or type(code.co_consts[0]) is str):
        return False
    raw, ext = code.co_code, 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | ext
        ext = arg << 8 if op == _EXTENDED_ARG else 0
        if op in _HASCONST and arg == 0:
            return False  # loaded: e.g. a docstring equal to a returned literal
    return True


def code_bytes(code: types.CodeType, out: list[bytes]) -> None:
    """Append the code's identity: bytecode, names, constants; not its file or line numbers."""
    out.append(
        b"C"
        + struct.pack(
            "<4q", code.co_argcount, code.co_posonlyargcount, code.co_kwonlyargcount, code.co_flags
        )
    )
    out.append(frame(code.co_name, code.co_code, getattr(code, "co_exceptiontable", b"")))
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        out.append(frame(str(len(names)), *names))
    out.append(struct.pack("<Q", len(code.co_consts)))
    skip_doc = _docstring_slot(code)
    for i, c in enumerate(code.co_consts):
        if i == 0 and skip_doc:
            out.append(b"D")  # the docstring: editing it changes nothing
        else:
            _const_bytes(c, out)


def global_names(
    code: types.CodeType,
    found: tuple[set[str], set[str], set[str]] | None = None,
) -> tuple[set[str], set[str], set[str]]:
    """(global names read, attribute names used, modules imported) by a code and its nested codes."""
    if found is None:
        found = (set(), set(), set())
    glob, attrs, imports = found
    for ins in dis.get_instructions(code):
        if ins.opcode in dis.hasname and isinstance(ins.argval, str):
            if ins.opname in _GLOBAL_OPS:
                glob.add(ins.argval)
            else:
                (imports if ins.opname == "IMPORT_NAME" else attrs).add(ins.argval)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            global_names(c, found)
    return found


def _normalized_dump(node: ast.AST) -> str:
    """``ast.dump`` without docstrings, positions or the top node's decorators."""
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if (
            isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
            and not (isinstance(n, ast.Module) and len(body) == 1)
        ):
            n.body = body[1:]  # (a cell whose only statement is a string displays it: kept)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        node.decorator_list = []
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def function_ast(code: types.CodeType) -> str | None:
    """The normalized AST of a function or lambda as its source file reads now, or None."""
    try:
        lines, start = inspect.getsourcelines(code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, IndexError, SyntaxError, ValueError, tokenize.TokenError) as exc:
        logger.debug("no source for %s (%s): bytecode only", code.co_name, exc)
        return None
    line = code.co_firstlineno - start + 1  # a decorated function starts at its first decorator
    nodes = [
        n
        for n in ast.walk(tree)
        if (
            isinstance(n, ast.Lambda) and n.lineno == line
            if code.co_name == "<lambda>"
            else isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.name == code.co_name
            and min([n.lineno] + [d.lineno for d in n.decorator_list]) == line
        )
    ]
    if len(nodes) != 1:
        logger.debug("source of %s not found unambiguously: bytecode only", code.co_name)
        return None
    return _normalized_dump(nodes[0])


@functools.lru_cache(maxsize=1)
def _installed_prefixes() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    for getter in ("getsitepackages", "getusersitepackages"):
        found: Any = getattr(site, getter, list)()
        paths.update([found] if isinstance(found, str) else found)
    return tuple(sorted({os.path.normcase(os.path.realpath(p)) for p in paths if p}))


@functools.lru_cache(maxsize=4096)
def path_is_installed(path: str) -> bool:
    real = os.path.normcase(os.path.realpath(path))
    return bool({"site-packages", "dist-packages"} & set(real.split(os.sep))) or any(
        real == p or real.startswith(p + os.sep) for p in _installed_prefixes()
    )


def _module_is_user(mod: types.ModuleType) -> bool:
    name = getattr(mod, "__name__", "")
    if name == "checkpoint_magic" or name.startswith("checkpoint_magic."):
        return False
    path = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", None) or ()), None)
    return name == "__main__" or (bool(path) and not path_is_installed(path))


def is_user_code(obj: Any) -> bool:
    """Whether a function, class, method or module is the user's code rather than installed code.

    User code is defined in ``__main__``, a notebook cell, an ``exec`` string, or a module
    whose file is outside the standard library and site-/dist-packages. ``checkpoint_magic``
    itself is never user code (it counts by version).

    Parameters
    ----------
    obj : function, class, method or module

    Returns
    -------
    bool

    Examples
    --------
    >>> import json
    >>> is_user_code(json.dumps), is_user_code(json), is_user_code(len)
    (False, False, False)
    >>> ns = {}
    >>> exec("def f():\\n    return 1", ns)
    >>> is_user_code(ns["f"])
    True
    """
    if isinstance(obj, types.ModuleType):
        return _module_is_user(obj)
    obj = obj.__func__ if type(obj) is types.MethodType else obj
    modname = getattr(obj, "__module__", None)
    mod = sys.modules.get(modname) if isinstance(modname, str) else None
    if mod is not None:
        if (
            modname == "__main__"
            or getattr(mod, "__file__", None)
            or getattr(mod, "__path__", None)
        ):
            return _module_is_user(mod)
        if isinstance(obj, type):  # in 'builtins': made by exec() without a __name__?
            return (
                bool(obj.__flags__ & (1 << 9)) and getattr(mod, obj.__qualname__, None) is not obj
            )
        if type(obj) is not types.FunctionType:
            return False
    elif isinstance(modname, str) and (
        modname == "__main__" or modname.startswith("checkpoint_magic")
    ):
        return modname == "__main__"
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename.startswith("<") or not path_is_installed(code.co_filename)
    return isinstance(obj, type)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _named_like(top: str) -> list[str]:
    """The distribution named like the package, if it provides it (spares scanning them all)."""
    try:
        dist = importlib.metadata.distribution(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return []
    provided = (dist.read_text("top_level.txt") or "").split()
    provided = provided or [f.parts[0].removesuffix(".py") for f in dist.files or () if f.parts]
    return [dist.metadata["Name"]] if top in provided else []


@functools.cache
def _top_version(top: str) -> str | None:
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return PYTHON_TAG
    named = _named_like(top)
    own = getattr(sys.modules.get(top), "__version__", None)
    if not named and isinstance(own, str):
        # e.g. sklearn (distribution scikit-learn): the package's own version is enough, and
        # it spares the full scan of installed distributions (~0.3-2 s on a first call).
        return own
    versions = []
    for dist in named or sorted(set(_distributions().get(top, ()))):
        try:
            versions.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    if versions:
        return versions[0][1] if len(versions) == 1 else ",".join(f"{d}=={v}" for d, v in versions)
    return own if isinstance(own, str) else None


def package_version(module_or_name: types.ModuleType | str) -> str | None:
    """The version of the installed distribution that provides a module's top-level package.

    Parameters
    ----------
    module_or_name : module or str
        A module or a dotted module name.

    Returns
    -------
    str or None
        The distribution's version (``"a==1,b==2"`` if several provide the name);
        ``"python-X.Y"`` for the standard library; else the package's ``__version__``; else None.

    Examples
    --------
    >>> import numpy
    >>> package_version(numpy) == numpy.__version__ == package_version("numpy.linalg")
    True
    >>> package_version("json") == "python-{}.{}".format(*sys.version_info[:2])
    True
    >>> package_version("surely_not_a_module_name") is None
    True
    """
    name = (
        module_or_name.__name__
        if isinstance(module_or_name, types.ModuleType)
        else str(module_or_name)
    )
    return _top_version(name.partition(".")[0])


CODE_CACHE: dict[Any, Entry] = {}  # filled by _codegraph.compute; read here on the fast path


def code_fingerprint(obj: Any) -> str:
    """Fingerprint of a function's, method's or class's code and of the user code it reaches.

    Covers the normalized AST and the running bytecode of ``obj`` and of every user-defined
    function and class it reaches (globals, closure cells, used attributes of user modules,
    the class of a method, the class of a global instance of a user class), small global
    constants, closure values, class data attributes and the versions of the installed
    packages it uses. Global data (an instance's state included) is not: pass it as an argument.

    Parameters
    ----------
    obj : callable
        A function, lambda, method, ``functools.partial`` (function and arguments), a
        wrapper with ``__wrapped__``, or a class. Installed code counts by name and version.

    Returns
    -------
    str
        32 hexadecimal characters (xxh3-128), stable across processes.

    Raises
    ------
    FingerprintError
        If ``obj`` is not code.

    Examples
    --------
    >>> ns1, ns2, ns3 = {}, {}, {}
    >>> exec("def f(x):\\n    return x + 1  # add one\\n", ns1)
    >>> exec("def f(x):\\n\\n    return x + 1  # increment\\n", ns2)
    >>> exec("def f(x):\\n    return x + 2\\n", ns3)
    >>> code_fingerprint(ns1["f"]) == code_fingerprint(ns2["f"])
    True
    >>> code_fingerprint(ns1["f"]) == code_fingerprint(ns3["f"])
    False
    """
    entry = CODE_CACHE.get(id(obj))  # fast path: a cached function without closure values
    if entry is not None and not entry.volatile and entry.valid((obj,)):
        return entry.digest
    return _codegraph.compute(obj, parts=False)[0]


def code_parts(obj: Any) -> dict[str, str]:
    """Own-code fingerprints of ``obj`` and of every user function and class it reaches.

    Parameters
    ----------
    obj : callable
        As for :func:`code_fingerprint`.

    Returns
    -------
    dict of str to str
        ``"module.qualname" -> fingerprint`` of that function's or class's own code (not
        of what it calls), to explain which function changed between two runs.

    Examples
    --------
    >>> ns = {}
    >>> exec("def helper(x):\\n    return 2 * x\\ndef f(x):\\n    return helper(x) + 1\\n", ns)
    >>> sorted(code_parts(ns["f"]))
    ['<exec>.f', '<exec>.helper']
    """
    return dict(_codegraph.compute(obj)[1])


def source_fingerprint(source: str) -> str:
    """Normalized-AST fingerprint of a snippet of code (a with-block body or a notebook cell).

    The snippet is dedented and parsed; comments, whitespace, blank lines and docstrings do
    not count (a cell whose only statement is a string counts it: it is displayed). Source
    that does not parse is fingerprinted by its text, with a logged warning.

    Parameters
    ----------
    source : str
        Python source.

    Returns
    -------
    str
        32 hexadecimal characters.

    Examples
    --------
    >>> a = source_fingerprint("    x = f(1, 2)  # call f\\n    y = x * 2\\n")
    >>> b = source_fingerprint("x = f(1,2)\\n\\n# double it\\ny = x*2")
    >>> c = source_fingerprint("x = f(1, 2)\\ny = x * 3")
    >>> a == b, a == c
    (True, False)
    """
    text = textwrap.dedent(source)
    try:
        return hex_digest(
            "checkpoint_magic.source",
            str(CODEHASH_VERSION),
            "ast",
            _normalized_dump(ast.parse(text)),
        )
    except SyntaxError as exc:
        logger.warning("code does not parse (%s); fingerprinting its text", exc)
        lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
        return hex_digest("checkpoint_magic.source", str(CODEHASH_VERSION), "text", lines)


def referenced_names(source_or_code: Any) -> set[str]:
    """Global names that a snippet, code object or function reads, and the modules it imports.

    For a snippet this includes names it assigns before reading them; attribute names
    (``obj.attr``) are not included.

    Parameters
    ----------
    source_or_code : str, code object or function

    Returns
    -------
    set of str

    Examples
    --------
    >>> sorted(referenced_names("y = np.mean(x) + len(z)"))
    ['len', 'np', 'x', 'z']
    """
    if isinstance(source_or_code, str):
        code = compile(textwrap.dedent(source_or_code), "<snippet>", "exec")
    else:
        code = getattr(source_or_code, "__code__", source_or_code)
    if not isinstance(code, types.CodeType):
        raise FingerprintError(
            f"expected source, a code object or a function, not {type(code).__name__}"
        )
    glob, _, imports = global_names(code)
    return glob | {name.partition(".")[0] for name in imports if name}


# Imported last: it takes the helpers above (code encoding, user code, versions, the cache).
from . import codegraph as _codegraph  # noqa: E402
