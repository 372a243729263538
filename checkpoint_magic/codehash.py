"""Code fingerprints: functions, methods, classes and code snippets, with the user code they reach.

A function's fingerprint covers its normalized AST (comments, whitespace, blank lines,
docstrings and its own decorators do not count) *and* the bytecode that is actually
running (so a source file edited after import can never file the old code's result
under the new code's key; bytecode alone is used when there is no source). It also
covers, transitively, every user-defined function and class the code references by a
global name, a closure cell or a used attribute of a user module; installed packages
count by name and version, small global constants by value, closure values through
:func:`checkpoint_magic.hashing.fingerprint`. Other global values (data) are *not*
included: pass data as arguments (or watch it) so that it is an input.

Results are cached per function object together with what they depended on (which
object each global name was bound to, each function's ``__code__`` and defaults), so
a repeated :func:`code_fingerprint` costs a few identity checks; rebinding a helper
(as a notebook does when a cell is re-run) is noticed on the next call.
"""

from __future__ import annotations

import ast
import dis
import functools
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import re
import site
import struct
import sys
import sysconfig
import textwrap
import threading
import tokenize
import types
import weakref
from typing import Any

import xxhash

from .exceptions import FingerprintError

__all__ = [
    "code_fingerprint",
    "code_parts",
    "is_user_code",
    "package_version",
    "referenced_names",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

_CODEHASH_VERSION = 1
_PYTHON = f"python-{sys.version_info[0]}.{sys.version_info[1]}"
_INTERPRETER = sys.implementation.cache_tag or _PYTHON  # bytecode differs between interpreters
_MISSING: Any = object()  # a name not bound in a namespace (a builtin, or not defined yet)
_SAME, _WEAK, _TYPE, _EMPTY = 0, 1, 2, 3  # how a dependency is re-checked on a cached call
_HEAPTYPE = 1 << 9
_CO_OPTIMIZED = inspect.CO_OPTIMIZED
_HASCONST = frozenset(dis.hasconst)
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_SCALARS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))
_BUILTIN_TYPES = (
    types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
    types.MethodWrapperType, types.ClassMethodDescriptorType,
)
_SKIP_CLASS_ATTRS = frozenset({
    "__dict__", "__weakref__", "__doc__", "__module__", "__qualname__", "__firstlineno__",
    "__static_attributes__", "__annotations__", "__slotnames__", "_abc_impl",
})
_BODY_NODES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_STATE = threading.local()


def _hashing() -> Any:
    from . import hashing  # lazy: hashing imports this module lazily too

    return hashing


def _frame(*items: str | bytes) -> bytes:
    """Length-prefix every item so that no two different sequences give the same bytes."""
    out = []
    for item in items:
        data = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
        out.append(struct.pack("<Q", len(data)))
        out.append(data)
    return b"".join(out)


def _hex(*items: str | bytes) -> str:
    return xxhash.xxh3_128_hexdigest(_frame(*items))


# --------------------------------------------------------------------------- constants, bytecode


def _is_const(v: Any, depth: int = 0) -> bool:
    """True for small plain constants: scalars of the builtin types, and tuples/frozensets of them."""
    t = type(v)
    if t in _SCALARS:
        return not (t is str or t is bytes) or len(v) <= 65536
    if (t is tuple or t is frozenset) and depth < 4 and len(v) <= 1024:
        return all(_is_const(x, depth + 1) for x in v)
    return False


