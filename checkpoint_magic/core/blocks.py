"""Finding and fingerprinting the ``with`` block running in a frame, and skipping it.

:func:`find_block` locates the ``with`` statement at a frame's current line in the frame's
source (a script file, or a notebook cell IPython registered in ``linecache``) with
:mod:`ast`; :func:`block_code_fingerprint` combines its body's normalized AST with the
running bytecode of its lines (so a file edited after it started cannot pass as the code that
runs) and the user code the body calls. :class:`SkipBody` is what the frame trace raises to
jump over a restored block; :func:`write_back_locals` makes restored locals visible to a
function's fast locals.
"""

from __future__ import annotations

import ast
import ctypes
import dis
import linecache
import logging
import sys
import types
from collections.abc import Callable
from typing import Any

import xxhash

from . import targets

logger = logging.getLogger(__name__)

#: Where :func:`block_code_fingerprint` hands back the body's code in ``data`` (not a name).
CODE_KEY = " code"


class SkipBody(Exception):
    """Raised by the frame trace to jump over a block whose results were restored."""


def block_names(block: ast.With | ast.AsyncWith | None) -> frozenset[str]:
    r"""Return every name the body mentions (read or bound) at any depth.

    Parameters
    ----------
    block : ast.With, ast.AsyncWith or None
        The ``with`` statement (None: no source, no names).

    Returns
    -------
    frozenset of str
        The names.

    Examples
    --------
    >>> sorted(block_names(ast.parse("with c:\n    y = f(x)").body[0]))
    ['f', 'x', 'y']
    """
    if block is None:
        return frozenset()
    return frozenset(n.id for stmt in block.body for n in ast.walk(stmt) if isinstance(n, ast.Name))


def frame_scopes(frame: types.FrameType, namespace: dict[str, Any]) -> list[dict[str, Any]]:
    """Return where a name in a block is looked up: its locals, then globals, then builtins.

    Parameters
    ----------
    frame : types.FrameType
        The frame running the block.
    namespace : dict of str to object
        Its locals (``frame.f_locals``; the globals at module level).

    Returns
    -------
    list of dict of str to object
        ``[namespace, frame.f_globals, frame.f_builtins]``.
    """
    return [namespace, frame.f_globals, frame.f_builtins]


def target_values(
    exprs: list[str],
    nodes: list[ast.expr],
    frame: types.FrameType,
    namespace: dict[str, Any],
    missing: Callable[[str], Exception],
) -> dict[str, Any]:
    """Return the value of each target expression in ``frame``.

    Parameters
    ----------
    exprs : list of str
        The target expressions as written (``"model"``, ``"cfg['x']"``).
    nodes : list of ast.expr
        The same, parsed by :func:`~checkpoint_magic.core.targets.parse_target`.
    frame : types.FrameType
        The frame running the block.
    namespace : dict of str to object
        Its locals (``frame.f_locals``; the globals at module level).
    missing : callable
        Takes an expression and returns the exception to raise when it has no value.

    Returns
    -------
    dict of str to object
        The value of each expression.

    Raises
    ------
    Exception
        ``missing(expr)`` for the first expression that has no value.

    Examples
    --------
    >>> import sys
    >>> frame, d = sys._getframe(), {"a": 1}
    >>> target_values(["d['a']"], [targets.parse_target("d['a']")], frame, {"d": d}, KeyError)
    {"d['a']": 1}
    """
    values = {}
    scopes = frame_scopes(frame, namespace)
    for expr, node in zip(exprs, nodes, strict=True):
        value = targets.resolve(node, scopes)
        if value is targets.MISSING:
            raise missing(expr)
        values[expr] = value
    return values


def write_back_locals(frame: types.FrameType) -> None:
    """Make changes to ``frame.f_locals`` visible to a function's fast locals (CPython < 3.13).

    Parameters
    ----------
    frame : types.FrameType
        The frame whose ``f_locals`` was changed (a no-op for module frames and on 3.13+).
    """
    if sys.version_info < (3, 13) and frame.f_code.co_flags & 0x1:  # CO_OPTIMIZED: a function frame
        ctypes.pythonapi.PyFrame_LocalsToFast(ctypes.py_object(frame), ctypes.c_int(0))


# --------------------------------------------------------------------------- finding the block
# (file name, source digest) -> the `with` statements of that source
_parsed: dict[tuple[str, str], list[ast.With | ast.AsyncWith]] = {}
_PARSED_MAX = 256
_compiled: dict[str, types.CodeType] = {}
# code object -> (that very object, its instructions with lines); equal code objects compare
# equal, so the identity check keeps one frame's lines from serving another's
_lines_of: dict[
    types.CodeType, tuple[types.CodeType, list[tuple[int | None, dis.Instruction]]]
] = {}


