"""The identity of a code object: bytecode and constants, normalized source AST, names it reads.

A leaf of :mod:`checkpoint_magic.fingerprint` used by ``codegraph`` (code fingerprints) and by the
notebook layer (which names a cell reads): one scan of the bytecode for global names,
attribute names and imports (:func:`code_names`), one encoding of a code object's bytecode and
constants (:func:`code_bytes`), and one normalization of source (:func:`normalized_dump`).
"""

from __future__ import annotations

import ast
import dis
import inspect
import logging
import os
import re
import struct
import textwrap
import tokenize
import types
import weakref
from typing import Any

import xxhash

from .encoding import frame
from .values import fingerprint

__all__ = [
    "code_bytes",
    "code_names",
    "const_fingerprint",
    "dynamic_names",
    "environ_names",
    "environ_variables",
    "function_ast",
    "normalized_dump",
]

logger = logging.getLogger(__name__)

#: Version of the code encoding (bytecode, constants, AST); enters every code fingerprint.
CODEHASH_VERSION = 1
#: Opcodes that read a global name (their argument is the name).
GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_FROM_DICT_OR_GLOBALS"})
_HASCONST = frozenset(dis.hasconst)
_EXTENDED_ARG = dis.opmap["EXTENDED_ARG"]
_SCALARS = (type(None), bool, int, float, complex, str, bytes, type(Ellipsis))
_NAMES_CACHE: weakref.WeakKeyDictionary[types.CodeType, tuple[frozenset[str], ...]] = (
    weakref.WeakKeyDictionary()
)


def is_const(v: Any, depth: int = 0) -> bool:
    """Whether ``v`` is a small plain constant: a builtin scalar, or a tuple/frozenset of them.

    Parameters
    ----------
    v : object
        The value.
    depth : int, default 0
        The nesting level reached so far (more than 4 levels is not a constant).

    Returns
    -------
    bool
        True for ``None``, bools, numbers, ``str``/``bytes`` up to 64 KiB, and tuples and
        frozensets (up to 1024 items, 4 levels) of those.

    Examples
    --------
    >>> is_const((1, "a", None)), is_const([1])
    (True, False)
    """
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
        out.append(b"?" + frame(f"{t.__module__}.{t.__qualname__}", fingerprint(c)))


def const_fingerprint(v: Any) -> str:
    """Return the fingerprint of a constant (or code object) by type and value.

    Parameters
    ----------
    v : object
        A constant as found in ``co_consts`` (see :func:`is_const`), or a code object; anything
        else is fingerprinted by value.

    Returns
    -------
    str
        32 hexadecimal digits; ``1`` and ``1.0`` and ``True`` differ.

    Examples
    --------
    >>> const_fingerprint(1) != const_fingerprint(1.0) != const_fingerprint(True)
    True
    """
    out: list[bytes] = []
    _const_bytes(v, out)
    return xxhash.xxh3_128_hexdigest(b"".join(out))


def _docstring_slot(code: types.CodeType) -> bool:
    """Whether ``co_consts[0]`` is a docstring slot (a str or None the code never loads)."""
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
    """Append the code's identity: bytecode, names, constants; not its file or line numbers.

    Parameters
    ----------
    code : types.CodeType
        The code object; nested code objects among its constants are included.
    out : list of bytes
        Receives the encoded pieces (join them to hash).

    Examples
    --------
    >>> out = []
    >>> code_bytes((lambda x: x + 1).__code__, out)
    >>> out[0][:1]
    b'C'
    """
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