def _const_bytes(c: Any, out: list[bytes]) -> None:
    """Append a framed, type-tagged encoding of a constant (or a nested code object) to ``out``."""
    t = type(c)
    if c is None or c is Ellipsis:
        out.append(b"N" if c is None else b"E")
    elif t is bool:
        out.append(b"T" if c else b"F")
    elif t is int:
        out.append(b"i" + _frame(c.to_bytes(c.bit_length() // 8 + 1, "little", signed=True)))
    elif t is float:
        out.append(b"f" + struct.pack("<d", c))
    elif t is complex:
        out.append(b"c" + struct.pack("<dd", c.real, c.imag))
    elif t is str or t is bytes:
        out.append((b"s" if t is str else b"b") + _frame(c))
    elif t is tuple:
        out.append(b"t" + struct.pack("<Q", len(c)))
        for x in c:
            _const_bytes(x, out)
    elif t is frozenset:  # iteration order depends on PYTHONHASHSEED: sort by each element's hash
        items = []
        for x in c:
            sub: list[bytes] = []
            _const_bytes(x, sub)
            items.append(xxhash.xxh3_128_digest(b"".join(sub)))
        out.append(b"z" + struct.pack("<Q", len(items)) + b"".join(sorted(items)))
    elif isinstance(c, types.CodeType):
        _code_bytes(c, out)
    else:  # not produced by CPython's compiler for 3.10-3.13; hash the value anyway
        out.append(b"?" + _frame(f"{t.__module__}.{t.__qualname__}", _hashing().fingerprint(c)))


def _const_fp(v: Any) -> str:
    out: list[bytes] = []
    _const_bytes(v, out)
    return xxhash.xxh3_128_hexdigest(b"".join(out))


def _docstring_slot(code: types.CodeType) -> bool:
    """Whether ``co_consts[0]`` is a function's docstring slot (str or None, never loaded)."""
    if not code.co_flags & _CO_OPTIMIZED or code.co_name.startswith("<") or not code.co_consts:
        return False
    first = code.co_consts[0]
    if not (first is None or type(first) is str):
        return False
    raw, ext = code.co_code, 0
    for i in range(0, len(raw), 2):
        op, arg = raw[i], raw[i + 1] | ext
        ext = arg << 8 if op == _EXTENDED_ARG else 0
        if op in _HASCONST and arg == 0 and op != _EXTENDED_ARG:
            return False  # the constant is used by the code (a docstring equal to a literal)
    return True


def _code_bytes(code: types.CodeType, out: list[bytes]) -> None:
    """Append the running code's identity: bytecode, names, constants; not file or line numbers."""
    out.append(b"C" + struct.pack("<4q", code.co_argcount, code.co_posonlyargcount,
                                  code.co_kwonlyargcount, code.co_flags))
    out.append(_frame(code.co_name, code.co_code, getattr(code, "co_exceptiontable", b"")))
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        out.append(_frame(str(len(names)), *names))
    consts = code.co_consts
    out.append(struct.pack("<Q", len(consts)))
    skip_doc = _docstring_slot(code)
    for i, c in enumerate(consts):
        if i == 0 and skip_doc:
            out.append(b"D")
        else:
            _const_bytes(c, out)


def _walk_codes(code: types.CodeType) -> list[types.CodeType]:
    codes, todo = [], [code]
    while todo:
        c = todo.pop()
        codes.append(c)
        todo.extend(x for x in c.co_consts if isinstance(x, types.CodeType))
    return codes


def _names(code: types.CodeType) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(global names read, attribute names used, modules imported) by a code and its nested codes."""
    glob, attrs, imports = set(), set(), set()
    for c in _walk_codes(code):
        for ins in dis.get_instructions(c):
            if ins.opcode in dis.hasname and isinstance(ins.argval, str):
                if ins.opname in _GLOBAL_OPS:
                    glob.add(ins.argval)
                elif ins.opname == "IMPORT_NAME":
                    imports.add(ins.argval)
                else:
                    attrs.add(ins.argval)
    return frozenset(glob), frozenset(attrs), frozenset(imports)


# --------------------------------------------------------------------------- normalized AST


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)


def _normalized_dump(node: ast.AST) -> str:
    """``ast.dump`` without docstrings, positions or the top node's decorators."""
    for n in ast.walk(node):
        if isinstance(n, _BODY_NODES) and n.body and _is_docstring(n.body[0]):
            if not (isinstance(n, ast.Module) and len(n.body) == 1):  # a cell's only value is shown
                n.body = n.body[1:]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        node.decorator_list = []
    return ast.dump(node, annotate_fields=False, include_attributes=False)


def _function_ast(code: types.CodeType) -> str | None:
    """The normalized AST of a function or lambda as its source file reads now, or None."""
    try:
        lines, start = inspect.getsourcelines(code)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, IndexError, SyntaxError, ValueError, tokenize.TokenError) as exc:
        logger.debug("no source for %s (%s): bytecode only", code.co_name, exc)
        return None
    target = code.co_firstlineno - start + 1
    if code.co_name == "<lambda>":
        nodes: list[ast.AST] = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda) and n.lineno == target]
    else:
        nodes = [
            n for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == code.co_name
            and min([n.lineno] + [d.lineno for d in n.decorator_list]) == target
        ]
    if len(nodes) != 1:
        logger.debug("source of %s not found unambiguously: bytecode only", code.co_name)
        return None
    return _normalized_dump(nodes[0])


