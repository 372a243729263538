"""The dependency graph of a code fingerprint and its per-function cache (used by ``code``).

:func:`compute` walks what a function, method or class reaches: user functions and
classes through global names, closure cells, defaults, used attributes of user modules,
imports inside the function and the class a method is defined in, and the class of a
global that is an instance of a user class; installed code by name and version; small
constants by value. It records the own-code fingerprint of each user
function and class (the ``code_parts``), every name binding it followed, and what a later
call must re-check to trust the cached fingerprint: the object each global name was bound
to, every function's ``__code__``, defaults and closure cells. The cache itself is
:data:`CODE_CACHE`, read directly by ``code_fingerprint``'s fast path;
closure values and the data attributes of user classes (``params = {...}``) are re-hashed
by value on every call.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib.util
import re
import struct
import sys
import threading
import types
import weakref
from typing import Any

import xxhash

from ..exceptions import FingerprintError
from . import origin  # its functions through the module: tests patch package_version
from .bytecode import (
    CODEHASH_VERSION,
    code_bytes,
    code_names,
    const_fingerprint,
    function_ast,
    is_const,
)
from .encoding import HASH_SCHEME_VERSION, frame, hex_digest
from .origin import PYTHON_TAG, path_is_installed
from .values import QuietFingerprinter, fingerprint

_INTERPRETER = sys.implementation.cache_tag or PYTHON_TAG  # bytecode differs between interpreters
_MISSING: Any = object()  # a name not bound in a namespace (a builtin, or not defined yet)
_SAME, _WEAK, _TYPE, _EMPTY = 0, 1, 2, 3  # how a dependency is re-checked on a cached call
_BUILTIN_TYPES = (
    types.BuiltinFunctionType,
    types.MethodDescriptorType,
    types.WrapperDescriptorType,
    types.MethodWrapperType,
    types.ClassMethodDescriptorType,
)
_SKIP_CLASS_ATTRS = frozenset(
    {
        "__dict__",
        "__weakref__",
        "__doc__",
        "__module__",
        "__qualname__",
        "__firstlineno__",
        "__static_attributes__",
        "__annotations__",
        "__slotnames__",
        "_abc_impl",
    }
)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_STATE = threading.local()


_CODE_INFO: dict[int, tuple[Any, bytes, tuple[frozenset[str], ...]]] = {}


def _code_info(code: types.CodeType) -> tuple[bytes, tuple[frozenset[str], ...]]:
    """(own-code digest from AST and bytecode, referenced names) of a code object, cached while it lives."""
    hit = _CODE_INFO.get(id(code))
    if hit is not None and hit[0]() is code:
        return hit[1], hit[2]
    out: list[bytes] = []
    code_bytes(code, out)
    tree = function_ast(code)
    digest = xxhash.xxh3_128_digest(
        frame("ast" if tree else "no-source", tree or "", b"".join(out))
    )
    names = code_names(code)
    key = id(code)

    def forget(_: Any) -> None:
        _CODE_INFO.pop(key, None)

    _CODE_INFO[key] = (weakref.ref(code, forget), digest, names)
    return digest, names


def _installed_name(obj: Any) -> str:
    """``module.qualname==version`` of an installed function, class or builtin."""
    mod = getattr(obj, "__module__", None)
    if not isinstance(mod, str):
        owner = getattr(obj, "__self__", None)
        mod = (
            getattr(owner, "__name__", None)
            if isinstance(owner, types.ModuleType)
            else type(owner).__module__
        )
    name = (
        getattr(obj, "__qualname__", None)
        or getattr(obj, "__name__", None)
        or type(obj).__qualname__
    )
    return f"{mod}.{name}=={origin.package_version(mod) if isinstance(mod, str) else None}"


def _kind(v: Any) -> str:
    t = type(v)
    if t is types.FunctionType or t is types.MethodType:
        return "function" if t is types.FunctionType else "method"
    if isinstance(v, (type, types.ModuleType, functools.partial)):
        return (
            "class"
            if isinstance(v, type)
            else "module"
            if isinstance(v, types.ModuleType)
            else "partial"
        )
    if is_const(v):
        return "const"
    if isinstance(v, _BUILTIN_TYPES):
        return "builtin"
    if callable(v):
        if getattr(v, "__wrapped__", None) is not None:
            return "wrapped"
        if isinstance(getattr(v, "__name__", None), str) and not origin.is_user_code(t):
            return "builtin"  # numpy ufuncs, Cython functions...
    return "data"


def _value_fp(v: Any) -> str:
    return "c" + const_fingerprint(v) if is_const(v) else "v" + fingerprint(v)


def _data_fp(v: Any) -> str:
    """A class's data attribute by value; what cannot be walked (a lock) counts by type, quietly."""
    if is_const(v):
        return "c" + const_fingerprint(v)
    return "v" + QuietFingerprinter().fingerprint(v)