def code_names(code: types.CodeType) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    r"""Return (global names read, attribute names, modules imported) by code and its nested code.

    Cached while the code object lives.

    Parameters
    ----------
    code : types.CodeType
        The code object.

    Returns
    -------
    tuple of three frozenset of str
        Global names read; attribute (and other non-global) names used, a safe superset;
        the modules named by ``import`` statements.

    Examples
    --------
    >>> glob, attrs, imports = code_names(compile("import a.b\ny = m.f(x)", "<s>", "exec"))
    >>> sorted(glob), sorted(attrs), sorted(imports)
    (['m', 'x'], ['a', 'f', 'y'], ['a.b'])
    """
    hit = _NAMES_CACHE.get(code)
    if hit is not None:
        return hit  # type: ignore[return-value]
    glob: set[str] = set()
    attrs: set[str] = set()
    imports: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        for ins in dis.get_instructions(current):
            if ins.opcode not in dis.hasname or not isinstance(ins.argval, str):
                continue
            if ins.opname in GLOBAL_OPS:
                glob.add(ins.argval)
            else:  # attributes, names from ``from m import a``, stored names (a superset is safe)
                (imports if ins.opname == "IMPORT_NAME" else attrs).add(ins.argval)
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    found = (frozenset(glob), frozenset(attrs), frozenset(imports))
    _NAMES_CACHE[code] = found
    return found


#: pandas methods that read ``@name`` from the caller's namespace (``df.query("a > @K")``).
_QUERIES = frozenset({"query", "eval"})
_AT_NAME = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")
#: Builtins that read a namespace by a name given as a string (``globals()["K"]``).
_BY_NAME = frozenset({"globals", "vars", "getattr"})
_DYNAMIC_CACHE: weakref.WeakKeyDictionary[types.CodeType, frozenset[str]] = (
    weakref.WeakKeyDictionary()
)


def dynamic_names(code: types.CodeType) -> frozenset[str]:
    r"""Return the names code may read by string: ``globals()["K"]``, ``getattr(module, "K")``.

    The identifier-like string constants of each code object (nested ones included) that
    calls ``globals``, ``vars`` or ``getattr``, where a lookup by name can take them (an
    argument of a call, a key subscripted into a call's result, a constant stored in a
    variable; not ``results["model"]``): a superset of the names such lookups with a
    constant name read; and the ``@NAME`` of the strings given to pandas' ``query``
    and ``eval`` (``df.query("a > @LIMIT")``). Cached while the code object lives.

    Parameters
    ----------
    code : types.CodeType
        The code object.

    Returns
    -------
    frozenset of str
        The candidate names (empty when the code calls none of those builtins).

    Examples
    --------
    >>> sorted(dynamic_names(compile('y = globals()["K"] + len("a b")', "<s>", "exec")))
    ['K']
    >>> dynamic_names(compile('y = d["K"]', "<s>", "exec"))
    frozenset()
    >>> sorted(dynamic_names(compile('y = df.query("a > @LIMIT")', "<s>", "exec")))
    ['LIMIT']
    """
    return _names_by_string(code, _BY_NAME, _DYNAMIC_CACHE)


def environ_names(code: types.CodeType) -> frozenset[str]:
    r"""Return the environment variables code may read: ``os.environ["K"]``, ``os.getenv("K")``.

    The identifier-like string constants of each code object (nested ones included) that
    uses ``environ`` or ``getenv``, but those it sets itself (``os.environ["K"] = "1"``).
    Cached while the code object lives.

    Parameters
    ----------
    code : types.CodeType
        The code object.

    Returns
    -------
    frozenset of str
        The candidate names (empty when the code uses neither).

    Examples
    --------
    >>> sorted(environ_names(compile('n = int(os.environ.get("N_JOBS", "1"))', "<s>", "exec")))
    ['N_JOBS']
    >>> environ_names(compile('os.environ["OMP_NUM_THREADS"] = "1"', "<s>", "exec"))
    frozenset()
    """
    return _names_by_string(code, _ENVIRON, _ENVIRON_CACHE)


def environ_variables(code: types.CodeType) -> list[str]:
    """The environment variables code reads (``os.environ["K"]``, ``os.getenv("K")``): inputs.

    Of the candidate names (:func:`environ_names`), those set now, and those
    spelled as environment variables usually are (upper case), which may be set later.

    Parameters
    ----------
    code : types.CodeType
        The code object.

    Returns
    -------
    list of str
        Sorted names.

    Examples
    --------
    >>> environ_variables(compile('os.getenv("SCALE_FACTOR", "lower")', "<s>", "exec"))
    ['SCALE_FACTOR']
    """
    names = environ_names(code)
    return sorted(n for n in names if n.isupper() or n in os.environ) if names else []


_ENVIRON = frozenset({"environ", "getenv"})
_ENVIRON_CACHE: weakref.WeakKeyDictionary[types.CodeType, frozenset[str]] = (
    weakref.WeakKeyDictionary()
)