def find_block(frame: types.FrameType) -> ast.With | ast.AsyncWith | None:
    """Return the ``with`` statement whose header holds the frame's current line, from source.

    Parameters
    ----------
    frame : types.FrameType
        The frame executing the ``with`` header.

    Returns
    -------
    ast.With, ast.AsyncWith or None
        The innermost such statement; None when the source is unavailable or does not parse.
    """
    filename = frame.f_code.co_filename
    lines = linecache.getlines(filename, frame.f_globals)
    if not lines:
        return None
    source = "".join(lines)
    cache_key = (filename, xxhash.xxh3_64_hexdigest(source.encode("utf-8", "surrogatepass")))
    withs = _parsed.get(cache_key)
    if withs is None:
        try:
            tree = ast.parse(source, filename)
        except SyntaxError:
            return None
        if len(_parsed) >= _PARSED_MAX:
            _parsed.clear()  # a notebook gives every run of a cell a new file name
        withs = _parsed[cache_key] = [
            n for n in ast.walk(tree) if isinstance(n, (ast.With, ast.AsyncWith))
        ]
    line = frame.f_lineno
    best: ast.With | ast.AsyncWith | None = None
    for node in withs:
        if node.lineno <= line <= header_end(node) and (best is None or node.lineno > best.lineno):
            best = node  # the innermost `with` whose header holds the line
    return best


def header_end(node: ast.With | ast.AsyncWith) -> int:
    r"""Return the last line of a ``with`` statement's header (its items), which the body may share.

    Parameters
    ----------
    node : ast.With or ast.AsyncWith
        The statement.

    Returns
    -------
    int
        The line number.

    Examples
    --------
    >>> header_end(ast.parse("with a(\n    1\n) as b:\n    pass").body[0])
    3
    """
    ends = [item.context_expr.end_lineno or node.lineno for item in node.items]
    ends += [
        item.optional_vars.end_lineno or node.lineno
        for item in node.items
        if item.optional_vars is not None
    ]
    return max(ends)


def instruction_lines(code: types.CodeType) -> list[tuple[int | None, dis.Instruction]]:
    """Return every instruction of ``code`` with its source line (portable across 3.10-3.13).

    Parameters
    ----------
    code : types.CodeType
        The code object (nested code objects are not entered).

    Returns
    -------
    list of (int or None, dis.Instruction)
        Each instruction with the line it belongs to (None before the first line).

    Examples
    --------
    >>> [line for line, ins in instruction_lines(compile("x = 1", "<s>", "exec"))][-1]
    1
    """
    cached = _lines_of.get(code)
    if cached is not None and cached[0] is code:
        return cached[1]
    out = []
    line: int | None = None
    for ins in dis.get_instructions(code):
        number = getattr(ins, "line_number", None)  # 3.13
        if number is None:
            positions = getattr(ins, "positions", None)  # 3.11, 3.12
            number = positions.lineno if positions is not None else None
        if (
            number is None
            and isinstance(ins.starts_line, int)
            and not isinstance(ins.starts_line, bool)
        ):
            number = ins.starts_line  # 3.10
        if number is not None:
            line = number
        out.append((line, ins))
    if len(_lines_of) >= _PARSED_MAX:
        _lines_of.clear()
    _lines_of[code] = (code, out)
    return out


def running_code_fingerprint(code: types.CodeType, first: int, last: int) -> str:
    r"""Return the fingerprint of the bytecode actually running for source lines ``first..last``.

    Line numbers, jump offsets and file names do not enter it (jumps count relative to their
    instruction), so code moving up or down does not change it; any change to what the
    lines compile to does. It protects against a source file edited while the program runs:
    the body parsed from the file would then not be the body that runs.

    Parameters
    ----------
    code : types.CodeType
        The running code (the frame's ``f_code``).
    first, last : int
        The source lines of the body, inclusive.

    Returns
    -------
    str
        32 hexadecimal digits.

    Examples
    --------
    >>> a = compile("x = 1\ny = 2", "<a>", "exec")
    >>> b = compile("\n\nx = 1\ny = 2", "<b>", "exec")
    >>> running_code_fingerprint(a, 1, 2) == running_code_fingerprint(b, 3, 4)
    True
    """
    from ..fingerprint.values import fingerprint

    jumps = set(dis.hasjrel) | set(dis.hasjabs)
    h = xxhash.xxh3_128()
    for line, ins in instruction_lines(code):
        if line is None or not first <= line <= last:
            continue
        h.update(ins.opname.encode() + b"\0")
        arg = ins.argval
        if ins.opcode in jumps and isinstance(arg, int):
            h.update(b"j%d\0" % (arg - ins.offset))
        elif isinstance(arg, types.CodeType):
            h.update(b"c" + running_code_fingerprint(arg, 0, sys.maxsize).encode())
        elif isinstance(arg, str):
            h.update(b"s" + arg.encode("utf-8", "surrogatepass") + b"\0")
        elif arg is not None:
            h.update(b"v" + fingerprint(arg).encode())
    return h.hexdigest()