def _framework_data(cls: type, name: str, v: Any) -> bool:
    """Data a class machinery keeps in the class dict: dunders, Enum internals, slot descriptors."""
    return (
        (name.startswith("__") and name.endswith("__"))
        or (issubclass(cls, enum.Enum) and name[:1] == name[-1:] == "_")
        or isinstance(v, (types.MemberDescriptorType, types.GetSetDescriptorType))
    )


def _expect(v: Any, desc: str | None) -> tuple[Any, int]:
    """What a cached call compares a binding with: the object, a weak reference, or its type."""
    if v is _MISSING or (desc is not None and desc.startswith("const:")):
        return v, _SAME
    if (desc is None and type(v) not in (str, bytes, tuple, frozenset)) or (
        desc is not None and desc.startswith("instance:")
    ):
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
        self.volatile: list[tuple[Any, int | str, str, str]] = []  # (owner, cell | attr kind, ...)
        self.seen_attrs: set[tuple[int, str]] = set()
        self.data: dict[str, tuple[Any, str, str]] = {}  # label -> (owner, attr, name)

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

    def lookup(
        self, owner: Any, attr: str, ns: Any, name: str, attrs: frozenset[str], referrer: str
    ) -> None:
        v = ns.get(name, _MISSING)
        desc = None if v is _MISSING else self.resolve(v, attrs)
        self.check(owner, attr, ns, name, v, desc)
        if desc is not None:
            self.bindings.add((referrer, name, desc))
        if (
            v is not _MISSING
            and (desc is None or desc.startswith(("instance:", "holds:")))
            and not (name.startswith("__") and name.endswith("__"))
        ):
            module = ns.get("__name__") if type(ns) is dict else None
            label = name if module in (None, "__main__") else f"{module}.{name}"
            self.data.setdefault(label, (owner, attr, name))

    def resolve(self, v: Any, attrs: frozenset[str] = frozenset()) -> str | None:
        """A stable description of a referenced object; None for data (not included).

        An instance of a user-defined class (``scorer = Scorer()``) counts by its class's
        code, not by its data: that is an input, to be passed as an argument.
        """
        kind = _kind(v)
        if kind in ("function", "class") and origin.is_user_code(v):
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
        if kind == "const":
            return "const:" + const_fingerprint(v)
        held = self.held_code(v)
        if origin.is_user_code(type(v)):
            return "instance:" + str(self.resolve(type(v))) + (f"|{held}" if held else "")
        return held

    def held_code(self, v: Any, depth: int = 0) -> str | None:
        """Code held in data (``OPS = {"op": double}``): followed like a direct call.

        Looks into dicts (values), lists, tuples and dataclass instances, three levels deep;
        ``functools.partial`` objects are resolved as code already.
        """
        if type(v) is dict:
            items: Any = v.values()
        elif type(v) in (list, tuple):
            items = v
        elif dataclasses.is_dataclass(v) and not isinstance(v, type):
            items = vars(v).values() if hasattr(v, "__dict__") else ()
        else:
            return None
        found = []
        for x in list(items)[:1000]:
            kind = _kind(x)
            if kind in ("function", "class", "method", "partial", "wrapped"):
                found.append(str(self.resolve(x)))
            elif kind == "data" and depth < 3 and (inner := self.held_code(x, depth + 1)):
                found.append(inner)
        return "holds:" + ",".join(found) if found else None

    def module(self, mod: types.ModuleType, attrs: frozenset[str]) -> str:
        if not origin.is_user_code(mod):
            return f"module:{mod.__name__}=={origin.package_version(mod)}"
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
            origin = (
                getattr(importlib.util.find_spec(name.partition(".")[0]), "origin", None)
                if name
                else None
            )
        except (ImportError, ValueError):
            origin = None
        if origin and (origin in ("built-in", "frozen") or path_is_installed(origin)):
            self.bindings.add(
                (key, "import " + name, f"module:{name}=={origin.package_version(name)}")
            )
        elif origin:
            # A user module the function imports but nobody has imported yet: import it now
            # (the function is about to), so that it counts by its running code and its own
            # helpers, transitively. A constant "unresolved" marker would give the same key
            # whatever the module's code, and a stale hit after it is edited.
            for cand in filter(None, candidates):
                try:
                    mod = importlib.import_module(cand)
                except ImportError:
                    continue
                desc = self.resolve(mod, attrs)
                self.check(sys, "modules", sys.modules, cand, mod, desc)
                self.bindings.add((key, "import " + name, str(desc)))
                return
            raise ImportError(f"cannot import {name!r}, which {fn.__qualname__} imports")
        else:  # nothing on the path by that name (yet): the function will fail to import it
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
        self.parts[key] = hex_digest(
            digest,
            *(frame(tag, const_fingerprint(d) if is_const(d) else "~") for tag, d in defaults),
        )
        for tag, d in defaults:  # (own code is set before following anything: recursion)
            if not is_const(d) and (desc := self.resolve(d)) is not None:
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
        self.fn_checks.append(
            (weakref.ref(fn), code, fn.__defaults__, fn.__kwdefaults__, tuple(cells))
        )
        for name in sorted(glob):
            self.lookup(fn, "__globals__", fn.__globals__, name, attrs, key)
        for name in sorted(imports):
            self.imported(fn, name, attrs, key)
        return key

    def member(self, v: Any) -> str | None:
        """A class attribute: methods by their own code, constants by value, None for data."""
        if isinstance(v, (staticmethod, classmethod)):
            return f"{type(v).__name__}:{self.member(v.__func__)}"
        if isinstance(v, property):
            return "property:" + ",".join(str(self.member(f)) for f in (v.fget, v.fset, v.fdel))
        if isinstance(v, functools.cached_property):
            return "cached_property:" + str(self.member(v.func))
        if type(v) is types.FunctionType and origin.is_user_code(v):
            key = self.function(v)
            return f"fn:{key}:{self.parts[key]}"
        return self.resolve(v)

    def klass(self, cls: type) -> str:
        """A class's own part, built from its members (a notebook class has no retrievable source).

        Data attributes (``params = {...}``, arrays, user instances, Enum members' values)
        are hashed by value on every call (:meth:`Entry.value`), so in-place edits count too.
        """
        if (key := self.keys.get(id(cls))) is not None:
            return key
        ns = vars(cls)
        key = self.new_key(
            cls, None if ns.get("__module__") == "builtins" else ns.get("__module__")
        )
        pieces = [cls.__qualname__, *("base:" + str(self.resolve(b)) for b in cls.__bases__)]
        if type(cls) is not type:
            pieces.append("meta:" + str(self.resolve(type(cls))))
        for name in sorted(k for k in ns if isinstance(k, str) and k not in _SKIP_CLASS_ATTRS):
            v, kind = ns[name], "attr"
            if isinstance(v, enum.Enum) and isinstance(v, cls):  # a member: by its value
                desc = "member:" + const_fingerprint(v._value_) if is_const(v._value_) else None
                kind = "enum"
            else:
                desc = self.member(v)
            if desc is None or desc.startswith(("instance:", "holds:")):
                if _framework_data(cls, name, v):
                    continue
                desc = "data"  # its value is hashed by Entry.value
                self.volatile.append((cls, kind, key, name))
            pieces.append(f"{name}={desc}")
            self.check(cls, "__dict__", ns, name, v, desc)
        if isinstance(annotations := ns.get("__annotations__"), dict):
            pieces += [
                f"annotation:{name}={ann if isinstance(ann, str) else _ADDRESS.sub('', repr(ann))}"
                for name, ann in sorted(annotations.items())
            ]
        self.parts[key] = hex_digest(*pieces)
        return key

    def owner_class(self, fn: types.FunctionType) -> str | None:
        """The class a plain function is defined in (``A.meth``), found through its ``__qualname__``."""
        path = fn.__qualname__.split(".")[:-1]
        if not path or "<locals>" in path:
            return None
        obj = fn.__globals__.get(path[0], _MISSING)
        self.check(
            fn,
            "__globals__",
            fn.__globals__,
            path[0],
            obj,
            "class" if isinstance(obj, type) else None,
        )
        for part in path[1:]:
            obj = vars(obj).get(part, _MISSING) if isinstance(obj, type) else _MISSING
        if not isinstance(obj, type) or not origin.is_user_code(obj):
            return None
        member = vars(obj).get(fn.__name__)
        for _ in range(8):  # through staticmethod/classmethod and decorators such as @checkpoint
            if member is fn:
                return "owner:user:" + self.klass(obj)
            member = getattr(member, "__func__", None) or getattr(member, "__wrapped__", None)
        return "owner:redefined"  # the name holds another version of the class now


