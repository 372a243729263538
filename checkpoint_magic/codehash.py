"""Code fingerprints: functions, methods, classes and code snippets, with the user code they reach.

A function's fingerprint covers its normalized AST (comments, whitespace, blank lines,
docstrings and its own decorators do not count) *and* the bytecode that is running, so a
source file edited after import can never file the old code's result under the new
code's key; bytecode alone is used when there is no source (``exec``, a prompt). It also
covers, transitively, every user-defined function and class reached through a global
name, a closure cell, a used attribute of a user module or the class of a method.
Installed packages count by name and version, small global constants (None, bool,
numbers, str, bytes and tuples/frozensets of them) by value, closure values through
:func:`checkpoint_magic.hashing.fingerprint`. Other global values (data) are *not*
included: pass data as arguments so that it is an input.

Fingerprints are cached per function object with what they depended on (the object each
global name was bound to, every function's ``__code__``, defaults and closure cells): a
repeated :func:`code_fingerprint` costs a few identity checks, and rebinding a helper (a
notebook re-running a cell, IPython's autoreload swapping ``__code__``) is noticed.
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

__all__ = ["code_fingerprint", "code_parts", "is_user_code", "package_version", "referenced_names",
           "source_fingerprint"]

logger = logging.getLogger(__name__)

_CODEHASH_VERSION = 1
_PYTHON = "python-{}.{}".format(*sys.version_info[:2])
_INTERPRETER = sys.implementation.cache_tag or _PYTHON  # bytecode differs between interpreters
_MISSING: Any = object()  # a name not bound in a namespace (a builtin, or not defined yet)
_SAME, _WEAK, _TYPE, _EMPTY = 0, 1, 2, 3  # how a dependency is re-checked on a cached call
_HASCONST = frozenset(dis.hasconst)
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_SCALARS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))
_BUILTIN_TYPES = (types.BuiltinFunctionType, types.MethodDescriptorType, types.WrapperDescriptorType,
                  types.MethodWrapperType, types.ClassMethodDescriptorType)
_SKIP_CLASS_ATTRS = frozenset({"__dict__", "__weakref__", "__doc__", "__module__", "__qualname__",
                               "__firstlineno__", "__static_attributes__", "__annotations__",
                               "__slotnames__", "_abc_impl"})
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_STATE = threading.local()


def _hashing() -> Any:
    from . import hashing  # lazy: hashing imports this module lazily too

    return hashing


def _frame(*items: str | bytes) -> bytes:
    """Length-prefix every item so that no two different sequences give the same bytes."""
    out: list[bytes] = []
    for item in items:
        data = item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item
        out += (struct.pack("<Q", len(data)), data)
    return b"".join(out)


def _hex(*items: str | bytes) -> str:
    return xxhash.xxh3_128_hexdigest(_frame(*items))


def _is_const(v: Any, depth: int = 0) -> bool:
    """True for small plain constants: scalars of the builtin types, tuples/frozensets of them."""
    t = type(v)
    if t in _SCALARS:
        return not (t is str or t is bytes) or len(v) <= 65536
    return (t is tuple or t is frozenset) and depth < 4 and len(v) <= 1024 and all(
        _is_const(x, depth + 1) for x in v)


def _const_bytes(c: Any, out: list[bytes]) -> None:
    """Append a type-tagged, framed encoding of a constant (or a nested code object) to ``out``."""
    t = type(c)
    if c is None or c is Ellipsis or t is bool:
        out.append({None: b"N", Ellipsis: b"E", True: b"T", False: b"F"}[c])
    elif t is int:
        out.append(b"i" + _frame(c.to_bytes(c.bit_length() // 8 + 1, "little", signed=True)))
    elif t is float or t is complex:
        out.append(b"f" + struct.pack("<d", c) if t is float else b"c" + struct.pack("<dd", c.real, c.imag))
    elif t is str or t is bytes:
        out.append((b"s" if t is str else b"b") + _frame(c))
    elif t is tuple:
        out.append(b"t" + struct.pack("<Q", len(c)))
        for x in c:
            _const_bytes(x, out)
    elif t is frozenset:  # iteration order depends on PYTHONHASHSEED: sort the elements' hashes
        items = sorted(bytes.fromhex(_const_fp(x)) for x in c)
        out.append(b"z" + struct.pack("<Q", len(items)) + b"".join(items))
    elif isinstance(c, types.CodeType):
        _code_bytes(c, out)
    else:  # not made by CPython's compiler up to 3.13; hash the value anyway
        out.append(b"?" + _frame(f"{t.__module__}.{t.__qualname__}", _hashing().fingerprint(c)))


def _const_fp(v: Any) -> str:
    out: list[bytes] = []
    _const_bytes(v, out)
    return xxhash.xxh3_128_hexdigest(b"".join(out))


def _docstring_slot(code: types.CodeType) -> bool:
    """Whether ``co_consts[0]`` is a function's docstring slot (a str or None the code never loads)."""
    if not code.co_flags & inspect.CO_OPTIMIZED or code.co_name.startswith("<") or not code.co_consts:
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