def block_function(
    block: ast.With | ast.AsyncWith,
    frame: types.FrameType,
    namespace: dict[str, Any],
    ignore: frozenset[str] = frozenset(),
) -> types.FunctionType:
    """Return the body as a function over the frame's names (what code fingerprints follow).

    Names in ``ignore`` are hidden from it: they count neither as code nor as constants.

    Parameters
    ----------
    block : ast.With or ast.AsyncWith
        The ``with`` statement, as :func:`find_block` returns it.
    frame : types.FrameType
        The frame running the block.
    namespace : dict of str to object
        Its locals (``frame.f_locals``; the globals at module level).
    ignore : frozenset of str, optional
        Names to hide.

    Returns
    -------
    types.FunctionType
        A function (never called) whose globals are the frame's globals and ``namespace``.
    """
    body = ast.Module(body=block.body, type_ignores=[])
    text = ast.unparse(body)
    scope = dict(frame.f_globals)
    if namespace is not frame.f_globals:
        scope.update(namespace)
    for name in ignore:
        scope.pop(name, None)
    compiled = _compiled.get(text)
    if compiled is None:
        if len(_compiled) >= _PARSED_MAX:
            _compiled.clear()
        # One code object per body text, so codehash's per-code caches serve later entries.
        compiled = _compiled[text] = compile(body, "<checkpoint_magic block>", "exec")
    return types.FunctionType(compiled, scope)


def block_code_fingerprint(
    block: ast.With | ast.AsyncWith | None,
    frame: types.FrameType,
    namespace: dict[str, Any],
    produce: list[str],
    data: dict[str, Any] | None = None,
    ignore: frozenset[str] = frozenset(),
) -> str:
    """Return what identifies a block's code.

    Parts: the normalized AST of the body; the bytecode running for the body's lines; the
    user functions, classes and module attributes the body uses (followed transitively by
    :mod:`checkpoint_magic.fingerprint.code`, on their running code); and the produced names.

    Parameters
    ----------
    block : ast.With, ast.AsyncWith or None
        The ``with`` statement; None (no source) fingerprints the enclosing code's bytecode.
    frame : types.FrameType
        The frame running the block.
    namespace : dict of str to object
        Its locals (``frame.f_locals``; the globals at module level).
    produce : list of str
        The names the block produces.
    data : dict of str to object, optional
        Receives the data globals the body reads, by label, and its code under :data:`CODE_KEY`.
    ignore : frozenset of str, optional
        Names to hide from the code fingerprint.

    Returns
    -------
    str
        32 hexadecimal digits.

    Raises
    ------
    FingerprintError
        When the code the body reaches cannot be fingerprinted.
    """
    from ..fingerprint import code as codehash

    h = xxhash.xxh3_128()
    h.update(("produce:" + "\0".join(produce) + "\n").encode())
    if block is None:
        # No source (code typed into exec, a frozen app): the enclosing code's bytecode.
        logger.debug(
            "no source for %s; fingerprinting the enclosing code", frame.f_code.co_filename
        )
        h.update(b"bytecode:" + running_code_fingerprint(frame.f_code, 0, sys.maxsize).encode())
        return h.hexdigest()
    body = ast.Module(body=block.body, type_ignores=[])
    last = max(node.end_lineno or node.lineno for node in block.body)
    text = ast.unparse(body)
    h.update(b"ast:" + codehash.source_fingerprint(text).encode())
    h.update(
        b"running:" + running_code_fingerprint(frame.f_code, block.body[0].lineno, last).encode()
    )
    # The body as a function over the frame's names: codehash follows what it references
    # (helpers, classes, attributes of user modules, constants) like a function's globals;
    # the data globals it reaches are returned in ``data`` (inputs).
    function = block_function(block, frame, namespace, ignore)
    uses, found = codehash.code_inputs(function)
    if data is not None:
        data.update(found)
        data[CODE_KEY] = function.__code__
    h.update(b"uses:" + uses.encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- the context manager