def _names_by_string(
    code: types.CodeType,
    readers: frozenset[str],
    cache: weakref.WeakKeyDictionary[types.CodeType, frozenset[str]],
) -> frozenset[str]:
    """Identifier string constants of the code objects (nested too) that use one of ``readers``."""
    hit = cache.get(code)
    if hit is not None:
        return hit
    found: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        used = set(current.co_names)
        if readers is _BY_NAME and readers & used:
            found.update(_looked_up(current))
        elif readers & used:
            found.update(c for c in current.co_consts if type(c) is str and c.isidentifier())
            found.difference_update(_set_keys(current))  # os.environ["K"] = "1": its own
        if readers is _BY_NAME and _QUERIES & used:  # df.query("a > @LIMIT"): LIMIT
            for c in current.co_consts:
                if type(c) is str and "@" in c:
                    found.update(_AT_NAME.findall(c))
        stack.extend(c for c in current.co_consts if isinstance(c, types.CodeType))
    out = cache[code] = frozenset(found)
    return out


def _set_keys(code: types.CodeType) -> set[str]:
    """String constants ``code`` stores or deletes as a subscript (``os.environ["K"] = "1"``).

    A variable the code sets itself does not depend on the value it had: counting it made
    the first call of each process (unset) and the next ones (set) two keys.
    """
    ins = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    return {
        i.argval
        for i, nxt in zip(ins, ins[1:], strict=False)
        if i.opname == "LOAD_CONST" and nxt.opname in ("STORE_SUBSCR", "DELETE_SUBSCR")
    }


def _looked_up(code: types.CodeType) -> set[str]:
    """Identifier constants of ``code`` (not nested) where a lookup by name takes them.

    An argument last or but one of a call (``getattr(o, "K")``, ``getattr(o, "K", None)``,
    ``ns.get("K")``), a key subscripted into a call's result (``globals()["K"]``,
    ``vars(m)["K"]``) or a constant stored in a variable (``key = "K"``). Not a key of a
    dict display or a subscript of a plain value (``results["model"]``, ``df["price"]``):
    such a string often names the very global the computation's result is stored in, and
    counting it made every later call miss.
    """
    ins = [i for i in dis.get_instructions(code) if i.opname != "CACHE"]
    found = set()
    for n, i in enumerate(ins):
        c = i.argval
        if i.opname != "LOAD_CONST" or type(c) is not str or not c.isidentifier():
            continue
        nxt = ins[n + 1] if n + 1 < len(ins) else None
        if nxt is None:
            continue
        after = ins[n + 2].opname if nxt.opname.startswith("LOAD_") and n + 2 < len(ins) else ""
        subscript = nxt.opname == "BINARY_SUBSCR" or (
            nxt.opname == "BINARY_OP" and nxt.argrepr == "[]"
        )
        if (
            nxt.opname.startswith(("CALL", "PRECALL", "STORE_"))
            or after.startswith(("CALL", "PRECALL"))
            or (subscript and n > 0 and ins[n - 1].opname.startswith("CALL"))
        ):
            found.add(c)
    return found


def normalized_dump(node: ast.AST) -> str:
    r"""Dump an AST without docstrings, positions or the top node's decorators.

    The tree is modified in place (docstrings and the top decorators are removed).

    Parameters
    ----------
    node : ast.AST
        The tree, typically a function definition.

    Returns
    -------
    str
        ``ast.dump`` of the tree, without field names or positions.

    Examples
    --------
    >>> a = ast.parse('def f():\n    "doc"\n    return 1').body[0]
    >>> b = ast.parse("def f():\n\n    return 1").body[0]
    >>> normalized_dump(a) == normalized_dump(b)
    True
    """
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
    """Return the normalized AST of a function or lambda as its source file reads now, or None.

    Parameters
    ----------
    code : types.CodeType
        The function's or lambda's code object.

    Returns
    -------
    str or None
        :func:`normalized_dump` of its definition; None when there is no source or it is
        ambiguous (two lambdas on one line), then the bytecode alone identifies the code.
    """
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
    return normalized_dump(nodes[0])