def _code_bytes(code: types.CodeType, out: list[bytes]) -> None:
    """Append the code's identity: bytecode, names, constants; not its file or line numbers."""
    out.append(b"C" + struct.pack("<4q", code.co_argcount, code.co_posonlyargcount,
                                  code.co_kwonlyargcount, code.co_flags))
    out.append(_frame(code.co_name, code.co_code, getattr(code, "co_exceptiontable", b"")))
    for names in (code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars):
        out.append(_frame(str(len(names)), *names))
    out.append(struct.pack("<Q", len(code.co_consts)))
    skip_doc = _docstring_slot(code)
    for i, c in enumerate(code.co_consts):
        if i == 0 and skip_doc:
            out.append(b"D")  # the docstring: editing it changes nothing
        else:
            _const_bytes(c, out)


def _names(code: types.CodeType, found: tuple[set[str], set[str], set[str]] | None = None,
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
            _names(c, found)
    return found


def _normalized_dump(node: ast.AST) -> str:
    """``ast.dump`` without docstrings, positions or the top node's decorators."""
    for n in ast.walk(node):
        body = getattr(n, "body", None)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str) and not (isinstance(n, ast.Module) and len(body) == 1):
            n.body = body[1:]  # (a cell whose only statement is a string displays it: kept)
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
    line = code.co_firstlineno - start + 1  # a decorated function starts at its first decorator
    nodes = [n for n in ast.walk(tree) if (
        isinstance(n, ast.Lambda) and n.lineno == line if code.co_name == "<lambda>" else
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == code.co_name
        and min([n.lineno] + [d.lineno for d in n.decorator_list]) == line)]
    if len(nodes) != 1:
        logger.debug("source of %s not found unambiguously: bytecode only", code.co_name)
        return None
    return _normalized_dump(nodes[0])


_CODE_INFO: dict[int, tuple[Any, bytes, tuple[frozenset[str], ...]]] = {}


def _code_info(code: types.CodeType) -> tuple[bytes, tuple[frozenset[str], ...]]:
    """(own-code digest from AST and bytecode, referenced names) of a code object, cached while it lives."""
    hit = _CODE_INFO.get(id(code))
    if hit is not None and hit[0]() is code:
        return hit[1], hit[2]
    out: list[bytes] = []
    _code_bytes(code, out)
    tree = _function_ast(code)
    digest = xxhash.xxh3_128_digest(_frame("ast" if tree else "no-source", tree or "", b"".join(out)))
    names = tuple(frozenset(s) for s in _names(code))
    key = id(code)

    def forget(_: Any) -> None:
        _CODE_INFO.pop(key, None)

    _CODE_INFO[key] = (weakref.ref(code, forget), digest, names)
    return digest, names


@functools.lru_cache(maxsize=1)
def _installed_prefixes() -> tuple[str, ...]:
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    for getter in ("getsitepackages", "getusersitepackages"):
        found: Any = getattr(site, getter, list)()
        paths.update([found] if isinstance(found, str) else found)
    return tuple(sorted({os.path.normcase(os.path.realpath(p)) for p in paths if p}))


@functools.lru_cache(maxsize=4096)
def _path_is_installed(path: str) -> bool:
    real = os.path.normcase(os.path.realpath(path))
    return bool({"site-packages", "dist-packages"} & set(real.split(os.sep))) or any(
        real == p or real.startswith(p + os.sep) for p in _installed_prefixes())


