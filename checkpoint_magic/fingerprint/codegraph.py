"""The traversal behind a code fingerprint: what a function, method or class reaches.

:class:`Graph` walks user functions and classes through global names, closure cells, defaults,
used attributes of user modules, imports inside the function and the class a method is defined
in, and the class of a global that is an instance of a user class; installed code counts by name
and version, small constants by value. It records the own-code fingerprint of each user function
and class (the ``code_parts``), every name binding it followed, and what a later call must
re-check to trust the cached fingerprint: the object each global name was bound to, every
function's ``__code__``, defaults and closure cells. The check modes (:data:`SAME`, :data:`WEAK`,
:data:`TYPE`, :data:`EMPTY`) and :func:`kind_of` are shared with ``codecache``, which turns a
traversal into a cached :class:`~checkpoint_magic.fingerprint.codecache.Entry`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib.util
import os
import re
import sys
import types
import weakref
from typing import Any

import xxhash

from ..exceptions import FingerprintError
from . import origin  # its functions through the module: tests patch package_version
from .bytecode import (
    code_bytes,
    code_names,
    const_fingerprint,
    dynamic_names,
    environ_variables,
    function_ast,
    is_const,
)
from .encoding import frame, hex_digest
from .files import code_path_constants, path_shaped
from .origin import path_is_installed
from .values import QuietFingerprinter, fingerprint

MISSING: Any = object()  # a name not bound in a namespace (a builtin, or not defined yet)
SAME, WEAK, TYPE, EMPTY = 0, 1, 2, 3  # how a dependency is re-checked on a cached call
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


_CODE_INFO: dict[int, tuple[Any, bytes, tuple[frozenset[str], ...]]] = {}


def _code_info(code: types.CodeType) -> tuple[bytes, tuple[frozenset[str], ...]]:
    """(own-code digest from AST and bytecode, referenced names) of code, cached while it lives."""
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


def kind_of(v: Any) -> str:
    """Classify a referenced object for the traversal.

    Parameters
    ----------
    v : object
        A global, closure value, default, class attribute or held value.

    Returns
    -------
    str
        One of ``function``, ``method``, ``class``, ``module``, ``partial``, ``const``,
        ``builtin`` (installed callables such as numpy ufuncs), ``wrapped`` (a callable with
        ``__wrapped__``) and ``data``.

    Examples
    --------
    >>> kind_of(len), kind_of(3), kind_of([3]), kind_of(kind_of)
    ('builtin', 'const', 'data', 'function')
    """
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


def value_fp(v: Any) -> str:
    """Fingerprint a value: small constants by type and value, anything else with ``fingerprint``.

    Parameters
    ----------
    v : object
        A closure value, or the arguments of a ``functools.partial``.

    Returns
    -------
    str
        ``"c"`` or ``"v"`` followed by 32 hexadecimal digits.

    Examples
    --------
    >>> value_fp(1)[0], value_fp([1])[0]
    ('c', 'v')
    """
    return "c" + const_fingerprint(v) if is_const(v) else "v" + fingerprint(v)


def data_fp(v: Any) -> str:
    """Fingerprint a class's data attribute by value; a lock (not walkable) counts by type, quietly.

    Parameters
    ----------
    v : object
        The attribute's value.

    Returns
    -------
    str
        ``"c"`` or ``"v"`` followed by 32 hexadecimal digits.

    Examples
    --------
    >>> import threading
    >>> data_fp(threading.Lock())[0]
    'v'
    """
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


def partial_data(v: Any) -> bool:
    """Whether ``v`` is a ``functools.partial`` bound to data (``partial(h, k=[3])``).

    Such a partial counts by value, re-hashed on every call, wherever it is held (a global,
    a closure cell, a class attribute): its arguments may change in place.

    Parameters
    ----------
    v : object
        Any value.

    Returns
    -------
    bool
        True for a partial with an argument that is not a small constant.

    Examples
    --------
    >>> import functools
    >>> partial_data(functools.partial(max, 1)), partial_data(functools.partial(max, [1]))
    (False, True)
    """
    return isinstance(v, functools.partial) and not (
        is_const(v.args) and is_const(tuple(v.keywords.values()))
    )


def _expect(v: Any, desc: str | None) -> tuple[Any, int]:
    """What a cached call compares a binding with: the object, a weak reference, or its type."""
    if v is MISSING or (desc is not None and desc.startswith("const:")):
        return v, SAME
    if (desc is None and type(v) not in (str, bytes, tuple, frozenset)) or (
        desc is not None and desc.startswith("instance:")
    ):
        return weakref.ref(type(v)), TYPE  # data: only a change to code matters
    try:
        return weakref.ref(v), WEAK
    except TypeError:
        return v, SAME


class Graph:
    """One traversal: own-code parts, name bindings, and what a cached call must re-check.

    :meth:`resolve` (each root) and :meth:`owner_class` (a root function's class) drive it;
    ``codecache`` then reads the collected ``parts``, ``bindings``, ``fn_checks``, ``groups``
    (namespace re-checks), ``volatile`` (values re-hashed on every call) and ``data``.
    """

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
        self.paths: dict[str, None] = {}  # path-shaped constants of the code reached, in order

    def _new_key(self, obj: Any, module: Any) -> str:
        key = base = f"{module if isinstance(module, str) else '<exec>'}.{obj.__qualname__}"
        n = 1
        while key in self.parts:
            n += 1
            key = f"{base}#{n}"
        self.parts[key], self.keys[id(obj)] = "", key
        self.alive.append(obj)
        return key

    def _check(self, owner: Any, attr: str, ns: Any, name: str, v: Any, desc: str | None) -> None:
        """Re-check ``getattr(owner, attr)[name]`` on cached calls."""
        gkey = id(ns) if type(ns) is dict else (id(owner), attr)
        if gkey not in self.groups:
            self.alive.append(owner)
            self.groups[gkey] = (weakref.ref(owner), attr, {})
        self.groups[gkey][2].setdefault(name, _expect(v, desc))

    def _lookup(
        self, owner: Any, attr: str, ns: Any, name: str, attrs: frozenset[str], referrer: str
    ) -> None:
        v = ns.get(name, MISSING)
        desc = None if v is MISSING else self.resolve(v, attrs)
        self._check(owner, attr, ns, name, v, desc)
        if desc is not None:
            self.bindings.add((referrer, name, desc))
            if desc.startswith("const:") and type(v) is str and path_shaped(v):
                self.paths[v] = None  # DATA = "data.csv": the file counts by content
        if (
            v is not MISSING
            and (desc is None or desc.startswith(("instance:", "holds:")) or partial_data(v))
            and not (name.startswith("__") and name.endswith("__"))
        ):
            module = ns.get("__name__") if type(ns) is dict else None
            label = name if module in (None, "__main__") else f"{module}.{name}"
            self.data.setdefault(label, (owner, attr, name))

    def resolve(self, v: Any, attrs: frozenset[str] = frozenset()) -> str | None:
        """Return a stable description of a referenced object; None for data (not included).

        An instance of a user-defined class (``scorer = Scorer()``) counts by its class's
        code, not by its data: that is an input, to be passed as an argument.

        Parameters
        ----------
        v : object
            The referenced object.
        attrs : frozenset of str, optional
            Attribute names the referring code uses (for a user module).

        Returns
        -------
        str or None
            ``user:KEY``, ``installed:NAME==VERSION``, ``module:...``, ``const:...``,
            ``instance:...``, ``holds:...`` and so on; None for data.
        """
        kind = kind_of(v)
        if kind in ("function", "class") and origin.is_user_code(v):
            return "user:" + (self._function(v) if kind == "function" else self._klass(v))
        if kind in ("function", "class", "builtin", "wrapped"):
            desc = "installed:" + _installed_name(type(v) if kind == "wrapped" else v)
            if kind == "builtin" and (runs := self._installed_holds(v)):
                desc += runs  # np.vectorize(helper): the user code it runs
            inner = getattr(v, "__wrapped__", None) if kind != "class" else None
            return desc if inner is None or inner is v else f"{desc}|wraps:{self.resolve(inner)}"
        if kind == "module":
            return self._module(v, attrs)
        if kind == "method":
            owner = v.__self__
            return f"method:{self.resolve(v.__func__)}|{self.resolve(owner if isinstance(owner, type) else type(owner))}"
        if kind == "partial":
            return f"partial:{self.resolve(v.func)}|{value_fp(v.args)}|{value_fp(v.keywords)}"
        if kind == "const":
            return "const:" + const_fingerprint(v)
        held = self._held_code(v)
        if origin.is_user_code(type(v)):
            return "instance:" + str(self.resolve(type(v))) + (f"|{held}" if held else "")
        return held

    def _installed_holds(self, v: Any) -> str:
        """The user code an installed callable runs (``np.vectorize(helper)``), described.

        Raises
        ------
        FingerprintError
            For a ufunc made by ``np.frompyfunc``: the function it runs cannot be read.
        """
        if type(v).__name__ == "ufunc" and v.__name__.endswith(" (vectorized)"):  # not scipy's
            raise FingerprintError(
                f"cannot fingerprint the ufunc {v.__name__!r} made by numpy.frompyfunc: the "
                "Python function it runs cannot be read, so editing it would go unnoticed; "
                "use numpy.vectorize(function) or call the function itself"
            )
        attrs = getattr(v, "__dict__", None)
        if type(attrs) is not dict:
            return ""
        found = [
            f"{name}={self.resolve(x)}"
            for name, x in sorted(attrs.items())
            if kind_of(x) in ("function", "class") and origin.is_user_code(x)
        ]
        return "|holds:" + ",".join(found) if found else ""

    def _held_code(self, v: Any, depth: int = 0) -> str | None:
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
            kind = kind_of(x)
            if kind in ("function", "class", "method", "partial", "wrapped"):
                found.append(str(self.resolve(x)))
            elif kind == "data" and depth < 3 and (inner := self._held_code(x, depth + 1)):
                found.append(inner)
        return "holds:" + ",".join(found) if found else None

    def _module(self, mod: types.ModuleType, attrs: frozenset[str]) -> str:
        if not origin.is_user_code(mod):
            return f"module:{mod.__name__}=={origin.package_version(mod)}"
        ns = vars(mod)  # the attributes the code uses, not the file: it may have been edited
        for a in sorted(attrs):
            if a in ns and (id(mod), a) not in self.seen_attrs:
                self.seen_attrs.add((id(mod), a))
                self._lookup(mod, "__dict__", ns, a, attrs, "module " + mod.__name__)
        return "usermodule:" + mod.__name__

    def _imported(self, fn: types.FunctionType, name: str, attrs: frozenset[str], key: str) -> None:
        """A module imported inside the function (``import x``, ``from .y import z``)."""
        pkg = fn.__globals__.get("__package__") or ""
        candidates = ([name] + ([f"{pkg}.{name}"] if pkg else [])) if name else [pkg]
        for cand in filter(None, candidates):
            if (mod := sys.modules.get(cand)) is not None:
                desc = self.resolve(mod, attrs)
                self._check(sys, "modules", sys.modules, cand, mod, desc)
                self.bindings.add((key, "import " + name, str(desc)))
                return
        try:
            found = (
                getattr(importlib.util.find_spec(name.partition(".")[0]), "origin", None)
                if name
                else None
            )
        except (ImportError, ValueError):
            found = None
        if found and (found in ("built-in", "frozen") or path_is_installed(found)):
            self.bindings.add(
                (key, "import " + name, f"module:{name}=={origin.package_version(name)}")
            )
        elif found:
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
                self._check(sys, "modules", sys.modules, cand, mod, desc)
                self.bindings.add((key, "import " + name, str(desc)))
                return
            raise ImportError(f"cannot import {name!r}, which {fn.__qualname__} imports")
        else:  # nothing on the path by that name (yet): the function will fail to import it
            if candidates[0]:
                self._check(sys, "modules", sys.modules, candidates[0], MISSING, None)
            self.bindings.add((key, "import " + name, "unresolved"))

    def _function(self, fn: types.FunctionType) -> str:
        if (key := self.keys.get(id(fn))) is not None:
            return key
        key, code = self._new_key(fn, fn.__module__), fn.__code__
        digest, (glob, attrs, imports) = _code_info(code)
        self.paths.update(dict.fromkeys(code_path_constants(code)))  # open("data.csv") in a helper
        defaults = [("d", d) for d in fn.__defaults__ or ()]
        defaults += sorted(("k" + k, d) for k, d in (fn.__kwdefaults__ or {}).items())
        self.parts[key] = hex_digest(
            digest,
            *(frame(tag, const_fingerprint(d) if is_const(d) else "~") for tag, d in defaults),
        )
        for i, (tag, d) in enumerate(defaults):  # (own code set before following: recursion)
            if is_const(d):
                continue
            if (desc := self.resolve(d)) is not None:
                self.bindings.add((key, "<default>" + tag, desc))
            if desc is None or desc.startswith(("instance:", "holds:")):
                # Data (``def helper(x, k=K)`` with ``K = [3]``): re-hashed by value on every
                # call like a closure value (its source text ``k=K`` says nothing of K).
                where = tag if tag != "d" else f"d{i}"
                self.volatile.append((fn, "default", key, "<default>" + where))
        cells = []
        for i, (name, cell) in enumerate(zip(code.co_freevars, fn.__closure__ or (), strict=False)):
            try:
                v = cell.cell_contents
            except ValueError:
                cells.append((i, None, EMPTY))
                self.bindings.add((key, "<cell>" + name, "empty"))
                continue
            if kind_of(v) in ("data", "const") or partial_data(v):
                self.volatile.append((fn, i, key, name))  # re-hashed on every call
            else:
                desc = self.resolve(v, attrs)
                self.bindings.add((key, "<cell>" + name, str(desc)))
                cells.append((i, *_expect(v, desc)))
        self.fn_checks.append(
            (weakref.ref(fn), code, fn.__defaults__, fn.__kwdefaults__, tuple(cells))
        )
        dynamic = dynamic_names(code)
        if dynamic:  # globals()["K"], getattr(module, "K"): names read by string
            attrs = attrs | dynamic
            glob = glob | {n for n in dynamic if n in fn.__globals__}
        for name in sorted(glob):
            self._lookup(fn, "__globals__", fn.__globals__, name, attrs, key)
        for name in environ_variables(code):
            self.data.setdefault(f"os.environ[{name!r}]", (os, "environ", name))
        registry = getattr(fn, "registry", None)
        if isinstance(registry, types.MappingProxyType) and hasattr(fn, "dispatch"):
            for cls, impl in list(registry.items()):  # functools.singledispatch: every impl
                where = f"<register>{getattr(cls, '__module__', '')}.{getattr(cls, '__qualname__', cls)}"
                self.bindings.add((key, where, str(self.resolve(impl))))
        for name in sorted(imports):
            self._imported(fn, name, attrs, key)
        return key

    def _member(self, v: Any) -> str | None:
        """A class attribute: methods by their own code, constants by value, None for data."""
        if isinstance(v, (staticmethod, classmethod)):
            return f"{type(v).__name__}:{self._member(v.__func__)}"
        if isinstance(v, property):
            return "property:" + ",".join(str(self._member(f)) for f in (v.fget, v.fset, v.fdel))
        if isinstance(v, functools.cached_property):
            return "cached_property:" + str(self._member(v.func))
        if type(v) is types.FunctionType and origin.is_user_code(v):
            key = self._function(v)
            return f"fn:{key}:{self.parts[key]}"
        return self.resolve(v)

    def _klass(self, cls: type) -> str:
        """A class's own part, built from its members (a notebook class has no retrievable source).

        Data attributes (``params = {...}``, arrays, user instances, Enum members' values)
        are hashed by value on every call (``codecache.Entry.value``): in-place edits count too.
        """
        if (key := self.keys.get(id(cls))) is not None:
            return key
        ns = vars(cls)
        key = self._new_key(
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
                desc = self._member(v)
            if desc is None or desc.startswith(("instance:", "holds:")) or partial_data(v):
                if _framework_data(cls, name, v):
                    continue
                desc = "data"  # its value is hashed by Entry.value
                self.volatile.append((cls, kind, key, name))
            pieces.append(f"{name}={desc}")
            self._check(cls, "__dict__", ns, name, v, desc)
        if isinstance(annotations := ns.get("__annotations__"), dict):
            pieces += [
                f"annotation:{name}={ann if isinstance(ann, str) else _ADDRESS.sub('', repr(ann))}"
                for name, ann in sorted(annotations.items())
            ]
        self.parts[key] = hex_digest(*pieces)
        return key

    def owner_class(self, fn: types.FunctionType) -> str | None:
        """Describe the class a plain function is defined in (``A.meth``), by ``__qualname__``.

        Parameters
        ----------
        fn : types.FunctionType
            The function.

        Returns
        -------
        str or None
            ``owner:user:KEY``, ``owner:redefined`` when the name now holds another version of the
            class, or None for a module-level, nested or installed function.
        """
        path = fn.__qualname__.split(".")[:-1]
        if not path or "<locals>" in path:
            return None
        obj = fn.__globals__.get(path[0], MISSING)
        self._check(
            fn,
            "__globals__",
            fn.__globals__,
            path[0],
            obj,
            "class" if isinstance(obj, type) else None,
        )
        for part in path[1:]:
            obj = vars(obj).get(part, MISSING) if isinstance(obj, type) else MISSING
        if not isinstance(obj, type) or not origin.is_user_code(obj):
            return None
        member = vars(obj).get(fn.__name__)
        for _ in range(8):  # through staticmethod/classmethod and decorators such as @checkpoint
            if member is fn:
                return "owner:user:" + self._klass(obj)
            member = getattr(member, "__func__", None) or getattr(member, "__wrapped__", None)
        return "owner:redefined"  # the name holds another version of the class now