class Entry:
    """A cached fingerprint and everything it was computed from."""

    __slots__ = ("refs", "fn_checks", "ns_checks", "volatile", "base", "digest", "parts", "data")
    refs: tuple[Any, ...]
    fn_checks: tuple[tuple[Any, ...], ...]
    ns_checks: tuple[tuple[Any, ...], ...]  # (owner ref, attribute, then (name, expected) by mode)
    volatile: tuple[tuple[Any, int | str, str, str], ...]  # owner ref, cell | attr kind, key, name
    base: Any
    digest: str
    parts: dict[str, str]
    data: tuple[tuple[str, Any, str, str], ...]  # (label, owner ref, attribute, name)

    def data_values(self) -> dict[str, Any]:
        """The current values of the data globals the code reads, by label (``CONFIG``, ``mod.X``)."""
        out = {}
        for label, ref, attr, name in self.data:
            owner = ref()
            if owner is not None:
                v = getattr(owner, attr).get(name, _MISSING)
                if v is not _MISSING:
                    out[label] = v
        return out

    def valid(self, roots: tuple[Any, ...]) -> bool:
        """Whether every object the fingerprint was computed from is still in place."""
        for ref, root in zip(self.refs, roots, strict=True):
            if ref() is not root:
                return False
        for ref, code, defaults, kwdefaults, cells in self.fn_checks:
            fn = ref()
            if (
                fn is None
                or fn.__code__ is not code
                or fn.__defaults__ is not defaults
                or fn.__kwdefaults__ is not kwdefaults
                or (cells and not _cells_unchanged(fn, cells))
            ):
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

    def value(self) -> tuple[str, list[tuple[str, str, str]]] | None:
        """The fingerprint, re-hashing closure values and class data (None: rebuild), and
        ``(part key, name, value fingerprint)`` of each value re-hashed.

        Called after :meth:`valid`, so a class data attribute is still the same object.
        """
        if not self.volatile:
            return self.digest, []
        h, extra = self.base.copy(), []
        for ref, slot, key, name in self.volatile:
            if type(slot) is int:
                try:
                    v = ref().__closure__[slot].cell_contents
                except (AttributeError, ValueError):
                    return None
                if _kind(v) not in ("data", "const"):
                    return None  # a closure cell now holds code
                fp = _value_fp(v)
            else:
                v = vars(owner).get(name, _MISSING) if (owner := ref()) is not None else _MISSING
                if v is _MISSING:
                    return None
                fp, name = _data_fp(v._value_ if slot == "enum" else v), "." + name
            h.update(frame(key, name, fp))
            extra.append((key, name, fp))
        return str(h.hexdigest()), extra

    def current_parts(self, values: list[tuple[str, str, str]]) -> dict[str, str]:
        """The parts, each with the values re-hashed by :meth:`value` for it."""
        parts = dict(self.parts)
        for key, name, fp in values:
            parts[key] = hex_digest(parts[key], name, fp)
        return parts