def _module_is_user(mod: types.ModuleType) -> bool:
    name = getattr(mod, "__name__", "")
    if name == "checkpoint_magic" or name.startswith("checkpoint_magic."):
        return False
    path = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", None) or ()), None)
    return name == "__main__" or (bool(path) and not _path_is_installed(path))


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
        if modname == "__main__" or getattr(mod, "__file__", None) or getattr(mod, "__path__", None):
            return _module_is_user(mod)
        if isinstance(obj, type):  # in 'builtins': made by exec() without a __name__?
            return bool(obj.__flags__ & (1 << 9)) and getattr(mod, obj.__qualname__, None) is not obj
        if type(obj) is not types.FunctionType:
            return False
    elif isinstance(modname, str) and (modname == "__main__" or modname.startswith("checkpoint_magic")):
        return modname == "__main__"
    code = getattr(obj, "__code__", None)
    if isinstance(code, types.CodeType):
        return code.co_filename.startswith("<") or not _path_is_installed(code.co_filename)
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
        return _PYTHON
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


def _kind(v: Any) -> str:
    t = type(v)
    if t is types.FunctionType or t is types.MethodType:
        return "function" if t is types.FunctionType else "method"
    if isinstance(v, (type, types.ModuleType, functools.partial)):
        return "class" if isinstance(v, type) else "module" if isinstance(v, types.ModuleType) else "partial"
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
    """What a cached call compares a binding with: the object, a weak reference, or its type."""
    if v is _MISSING or (desc is not None and desc.startswith("const:")):
        return v, _SAME
    if desc is None and type(v) not in (str, bytes, tuple, frozenset):
        return weakref.ref(type(v)), _TYPE  # data: only a change to code matters
    try:
        return weakref.ref(v), _WEAK
    except TypeError:
        return v, _SAME