_CODE_INFO: dict[int, tuple[Any, bytes, tuple[frozenset[str], ...]]] = {}


def _code_info(code: types.CodeType) -> tuple[bytes, tuple[frozenset[str], ...]]:
    """(own-code digest: AST + bytecode, names) of a code object, cached while it lives."""
    hit = _CODE_INFO.get(id(code))
    if hit is not None and hit[0]() is code:
        return hit[1], hit[2]
    out: list[bytes] = []
    _code_bytes(code, out)
    tree = _function_ast(code)
    digest = xxhash.xxh3_128_digest(_frame("ast" if tree else "no-source", tree or "", b"".join(out)))
    names = _names(code)
    key = id(code)
    _CODE_INFO[key] = (weakref.ref(code, lambda _, k=key: _CODE_INFO.pop(k, None)), digest, names)
    return digest, names


# --------------------------------------------------------------------------- user code, versions


@functools.lru_cache(maxsize=1)
def _installed_prefixes() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    for getter in ("getsitepackages", "getusersitepackages"):
        found = getattr(site, getter, lambda: [])()
        paths.update([found] if isinstance(found, str) else found)
    return tuple(sorted({os.path.normcase(os.path.realpath(p)) for p in paths if p}))


@functools.lru_cache(maxsize=4096)
def _path_is_installed(path: str) -> bool:
    real = os.path.normcase(os.path.realpath(path))
    if {"site-packages", "dist-packages"} & set(real.split(os.sep)):
        return True
    return any(real == p or real.startswith(p + os.sep) for p in _installed_prefixes())


def _ours(name: str) -> bool:
    return name == "checkpoint_magic" or name.startswith("checkpoint_magic.")


def _module_is_user(mod: types.ModuleType) -> bool:
    name = getattr(mod, "__name__", "")
    if _ours(name):
        return False
    if name == "__main__":
        return True
    path = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", None) or ()), None)
    return bool(path) and not _path_is_installed(path)