#: Code fingerprints by id of the root(s), with what they were computed from.
CODE_CACHE: dict[Any, Entry] = {}


def _cells_unchanged(fn: types.FunctionType, cells: tuple[tuple[Any, ...], ...]) -> bool:
    for i, expect, mode in cells:
        try:
            v = fn.__closure__[i].cell_contents  # type: ignore[index]
        except ValueError:
            v = _MISSING
        if (
            (v is not _MISSING)
            if mode == _EMPTY
            else (v is not (expect() if mode == _WEAK else expect))
        ):
            return False
    return True


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
    raise FingerprintError(
        f"cannot fingerprint the code of a {type(obj).__name__}: pass a function, "
        "method, lambda, functools.partial or class"
    )


def _label(obj: Any) -> str:
    return (
        f"{getattr(obj, '__module__', None)}.{getattr(obj, '__qualname__', type(obj).__qualname__)}"
    )


def _build(roots: tuple[Any, ...]) -> Entry:
    g = _Graph()
    descs = [str(g.resolve(r)) for r in roots]
    if len(roots) == 1 and type(roots[0]) is types.FunctionType and descs[0].startswith("user:"):
        descs.append(str(g.owner_class(roots[0])))
    for r, desc in zip(roots, descs, strict=False):
        if not desc.startswith("user:"):  # an installed root: its name and version are its part
            g.parts.setdefault(_label(r), hex_digest(desc))
    h = xxhash.xxh3_128()
    h.update(
        frame(
            "checkpoint_magic.code",
            str(CODEHASH_VERSION),
            str(HASH_SCHEME_VERSION),
            _INTERPRETER,
            *descs,
        )
    )
    h.update(struct.pack("<Q", len(g.parts)))
    for key in sorted(g.parts):
        h.update(frame(key, g.parts[key]))
    h.update(struct.pack("<Q", len(g.bindings)))
    for binding in sorted(g.bindings):
        h.update(frame(*binding))
    entry = Entry()
    entry.fn_checks = tuple(g.fn_checks)
    entry.ns_checks = tuple(
        (
            ref,
            attr,
            *(
                tuple((n, e) for n, (e, m) in items.items() if m == mode)
                for mode in (_WEAK, _SAME, _TYPE)
            ),
        )
        for ref, attr, items in g.groups.values()
    )
    entry.volatile = tuple((weakref.ref(fn), i, key, name) for fn, i, key, name in g.volatile)
    entry.base, entry.digest, entry.parts = h, h.hexdigest(), dict(g.parts)
    entry.data = tuple(
        (label, weakref.ref(owner), attr, name) for label, (owner, attr, name) in g.data.items()
    )
    return entry