class _Graph:
    """One traversal: own-code parts, name bindings, and what a cached call must re-check."""

    def __init__(self) -> None:
        self.parts: dict[str, str] = {}
        self.keys: dict[int, str] = {}
        self.alive: list[Any] = []  # every visited object stays alive, so ids stay unique
        self.bindings: set[tuple[str, str, str]] = set()
        self.fn_checks: list[tuple[Any, ...]] = []
        self.groups: dict[Any, tuple[Any, str, dict[str, tuple[Any, int]]]] = {}
        self.volatile: list[tuple[Any, int, str, str]] = []
        self.seen_attrs: set[tuple[int, str]] = set()

    def new_key(self, obj: Any, module: Any) -> str:
        key = base = f"{module if isinstance(module, str) else '<exec>'}.{obj.__qualname__}"
        n = 1
        while key in self.parts:
            n += 1
            key = f"{base}#{n}"
        self.parts[key], self.keys[id(obj)] = "", key
        self.alive.append(obj)
        return key

    def check(self, owner: Any, attr: str, ns: Any, name: str, v: Any, desc: str | None) -> None:
        """Re-check ``getattr(owner, attr)[name]`` on cached calls."""
        gkey = id(ns) if type(ns) is dict else (id(owner), attr)
        if gkey not in self.groups:
            self.alive.append(owner)
            self.groups[gkey] = (weakref.ref(owner), attr, {})
        self.groups[gkey][2].setdefault(name, _expect(v, desc))

    def lookup(self, owner: Any, attr: str, ns: Any, name: str, attrs: frozenset[str], referrer: str) -> None:
        v = ns.get(name, _MISSING)
        desc = None if v is _MISSING else self.resolve(v, attrs)
        self.check(owner, attr, ns, name, v, desc)
        if desc is not None:
            self.bindings.add((referrer, name, desc))

    def resolve(self, v: Any, attrs: frozenset[str] = frozenset()) -> str | None:
        """A stable description of a referenced object; None for data (not included)."""
        kind = _kind(v)
        if kind in ("function", "class") and is_user_code(v):
            return "user:" + (self.function(v) if kind == "function" else self.klass(v))
        if kind in ("function", "class", "builtin", "wrapped"):
            desc = "installed:" + _installed_name(type(v) if kind == "wrapped" else v)
            inner = getattr(v, "__wrapped__", None) if kind != "class" else None
            return desc if inner is None or inner is v else f"{desc}|wraps:{self.resolve(inner)}"
        if kind == "module":
            return self.module(v, attrs)
        if kind == "method":
            owner = v.__self__
            return f"method:{self.resolve(v.__func__)}|{self.resolve(owner if isinstance(owner, type) else type(owner))}"
        if kind == "partial":
            return f"partial:{self.resolve(v.func)}|{_value_fp(v.args)}|{_value_fp(v.keywords)}"
        return "const:" + _const_fp(v) if kind == "const" else None

    def module(self, mod: types.ModuleType, attrs: frozenset[str]) -> str:
        if not is_user_code(mod):
            return f"module:{mod.__name__}=={package_version(mod)}"
        ns = vars(mod)  # the attributes the code uses, not the file: it may have been edited
        for a in sorted(attrs):
            if a in ns and (id(mod), a) not in self.seen_attrs:
                self.seen_attrs.add((id(mod), a))
                self.lookup(mod, "__dict__", ns, a, attrs, "module " + mod.__name__)
        return "usermodule:" + mod.__name__

    def imported(self, fn: types.FunctionType, name: str, attrs: frozenset[str], key: str) -> None:
        """A module imported inside the function (``import x``, ``from .y import z``)."""
        pkg = fn.__globals__.get("__package__") or ""
        candidates = ([name] + ([f"{pkg}.{name}"] if pkg else [])) if name else [pkg]
        for cand in filter(None, candidates):
            if (mod := sys.modules.get(cand)) is not None:
                desc = self.resolve(mod, attrs)
                self.check(sys, "modules", sys.modules, cand, mod, desc)
                self.bindings.add((key, "import " + name, str(desc)))
                return
        try:
            origin = getattr(importlib.util.find_spec(name.partition(".")[0]), "origin", None) if name else None
        except (ImportError, ValueError):
            origin = None
        if origin and (origin in ("built-in", "frozen") or _path_is_installed(origin)):
            self.bindings.add((key, "import " + name, f"module:{name}=={package_version(name)}"))
        else:  # a user module not imported yet: recomputed once it is
            if candidates[0]:
                self.check(sys, "modules", sys.modules, candidates[0], _MISSING, None)
            self.bindings.add((key, "import " + name, "unresolved"))

    def function(self, fn: types.FunctionType) -> str:
        if (key := self.keys.get(id(fn))) is not None:
            return key
        key, code = self.new_key(fn, fn.__module__), fn.__code__
        digest, (glob, attrs, imports) = _code_info(code)
        defaults = [("d", d) for d in fn.__defaults__ or ()]
        defaults += sorted(("k" + k, d) for k, d in (fn.__kwdefaults__ or {}).items())
        self.parts[key] = _hex(digest, *(_frame(tag, _const_fp(d) if _is_const(d) else "~") for tag, d in defaults))
        for tag, d in defaults:  # (own code is set before following anything: recursion)
            if not _is_const(d) and (desc := self.resolve(d)) is not None:
                self.bindings.add((key, "<default>" + tag, desc))
        cells = []
        for i, (name, cell) in enumerate(zip(code.co_freevars, fn.__closure__ or (), strict=False)):
            try:
                v = cell.cell_contents
            except ValueError:
                cells.append((i, None, _EMPTY))
                self.bindings.add((key, "<cell>" + name, "empty"))
                continue
            if _kind(v) in ("data", "const"):
                self.volatile.append((fn, i, key, name))  # re-hashed on every call
            else:
                desc = self.resolve(v, attrs)
                self.bindings.add((key, "<cell>" + name, str(desc)))
                cells.append((i, *_expect(v, desc)))
        self.fn_checks.append((weakref.ref(fn), code, fn.__defaults__, fn.__kwdefaults__, tuple(cells)))
        for name in sorted(glob):
            self.lookup(fn, "__globals__", fn.__globals__, name, attrs, key)
        for name in sorted(imports):
            self.imported(fn, name, attrs, key)
        return key

    def member(self, v: Any) -> str | None:
        """A class attribute: methods by their own code, constants by value, data not at all."""
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
        """A class's own part, built from its members (a notebook class has no retrievable source)."""
        if (key := self.keys.get(id(cls))) is not None:
            return key
        ns = vars(cls)
        key = self.new_key(cls, None if ns.get("__module__") == "builtins" else ns.get("__module__"))
        pieces = [cls.__qualname__, *("base:" + str(self.resolve(b)) for b in cls.__bases__)]
        if type(cls) is not type:
            pieces.append("meta:" + str(self.resolve(type(cls))))
        for name in sorted(k for k in ns if isinstance(k, str) and k not in _SKIP_CLASS_ATTRS):
            v = ns[name]
            desc = self.member(v)
            if desc is None and isinstance(v, cls) and _is_const(getattr(v, "_value_", None)):
                desc = "member:" + _const_fp(getattr(v, "_value_", None))  # Enum members
            if desc is not None:
                pieces.append(f"{name}={desc}")
                self.check(cls, "__dict__", ns, name, v, desc)
        if isinstance(annotations := ns.get("__annotations__"), dict):
            pieces += [f"annotation:{name}={ann if isinstance(ann, str) else _ADDRESS.sub('', repr(ann))}"
                       for name, ann in sorted(annotations.items())]
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
        return "owner:redefined"  # the name holds another version of the class now


