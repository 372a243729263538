"""Code fingerprints (public API): how code is encoded, what is user code, package versions.

A function's fingerprint covers its normalized AST (comments, whitespace, blank lines,
docstrings and its own decorators do not count) *and* the bytecode that is running, so a
source file edited after import can never file the old code's result under the new
code's key; bytecode alone is used when there is no source (``exec``, a prompt). It also
covers, transitively, every user-defined function and class reached through a global
name, a closure cell, a used attribute of a user module or the class of a method; a name
read by string (``globals()["K"]``, ``getattr(module, "K")`` with a constant name) counts
as a name the code reads.
Installed packages count by name and version, small global constants (None, bool,
numbers, str, bytes and tuples/frozensets of them) by value, closure values, defaults
that hold data (``def helper(x, k=K)``: the value of ``K`` when it was defined) and the data
attributes of user classes (``params = {'lr': 0.1}`` in a class body) through
:func:`checkpoint_magic.fingerprint.values.fingerprint`. A global that is an instance of a user
class (``scorer = Scorer()``) counts by its class's code, not by its data. Other global values
(data) are *not* included: pass data as arguments so that it is an input.

Fingerprints are cached per function object with what they depended on (the object each
global name was bound to, every function's ``__code__``, defaults and closure cells): a
repeated :func:`code_fingerprint` costs a few identity checks, and rebinding a helper (a
notebook re-running a cell, IPython's autoreload swapping ``__code__``) is noticed. The
traversal of what a function reaches lives in :mod:`~checkpoint_magic.fingerprint.codegraph`, that
cache in :mod:`~checkpoint_magic.fingerprint.codecache`;
code objects and ASTs are encoded by :mod:`~checkpoint_magic.fingerprint.bytecode`, user code is
told from installed code by :mod:`~checkpoint_magic.fingerprint.origin`; this module is the API.
"""

from __future__ import annotations

import ast
import logging
import textwrap
import types
from typing import Any

from ..exceptions import FingerprintError
from . import codecache
from .bytecode import CODEHASH_VERSION, code_names, normalized_dump
from .encoding import hex_digest
from .origin import is_user_code, package_version

__all__ = [
    "PATHS_KEY",
    "code_fingerprint",
    "code_inputs",
    "data_globals",
    "code_parts",
    "is_user_code",
    "package_version",
    "referenced_names",
    "source_fingerprint",
]

logger = logging.getLogger(__name__)

#: The per-function cache of code fingerprints (owned by ``codecache``).
CODE_CACHE = codecache.CODE_CACHE
#: The key under which :func:`code_inputs` returns the path-shaped constants of the code (a
#: name no global can have): files they name are inputs by content.
PATHS_KEY = " paths"


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
    return codecache.compute(obj, parts=False)[0]


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
    return dict(codecache.compute(obj)[1])


def code_inputs(obj: Any, checked: bool = False) -> tuple[str, dict[str, Any]]:
    r"""Return :func:`code_fingerprint` and :func:`data_globals` of ``obj`` in one cache pass.

    Parameters
    ----------
    obj : function, method, class, functools.partial or callable instance
        The code, as for :func:`code_fingerprint`.
    checked : bool, default False
        True when :func:`code_fingerprint` of ``obj`` was just computed (a value walk that
        met it): its cached entry is trusted without checking it again.

    Returns
    -------
    fingerprint : str
        The code fingerprint (32 hexadecimal digits).
    data : dict of str to object
        The data globals the code reads, by label (``NAME``, ``module.NAME``), and under
        :data:`PATHS_KEY` (when there are any) the string constants shaped like file names in
        the code and the user helpers it reaches, and the string globals so shaped.

    Raises
    ------
    FingerprintError
        When ``obj`` is not code or its code cannot be fingerprinted.

    Examples
    --------
    >>> ns = {"CONFIG": [1, 2]}
    >>> exec("def f():\n    return sum(CONFIG)\n", ns)
    >>> fp, data = code_inputs(ns["f"])
    >>> fp == code_fingerprint(ns["f"]), data
    (True, {'CONFIG': [1, 2]})
    """
    entry = CODE_CACHE.get(id(obj))  # fast path: a cached function without closure values
    if entry is not None and (checked or (not entry.volatile and entry.valid((obj,)))):
        data = entry.data_values() if entry.data else {}
        paths = entry.paths
    else:
        fp, data, paths = codecache.fingerprint_inputs(obj)  # closure values hashed once
        entry = None
    if paths:
        data[PATHS_KEY] = paths
    return (entry.digest if entry is not None else fp), data


def data_globals(obj: Any) -> dict[str, Any]:
    """The data globals a function reads (directly or through its user helpers), by label.

    Code counts by its fingerprint and small constants by value, but data (a ``CONFIG``
    dict, an array) is an *input*: the front ends fingerprint these values on every call.

    Parameters
    ----------
    obj : callable
        As for :func:`code_fingerprint`.

    Returns
    -------
    dict of str to object
        ``NAME`` (``__main__``, ``exec``) or ``module.NAME`` -> its current value.

    Examples
    --------
    >>> ns = {"CONFIG": {"factor": 2}, "N": 3}
    >>> src = "def helper():\\n    return CONFIG['factor']\\n"
    >>> exec(src + "def f(x):\\n    return helper() * x * N\\n", ns)
    >>> data_globals(ns["f"])
    {'CONFIG': {'factor': 2}}
    """
    return codecache.data_globals(obj)


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
            normalized_dump(ast.parse(text)),
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
        Python source (dedented first), a code object, or anything with a ``__code__``.

    Returns
    -------
    set of str
        The global names read and the top-level names of the modules imported.

    Raises
    ------
    FingerprintError
        When ``source_or_code`` is none of these.
    SyntaxError
        When the source does not compile.

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
    glob, _, imports = code_names(code)
    return set(glob) | {name.partition(".")[0] for name in imports if name}