def data_globals(obj: Any) -> dict[str, Any]:
    """The data globals (not code, not small constants) that ``obj``'s code reads, transitively.

    Module-level names read by the function and every user helper it reaches, and the data
    attributes of user modules it uses, by label: ``NAME`` for ``__main__`` / ``exec`` code,
    ``module.NAME`` otherwise. Their *values* are inputs of a checkpointed call.
    """
    while isinstance(obj, functools.partial):
        obj = obj.func
    compute(obj, parts=False)  # builds (or validates) the cached entry
    roots = _roots(obj)
    entry = CODE_CACHE.get(id(roots[0]) if len(roots) == 1 else tuple(map(id, roots)))
    if entry is None:  # a root without weak references: not cached
        entry = _build(roots)
    return entry.data_values()


def compute(obj: Any, parts: bool = True) -> tuple[str, dict[str, str]]:
    """(fingerprint, parts) of ``obj``, from the cache when nothing it used has changed.

    With ``parts=False`` the parts are not updated with the current data values (faster).
    """
    partial = isinstance(obj, functools.partial)
    roots = (obj,) if partial else _roots(obj)
    key = id(roots[0]) if len(roots) == 1 else tuple(map(id, roots))
    active = _STATE.__dict__.setdefault("active", set())
    if key in active:  # reached again while hashing its own closure values or arguments
        return hex_digest("recursive", _label(obj)), {}
    active.add(key)
    try:
        if partial:
            fp, own = compute(obj.func, parts)
            return hex_digest("partial", fp, _value_fp(obj.args), _value_fp(obj.keywords)), own
        for attempt in range(2):
            entry = CODE_CACHE.get(key) if attempt == 0 else None
            if entry is None or not entry.valid(roots):
                entry = _build(roots)
                try:
                    entry.refs = tuple(weakref.ref(r) for r in roots)
                except TypeError:  # a root without weak references: not cached
                    pass
                else:
                    if (
                        key not in CODE_CACHE
                    ):  # drop the entry when a root dies (its id may be reused)
                        for r in roots:
                            weakref.finalize(r, CODE_CACHE.pop, key, None).atexit = False
                    CODE_CACHE[key] = entry
            value = entry.value()
            if value is not None:  # None: a closure cell now holds code
                digest, values = value
                return digest, entry.current_parts(values) if parts and values else entry.parts
        raise FingerprintError(f"the closure of {_label(obj)} changed while it was fingerprinted")
    finally:
        active.discard(key)