class _Entry:
    """A cached fingerprint and everything it was computed from."""

    __slots__ = ("refs", "fn_checks", "ns_checks", "volatile", "base", "digest", "parts")
    refs: tuple[Any, ...]
    fn_checks: tuple[tuple[Any, ...], ...]
    ns_checks: tuple[tuple[Any, ...], ...]  # (owner ref, attribute, then (name, expected) by mode)
    volatile: tuple[tuple[Any, int, str, str], ...]
    base: Any
    digest: str
    parts: dict[str, str]

    def valid(self, roots: tuple[Any, ...]) -> bool:
        """Whether every object the fingerprint was computed from is still in place."""
        for ref, root in zip(self.refs, roots, strict=True):
            if ref() is not root:
                return False
        for ref, code, defaults, kwdefaults, cells in self.fn_checks:
            fn = ref()
            if fn is None or fn.__code__ is not code or fn.__defaults__ is not defaults \
                    or fn.__kwdefaults__ is not kwdefaults or (cells and not _cells_unchanged(fn, cells)):
                return False
        missing = _MISSING
        for ref, attr, weak, same, typed in self.ns_checks:
            if (owner := ref()) is None:
                return False
            get = getattr(owner, attr).get
            for name, expect in weak:
                if get(name, missing) is not expect():
                    return False
            for name, expect in same:
                if get(name, missing) is not expect:
                    return False
            for name, expect in typed:
                if type(get(name, missing)) is not expect():
                    return False
        return True

    def value(self) -> str | None:
        """The fingerprint, re-hashing closure values (None if one now holds code: rebuild)."""
        if not self.volatile:
            return self.digest
        h = self.base.copy()
        for ref, i, key, name in self.volatile:
            try:
                v = ref().__closure__[i].cell_contents
            except (AttributeError, ValueError):
                return None
            if _kind(v) not in ("data", "const"):
                return None
            h.update(_frame(key, name, _value_fp(v)))
        return str(h.hexdigest())


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


def _roots(obj: Any) -> tuple[Any, ...]:
    """What to fingerprint: a method is its function and the class of its instance."""
    if type(obj) is types.MethodType:
        owner = obj.__self__
        return obj.__func__, owner if isinstance(owner, type) else type(owner)
    if isinstance(obj, (staticmethod, classmethod)):
        return _roots(obj.__func__)
    if _kind(obj) in ("function", "class", "builtin", "wrapped"):
        return (obj,)
    if callable(obj):
        return (type(obj),)  # a callable instance: its class's code (its state is data)
    raise FingerprintError(f"cannot fingerprint the code of a {type(obj).__name__}: pass a function, "
                           "method, lambda, functools.partial or class")


def _label(obj: Any) -> str:
    return f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"