def is_user_code(obj: Any) -> bool:
    """Whether ``obj`` (function, class, method or module) is the user's code, not an installed one.

    User code is defined in ``__main__``, a notebook cell, an ``exec`` string, or a module
    whose file is outside the standard library and site-/dist-packages. ``checkpoint_magic``
    itself is never user code (it counts by version).

    Parameters
    ----------
    obj : Any
        A function, class, method or module.

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
    if type(obj) is types.MethodType:
        obj = obj.__func__
    modname = getattr(obj, "__module__", None)
    mod = None
    if isinstance(modname, str):
        if _ours(modname):
            return False
        if modname == "__main__":
            return True
        mod = sys.modules.get(modname)
    if mod is not None:
        if getattr(mod, "__file__", None) or getattr(mod, "__path__", None):
            return _module_is_user(mod)
        if isinstance(obj, type):  # 'builtins': a class made by exec() without __name__?
            return bool(obj.__flags__ & _HEAPTYPE) and getattr(mod, obj.__qualname__, None) is not obj
        if type(obj) is not types.FunctionType:
            return False
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename.startswith("<") or not _path_is_installed(code.co_filename)
    return isinstance(obj, type)


@functools.lru_cache(maxsize=1)
def _distributions() -> dict[str, list[str]]:
    return dict(importlib.metadata.packages_distributions())


def _named_like(top: str) -> list[str]:
    """The distribution named like the package if it provides it (spares scanning them all)."""
    try:
        dist = importlib.metadata.distribution(top)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return []
    provided = (dist.read_text("top_level.txt") or "").split()
    provided = provided or [f.parts[0].removesuffix(".py") for f in dist.files or () if f.parts]
    return [dist.metadata["Name"]] if top in provided else []


@functools.lru_cache(maxsize=None)
def _top_version(top: str) -> str | None:
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return _PYTHON
    versions = []
    for dist in _named_like(top) or sorted(set(_distributions().get(top, ()))):
        try:
            versions.append((dist, importlib.metadata.version(dist)))
        except importlib.metadata.PackageNotFoundError:
            continue
    if len(versions) == 1:
        return versions[0][1]
    if versions:
        return ",".join(f"{d}=={v}" for d, v in versions)
    version = getattr(sys.modules.get(top), "__version__", None)
    return version if isinstance(version, str) else None


def package_version(module_or_name: types.ModuleType | str) -> str | None:
    """The installed version of the distribution that provides a module's top-level package.

    Parameters
    ----------
    module_or_name : module or str
        A module or a dotted module name.

    Returns
    -------
    str or None
        The distribution's version (``"a==1,b==2"`` when several distributions share the
        top-level name); ``"python-X.Y"`` for the standard library; the package's
        ``__version__`` when no distribution is known; None otherwise.

    Examples
    --------
    >>> import numpy
    >>> package_version(numpy) == numpy.__version__ == package_version("numpy.linalg")
    True
    >>> package_version("json") == "python-%d.%d" % sys.version_info[:2]
    True
    >>> package_version("surely_not_a_module_name") is None
    True
    """
    name = module_or_name.__name__ if isinstance(module_or_name, types.ModuleType) else str(module_or_name)
    return _top_version(name.partition(".")[0])


def _installed_name(obj: Any) -> str:
    """``module.qualname==version`` of an installed function, class or builtin."""
    mod = getattr(obj, "__module__", None)
    if not isinstance(mod, str):
        owner = getattr(obj, "__self__", None)
        mod = getattr(owner, "__name__", None) if isinstance(owner, types.ModuleType) else type(owner).__module__
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__qualname__
    return f"{mod}.{name}=={package_version(mod) if isinstance(mod, str) else None}"


# --------------------------------------------------------------------------- the dependency graph


def _kind(v: Any) -> str:
    t = type(v)
    if t is types.FunctionType:
        return "function"
    if isinstance(v, type):
        return "class"
    if isinstance(v, types.ModuleType):
        return "module"
    if t is types.MethodType:
        return "method"
    if isinstance(v, functools.partial):
        return "partial"
    if _is_const(v):
        return "const"
    if isinstance(v, _BUILTIN_TYPES):
        return "builtin"
    if callable(v):
        if getattr(v, "__wrapped__", None) is not None:
            return "wrapped"
        if isinstance(getattr(v, "__name__", None), str) and not is_user_code(t):
            return "builtin"  # numpy ufuncs, Cython functions...
    return "data"


def _value_fp(v: Any) -> str:
    return "c" + _const_fp(v) if _is_const(v) else "v" + _hashing().fingerprint(v)


def _expect(v: Any, desc: str | None) -> tuple[Any, int]:
    """What a cached call compares a dependency with: the object, a weak reference, or its type."""
    if v is _MISSING or (desc is not None and desc.startswith("const:")):
        return v, _SAME
    if desc is None and type(v) not in (str, bytes, tuple, frozenset):
        return weakref.ref(type(v)), _TYPE  # data: only a change of kind matters
    try:
        return weakref.ref(v), _WEAK
    except TypeError:
        return v, _SAME


class _Graph:
    """One traversal: own-code parts, name bindings, and what a cached call re-checks."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.keys: dict[int, str] = {}
        self.alive: list[Any] = []  # keeps every visited object alive, so ids stay unique
        self.bindings: set[tuple[str, str, str]] = set()
        self.fn_checks: list[tuple[Any, ...]] = []
        self.groups: dict[Any, tuple[Any, str, dict[str, tuple[Any, int]]]] = {}
        self.volatile: list[tuple[Any, int, str, str]] = []
        self.seen_attrs: set[tuple[int, str]] = set()

    def new_key(self, obj: Any, module: Any) -> str:
        base = f"{module if isinstance(module, str) else '<exec>'}.{obj.__qualname__}"
        key, n = base, 1
        while key in self.parts:
            n += 1
            key = f"{base}#{n}"
        self.parts[key] = ""
        self.keys[id(obj)] = key
        self.alive.append(obj)
        return key

    def check(self, owner: Any, attr: str, ns: Any, name: str, v: Any, desc: str | None) -> None:
        gkey = id(ns) if type(ns) is dict else (id(owner), attr)
        group = self.groups.get(gkey)
        if group is None:
            self.alive.append(owner)
            group = self.groups[gkey] = (weakref.ref(owner), attr, {})
        if name not in group[2]:
            group[2][name] = _expect(v, desc)

    def lookup(self, owner: Any, attr: str, ns: Any, name: str, attrs: frozenset[str], referrer: str) -> None:
        v = ns.get(name, _MISSING)
        desc = None if v is _MISSING else self.resolve(v, attrs)
        self.check(owner, attr, ns, name, v, desc)
        if desc is not None:
            self.bindings.add((referrer, name, desc))

    def resolve(self, v: Any, attrs: frozenset[str] = frozenset()) -> str | None:
        """A stable description of what a name is bound to; None for data (not included)."""
        kind = _kind(v)
        if kind == "function" or kind == "class":
            if is_user_code(v):
                return "user:" + (self.function(v) if kind == "function" else self.klass(v))
            return self.wraps("installed:" + _installed_name(v), v)
        if kind == "module":
            return self.module(v, attrs)
        if kind == "method":
            owner = v.__self__
            cls = owner if isinstance(owner, type) else type(owner)
            return f"method:{self.resolve(v.__func__)}|{self.resolve(cls)}"
        if kind == "partial":
            return f"partial:{self.resolve(v.func)}|{_value_fp(v.args)}|{_value_fp(v.keywords)}"
        if kind == "const":
            return "const:" + _const_fp(v)
        if kind == "builtin":
            return "installed:" + _installed_name(v)
        if kind == "wrapped":
            return self.wraps("installed:" + _installed_name(type(v)), v)
        return None

    def wraps(self, desc: str, v: Any) -> str:
        inner = getattr(v, "__wrapped__", None)
        if inner is None or inner is v:
            return desc
        return f"{desc}|wraps:{self.resolve(inner)}"

    def module(self, mod: types.ModuleType, attrs: frozenset[str]) -> str:
        if not is_user_code(mod):
            return f"module:{mod.__name__}=={package_version(mod)}"
        ns = vars(mod)  # not the file: it may have been edited since import
        for a in sorted(attrs):
            if a in ns and (id(mod), a) not in self.seen_attrs:
                self.seen_attrs.add((id(mod), a))
                self.lookup(mod, "__dict__", ns, a, attrs, "module " + mod.__name__)
        return "usermodule:" + mod.__name__

    def imported(self, fn: types.FunctionType, name: str, attrs: frozenset[str], key: str) -> None:
        """A module imported inside the function (``import x`` / ``from .y import z``)."""
        pkg = fn.__globals__.get("__package__") or ""
        candidates = ([name] + ([f"{pkg}.{name}"] if pkg else [])) if name else [pkg]
        for cand in filter(None, candidates):
            mod = sys.modules.get(cand)
            if mod is not None:
                desc = self.resolve(mod, attrs)
                self.check(sys, "modules", sys.modules, cand, mod, desc)
                self.bindings.add((key, "import " + name, str(desc)))
                return
        try:
            spec = importlib.util.find_spec(name.partition(".")[0]) if name else None
        except (ImportError, ValueError):
            spec = None
        origin = getattr(spec, "origin", None)
        if origin and (origin in ("built-in", "frozen") or _path_is_installed(origin)):
            self.bindings.add((key, "import " + name, f"module:{name}=={package_version(name)}"))
        else:  # a user module not imported yet: recomputed once it is
            if candidates[0]:
                self.check(sys, "modules", sys.modules, candidates[0], _MISSING, None)
            self.bindings.add((key, "import " + name, "unresolved"))

    def function(self, fn: types.FunctionType) -> str:
        key = self.keys.get(id(fn))
        if key is not None:
            return key
        key = self.new_key(fn, fn.__module__)
        code = fn.__code__
        digest, (glob, attrs, imports) = _code_info(code)
        defaults = [("d", d) for d in fn.__defaults__ or ()]
        defaults += sorted(("k" + k, d) for k, d in (fn.__kwdefaults__ or {}).items())
        pieces = [digest]
        for tag, d in defaults:
            pieces.append(_frame(tag, _const_fp(d) if _is_const(d) else "~"))
        self.parts[key] = _hex(*pieces)  # own code: set before following anything (recursion)
        for tag, d in defaults:
            if not _is_const(d) and (desc := self.resolve(d)) is not None:
                self.bindings.add((key, "<default>" + tag, desc))
        cells = []
        for i, (name, cell) in enumerate(zip(code.co_freevars, fn.__closure__ or ())):
            try:
                v = cell.cell_contents
            except ValueError:
                cells.append((i, None, _EMPTY))
                self.bindings.add((key, "<cell>" + name, "empty"))
                continue
            if _kind(v) in ("data", "const"):
                self.volatile.append((fn, i, key, name))  # re-hashed on every call
                continue
            desc = self.resolve(v, attrs)
            self.bindings.add((key, "<cell>" + name, str(desc)))
            cells.append((i, *_expect(v, desc)))
        self.fn_checks.append((weakref.ref(fn), code, fn.__defaults__, fn.__kwdefaults__, tuple(cells)))
        ns = fn.__globals__
        for name in sorted(glob):
            self.lookup(fn, "__globals__", ns, name, attrs, key)
        for name in sorted(imports):
            self.imported(fn, name, attrs, key)
        return key

    def member(self, v: Any) -> str | None:
        """Description of a class attribute: methods by their own code, constants by value."""
        if isinstance(v, (staticmethod, classmethod)):
            return f"{type(v).__name__}:{self.member(v.__func__)}"
        if isinstance(v, property):
            return "property:" + ",".join(str(self.member(f)) for f in (v.fget, v.fset, v.fdel))
        if isinstance(v, functools.cached_property):
            return "cached_property:" + str(self.member(v.func))
        if type(v) is types.FunctionType and is_user_code(v):
            key = self.function(v)
            return f"fn:{key}:{self.parts[key]}"
        return self.resolve(v)

    def klass(self, cls: type) -> str:
        key = self.keys.get(id(cls))
        if key is not None:
            return key
        module = vars(cls).get("__module__")
        if module == "builtins":
            module = None
        key = self.new_key(cls, module)
        pieces = [cls.__qualname__]
        pieces += ["base:" + str(self.resolve(b)) for b in cls.__bases__]
        if type(cls) is not type:
            pieces.append("meta:" + str(self.resolve(type(cls))))
        ns = vars(cls)  # built from the members: a notebook class has no retrievable source
        for name in sorted(k for k in ns if isinstance(k, str)):
            if name in _SKIP_CLASS_ATTRS:
                continue
            v = ns[name]
            desc = self.member(v)
            if desc is None and isinstance(v, cls) and _is_const(getattr(v, "_value_", None)):
                desc = "member:" + _const_fp(v._value_)  # Enum members
            if desc is not None:
                pieces.append(f"{name}={desc}")
                self.check(cls, "__dict__", ns, name, v, desc)
        annotations = ns.get("__annotations__")
        if isinstance(annotations, dict):
            for name, ann in sorted(annotations.items()):
                text = ann if isinstance(ann, str) else _ADDRESS.sub("", repr(ann))
                pieces.append(f"annotation:{name}={text}")
        self.parts[key] = _hex(*pieces)
        return key

    def owner_class(self, fn: types.FunctionType) -> str | None:
        """The class a plain function is defined in (``A.meth``), found through its ``__qualname__``."""
        path = fn.__qualname__.split(".")[:-1]
        if not path or "<locals>" in path:
            return None
        obj = fn.__globals__.get(path[0], _MISSING)
        self.check(fn, "__globals__", fn.__globals__, path[0], obj, "class" if isinstance(obj, type) else None)
        for part in path[1:]:
            obj = vars(obj).get(part, _MISSING) if isinstance(obj, type) else _MISSING
        if not isinstance(obj, type) or not is_user_code(obj):
            return None
        member = vars(obj).get(fn.__name__)
        for _ in range(8):  # through staticmethod/classmethod and decorators such as @checkpoint
            if member is fn:
                return "owner:user:" + self.klass(obj)
            member = getattr(member, "__func__", None) or getattr(member, "__wrapped__", None)
        return "owner:redefined"  # the name now holds another version of the class