def _build(roots: tuple[Any, ...]) -> _Entry:
    g = _Graph()
    descs = [str(g.resolve(r)) for r in roots]
    if len(roots) == 1 and type(roots[0]) is types.FunctionType and descs[0].startswith("user:"):
        descs.append(str(g.owner_class(roots[0])))
    for r, desc in zip(roots, descs, strict=False):
        if not desc.startswith("user:"):  # an installed root: its name and version are its part
            g.parts.setdefault(_label(r), _hex(desc))
    h = xxhash.xxh3_128()
    h.update(_frame("checkpoint_magic.code", str(_CODEHASH_VERSION), str(_hashing().HASH_SCHEME_VERSION),
                    _INTERPRETER, *descs))
    h.update(struct.pack("<Q", len(g.parts)))
    for key in sorted(g.parts):
        h.update(_frame(key, g.parts[key]))
    h.update(struct.pack("<Q", len(g.bindings)))
    for binding in sorted(g.bindings):
        h.update(_frame(*binding))
    entry = _Entry()
    entry.fn_checks = tuple(g.fn_checks)
    entry.ns_checks = tuple((ref, attr, *(tuple((n, e) for n, (e, m) in items.items() if m == mode)
                                          for mode in (_WEAK, _SAME, _TYPE)))
                            for ref, attr, items in g.groups.values())
    entry.volatile = tuple((weakref.ref(fn), i, key, name) for fn, i, key, name in g.volatile)
    entry.base, entry.digest, entry.parts = h, h.hexdigest(), dict(g.parts)
    return entry


def _compute(obj: Any) -> tuple[str, dict[str, str]]:
    """(fingerprint, parts) of ``obj``, from the cache when nothing it used has changed."""
    partial = isinstance(obj, functools.partial)
    roots = (obj,) if partial else _roots(obj)
    key = id(roots[0]) if len(roots) == 1 else tuple(map(id, roots))
    active = _STATE.__dict__.setdefault("active", set())
    if key in active:  # reached again while hashing its own closure values or arguments
        return _hex("recursive", _label(obj)), {}
    active.add(key)
    try:
        if partial:
            fp, parts = _compute(obj.func)
            return _hex("partial", fp, _value_fp(obj.args), _value_fp(obj.keywords)), parts
        for attempt in range(2):
            entry = _CACHE.get(key) if attempt == 0 else None
            if entry is None or not entry.valid(roots):
                entry = _build(roots)
                try:
                    entry.refs = tuple(weakref.ref(r) for r in roots)
                except TypeError:  # a root without weak references: not cached
                    pass
                else:
                    if key not in _CACHE:  # drop the entry when a root dies (its id may be reused)
                        for r in roots:
                            weakref.finalize(r, _CACHE.pop, key, None).atexit = False
                    _CACHE[key] = entry
            value = entry.value()
            if value is not None:  # None: a closure cell now holds code
                return value, entry.parts
        raise FingerprintError(f"the closure of {_label(obj)} changed while it was fingerprinted")
    finally:
        active.discard(key)


def code_fingerprint(obj: Any) -> str:
    """Fingerprint of a function's, method's or class's code and of the user code it reaches.

    Covers the normalized AST and the running bytecode of ``obj`` and of every user-defined
    function and class it reaches (globals, closure cells, used attributes of user modules,
    the class of a method), small global constants, closure values and the versions of the
    installed packages it uses. Global data is not included: pass it as an argument.

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
    entry = _CACHE.get(id(obj))  # fast path: a cached function without closure values
    if entry is not None and not entry.volatile and entry.valid((obj,)):
        return entry.digest
    return _compute(obj)[0]


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
    return dict(_compute(obj)[1])


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
        return _hex("checkpoint_magic.source", str(_CODEHASH_VERSION), "ast", _normalized_dump(ast.parse(text)))
    except SyntaxError as exc:
        logger.warning("code does not parse (%s); fingerprinting its text", exc)
        lines = "\n".join(line.rstrip() for line in text.strip().splitlines())
        return _hex("checkpoint_magic.source", str(_CODEHASH_VERSION), "text", lines)


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
        raise FingerprintError(f"expected source, a code object or a function, not {type(code).__name__}")
    glob, _, imports = _names(code)
    return glob | {name.partition(".")[0] for name in imports if name}