class _Entry:
    """A cached fingerprint and everything it was computed from."""

    __slots__ = ("refs", "fn_checks", "ns_checks", "volatile", "base", "digest", "parts")

    def valid(self, roots: tuple[Any, ...]) -> bool:
        """Whether every object the fingerprint was computed from is still in place."""
        for ref, root in zip(self.refs, roots):
            if ref() is not root:
                return False
        for ref, code, defaults, kwdefaults, cells in self.fn_checks:
            fn = ref()
            if fn is None or fn.__code__ is not code or fn.__defaults__ is not defaults \
                    or fn.__kwdefaults__ is not kwdefaults:
                return False  # IPython's autoreload swaps __code__ in place
            if cells and not _cells_unchanged(fn, cells):
                return False
        missing, weak = _MISSING, _WEAK
        for ref, attr, items in self.ns_checks:
            owner = ref()
            if owner is None:
                return False
            get = getattr(owner, attr).get
            for name, expect, mode in items:
                v = get(name, missing)
                if v is expect:
                    continue
                if mode != weak or v is not expect():
                    if mode != _TYPE or type(v) is not expect():
                        return False
        return True

    def value(self) -> str | None:
        """The fingerprint, re-hashing closure values (None if one became code: recompute)."""
        if not self.volatile:
            return self.digest  # type: ignore[no-any-return]
        h = self.base.copy()
        for ref, i, key, name in self.volatile:
            fn = ref()
            try:
                v = fn.__closure__[i].cell_contents
            except (AttributeError, ValueError):
                return None
            if _kind(v) not in ("data", "const"):
                return None
            h.update(_frame(key, name, _value_fp(v)))
        return h.hexdigest()  # type: ignore[no-any-return]


def _cells_unchanged(fn: types.FunctionType, cells: tuple[tuple[Any, ...], ...]) -> bool:
    for i, expect, mode in cells:
        try:
            v = fn.__closure__[i].cell_contents  # type: ignore[index]
        except ValueError:
            v = _MISSING
        if (v is not _MISSING) if mode == _EMPTY else (v is not (expect() if mode == _WEAK else expect)):
            return False
    return True


_CACHE: dict[Any, _Entry] = {}


def _build(roots: tuple[Any, ...]) -> _Entry:
    g = _Graph()
    descs = [str(g.resolve(r)) for r in roots]
    if len(roots) == 1 and type(roots[0]) is types.FunctionType and descs[0].startswith("user:"):
        descs.append(str(g.owner_class(roots[0])))
    for r, desc in zip(roots, descs):
        if not desc.startswith("user:"):  # an installed root: its name and version are its part
            g.parts.setdefault(_label(r), _hex(desc))
    h = xxhash.xxh3_128()
    h.update(_frame("checkpoint_magic.code", str(_CODEHASH_VERSION),
                    str(_hashing().HASH_SCHEME_VERSION), _INTERPRETER, *descs))
    h.update(struct.pack("<Q", len(g.parts)))
    for key in sorted(g.parts):
        h.update(_frame(key, g.parts[key]))
    h.update(struct.pack("<Q", len(g.bindings)))
    for binding in sorted(g.bindings):
        h.update(_frame(*binding))
    entry = _Entry()
    entry.fn_checks = tuple(g.fn_checks)
    entry.ns_checks = tuple((ref, attr, tuple((n, *e) for n, e in items.items()))
                            for ref, attr, items in g.groups.values())
    entry.volatile = tuple((weakref.ref(fn), i, key, name) for fn, i, key, name in g.volatile)
    entry.base, entry.digest, entry.parts = h, h.hexdigest(), dict(g.parts)
    return entry


def _label(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _roots(obj: Any) -> tuple[Any, ...]:
    if type(obj) is types.MethodType:
        owner = obj.__self__
        return obj.__func__, owner if isinstance(owner, type) else type(owner)
    if isinstance(obj, (staticmethod, classmethod)):
        return _roots(obj.__func__)
    if _kind(obj) in ("function", "class", "builtin", "wrapped"):
        return (obj,)
    if callable(obj):
        return (type(obj),)  # a callable instance: its class's code (its state is data)
    raise FingerprintError(
        f"cannot fingerprint the code of a {type(obj).__name__}: pass a function, method, "
        "lambda, functools.partial or class"
    )


def _cache_key(roots: tuple[Any, ...]) -> Any:
    return id(roots[0]) if len(roots) == 1 else tuple(map(id, roots))


def _entry(roots: tuple[Any, ...], *, rebuild: bool = False) -> _Entry:
    """The valid cache entry for these roots, rebuilding it if anything it used changed."""
    key = _cache_key(roots)
    entry = None if rebuild else _CACHE.get(key)
    if entry is not None and entry.valid(roots):
        return entry
    entry = _build(roots)
    try:
        entry.refs = tuple(weakref.ref(r) for r in roots)
    except TypeError:  # a root without weak references: not cached
        return entry
    if key not in _CACHE:
        for r in roots:  # drop the entry when a root dies (its id may then be reused)
            weakref.finalize(r, _CACHE.pop, key, None).atexit = False
    _CACHE[key] = entry
    return entry


def code_fingerprint(obj: Any) -> str:
    """Fingerprint of a function's, method's or class's code and of the user code it reaches.

    Covers the normalized AST and the running bytecode of ``obj`` and of every user-defined
    function and class it references (globals, closure cells, used attributes of user
    modules, the class of a method), small global constants, closure values, and the
    versions of installed packages it uses. Global data is not included: pass it as an
    argument. Cached per function object; rebinding a helper is noticed on the next call.

    Parameters
    ----------
    obj : callable
        A function, lambda, bound method, ``functools.partial`` (function plus arguments),
        a wrapper with ``__wrapped__``, or a class. Installed functions and classes count
        by ``module.qualname`` and package version.

    Returns
    -------
    str
        32 hexadecimal characters (xxh3-128), stable across processes.

    Raises
    ------
    FingerprintError
        If ``obj`` is not code (or a closure value cannot be fingerprinted).

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
    >>> len(code_fingerprint(ns1["f"]))
    32
    """
    entry = _CACHE.get(id(obj))  # fast path: a cached function without closure values
    if entry is not None and not entry.volatile and entry.valid((obj,)):
        return entry.digest  # type: ignore[no-any-return]
    roots = None if isinstance(obj, functools.partial) else _roots(obj)
    guard = id(obj) if roots is None else _cache_key(roots)
    active = getattr(_STATE, "active", None)
    if active is None:
        active = _STATE.active = set()
    if guard in active:  # reached again while hashing its own closure values or arguments
        return _hex("recursive", _label(obj))
    active.add(guard)
    try:
        if roots is None:
            return _hex("partial", code_fingerprint(obj.func), _value_fp(obj.args), _value_fp(obj.keywords))
        fp = _entry(roots).value()
        if fp is None:  # a closure cell that held data now holds code: follow it
            fp = _entry(roots, rebuild=True).value()
        if fp is None:
            raise FingerprintError(f"the closure of {_label(obj)} changed while it was fingerprinted")
        return fp
    finally:
        active.discard(guard)


def code_parts(obj: Any) -> dict[str, str]:
    """Own-code fingerprints of ``obj`` and of every user function/class it reaches.

    Parameters
    ----------
    obj : callable
        As for :func:`code_fingerprint`.

    Returns
    -------
    dict of str to str
        ``"module.qualname" -> fingerprint`` of that function's or class's own code (not
        of what it calls); used to explain which function changed between two runs.

    Examples
    --------
    >>> ns = {}
    >>> exec("def helper(x):\\n    return 2 * x\\ndef f(x):\\n    return helper(x) + 1\\n", ns)
    >>> sorted(code_parts(ns["f"]))
    ['<exec>.f', '<exec>.helper']
    """
    if isinstance(obj, functools.partial):
        return code_parts(obj.func)
    return dict(_entry(_roots(obj)).parts)


def source_fingerprint(source: str) -> str:
    """Normalized-AST fingerprint of a snippet of code (a with-block body or a notebook cell).

    The snippet is dedented and parsed; comments, whitespace, blank lines and docstrings
    do not count (a cell's only statement counts even if it is a string: it is shown).
    Source that does not parse is fingerprinted by its text (and a warning is logged).

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
        payload = _normalized_dump(ast.parse(text))
        kind = "ast"
    except SyntaxError as exc:
        logger.warning("code does not parse (%s); fingerprinting its text", exc)
        payload, kind = "\n".join(line.rstrip() for line in text.strip().splitlines()), "text"
    return _hex("checkpoint_magic.source", str(_CODEHASH_VERSION), kind, payload)


def referenced_names(source_or_code: Any) -> set[str]:
    """Global names that a snippet, code object or function reads (and the modules it imports).

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
        raise FingerprintError(f"expected source, a code object or a function, not {type(source_or_code).__name__}")
    glob, _, imports = _names(code)
    return set(glob) | {name.partition(".")[0] for name in imports if name}
