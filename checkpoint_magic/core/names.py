"""Static analysis of a notebook cell: which names it reads from outside and which it binds.

``%%checkpoint`` uses this to infer a cell's inputs (the names it may read before it
assigns them) and its outputs (the names it binds at top level) when ``--watch`` and
``--produce`` are not given. The analysis errs on the safe side:

* a name counts as *read* unless every path through the cell assigns it before the read
  (a name assigned only inside an ``if``, a loop or a ``try`` body still counts as read
  afterwards), and names read inside functions, lambdas, classes and comprehensions
  defined in the cell count as read when they resolve to the cell's global scope;
* a name counts as *bound* when any top-level statement may bind it: assignments,
  augmented and annotated assignments, ``for`` and ``with ... as`` targets, imports,
  ``def`` and ``class``, walrus (also inside comprehensions), ``except ... as``, ``match``
  captures and ``global`` declarations inside functions defined in the cell.

Reading a name too many makes a cache miss more likely (the cell recomputes), never a
wrong hit; binding a name too many costs a little storage (names that end up unset after
the run are not stored). Objects *mutated* in place (``df['z'] = ...``, ``model.fit(X)``)
cannot be seen statically; ``%%checkpoint`` detects them at run time by fingerprinting
the inputs again after the cell ran.

IPython syntax must be transformed first (``ip.transform_cell``); the code of line
magics whose argument is Python (``%time y = f(x)``) is analysed too.

Examples
--------
>>> cell_inputs_outputs('''
... import numpy as np
... X = np.asarray(raw) * scale
... for i in range(n):
...     X += i
... model = fit(X)
... ''')
(['raw', 'scale', 'range', 'n', 'fit'], ['np', 'X', 'i', 'model'])
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = ["CellNames", "analyze_cell", "cell_inputs_outputs", "magic_code"]

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_SCOPES = (*_FUNCTIONS, ast.ClassDef, *_COMPREHENSIONS)
#: IPython helper methods whose string argument may be Python code (``%time x = f()``).
_MAGIC_CALLS = {"run_line_magic": 1, "run_cell_magic": 2}


@dataclass
class CellNames:
    """What a cell reads and binds (see :func:`analyze_cell`).

    Attributes
    ----------
    reads : list of str
        Names the cell may read from its namespace, in order of first use.
    binds : list of str
        Names the cell may bind at top level, in order of first binding.
    star_import : bool
        The cell runs ``from module import *`` (its bindings cannot be known statically).
    """

    reads: list[str] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    star_import: bool = False

    def _read(self, name: str) -> None:
        if name not in self.reads:
            self.reads.append(name)

    def _bind(self, name: str) -> None:
        if name not in self.binds:
            self.binds.append(name)


def cell_inputs_outputs(source: str) -> tuple[list[str], list[str]]:
    """The names a cell may read before assigning them, and the names it binds at top level.

    Parameters
    ----------
    source : str
        Python source of the cell (IPython syntax already transformed).

    Returns
    -------
    reads, binds : list of str
        Both in order of first appearance. ``reads`` includes builtins the cell uses
        (``print``, ``range``): the caller keeps the names that exist in its namespace.

    Raises
    ------
    SyntaxError
        If ``source`` does not parse.

    Examples
    --------
    >>> cell_inputs_outputs("y = x + 1\\nz = y * 2")
    (['x'], ['y', 'z'])
    >>> cell_inputs_outputs("total = total + step")      # read, then rebound
    (['total', 'step'], ['total'])
    >>> cell_inputs_outputs("if flag:\\n    a = 1\\nprint(a)")  # a may come from outside
    (['flag', 'print', 'a'], ['a'])
    >>> cell_inputs_outputs("def f(v):\\n    return v * k\\nout = [f(i) for i in items]")
    (['k', 'items'], ['f', 'out'])
    >>> cell_inputs_outputs("with open(path) as fh:\\n    rows = fh.read()")
    (['open', 'path'], ['fh', 'rows'])
    >>> cell_inputs_outputs("get_ipython().run_line_magic('time', 'y = g(x)')")
    (['get_ipython', 'g', 'x'], ['y'])
    """
    names = analyze_cell(source)
    return names.reads, names.binds


def analyze_cell(source: str | ast.Module) -> CellNames:
    """Analyse a cell's source (or its parsed module); see :func:`cell_inputs_outputs`.

    Parameters
    ----------
    source : str or ast.Module
        Python source (IPython syntax already transformed), or its parsed module.

    Returns
    -------
    CellNames
        The names the cell reads and binds, and whether it runs a star import.

    Raises
    ------
    SyntaxError
        When ``source`` is a string that does not parse.

    Examples
    --------
    >>> names = analyze_cell("y = f(x)")
    >>> names.reads, names.binds, names.star_import
    (['f', 'x'], ['y'], False)
    >>> analyze_cell("from os.path import *").star_import
    True
    """
    tree = ast.parse(source) if isinstance(source, str) else source
    names = CellNames()
    _Analyzer(names).block(tree.body, frozenset())
    return names


class _Analyzer:
    """Walks the top level of a cell in execution order, tracking names surely bound so far."""

    def __init__(self, names: CellNames):
        self.names = names

    # ------------------------------------------------------------------ statements
    def block(self, stmts: Iterable[ast.stmt], bound: frozenset[str]) -> frozenset[str]:
        """Analyse statements in order; return the names surely bound after them."""
        for stmt in stmts:
            bound = self.stmt(stmt, bound)
        return bound

    def stmt(self, node: ast.stmt, bound: frozenset[str]) -> frozenset[str]:
        expr = self.expr
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            expr(_evaluated_at_definition(node), bound)
            self.nested_scope(node, bound)
            self.names._bind(node.name)
            return bound | {node.name}
        if isinstance(node, ast.Assign):
            expr([node.value], bound)
            return self.targets(node.targets, bound)
        if isinstance(node, ast.AugAssign):
            expr([node.value], bound)
            if isinstance(node.target, ast.Name):
                self.read(node.target.id, bound)
            return self.targets([node.target], bound)
        if isinstance(node, ast.AnnAssign):
            expr([node.annotation] + ([node.value] if node.value is not None else []), bound)
            if node.value is None:
                if not isinstance(node.target, ast.Name):
                    expr([node.target], bound)
                return bound
            return self.targets([node.target], bound)
        if isinstance(node, (ast.For, ast.AsyncFor)):
            expr([node.iter], bound)
            inner = self.targets([node.target], bound)
            inner = self.block(node.body, inner)
            self.block(node.orelse, bound)
            return bound  # the loop may run zero times
        if isinstance(node, ast.While):
            expr([node.test], bound)
            self.block(node.body, bound)
            self.block(node.orelse, bound)
            return bound
        if isinstance(node, ast.If):
            expr([node.test], bound)
            return self.block(node.body, bound) & self.block(node.orelse, bound)
        if isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                expr([item.context_expr], bound)
                if item.optional_vars is not None:
                    bound = self.targets([item.optional_vars], bound)
            return self.block(node.body, bound)
        if isinstance(node, _TRY_TYPES):
            try_node: ast.Try = node  # type: ignore[assignment]  # or ast.TryStar: same fields
            surely = self.block([*try_node.body, *try_node.orelse], bound)
            for handler in try_node.handlers:
                if handler.type is not None:
                    expr([handler.type], bound)
                inner = bound
                if handler.name:
                    self.names._bind(handler.name)
                    inner = bound | {handler.name}
                surely &= self.block(handler.body, inner) - {handler.name}
            return self.block(try_node.finalbody, surely)
        if _MATCH is not None and isinstance(node, _MATCH):
            expr([node.subject], bound)
            for case in node.cases:
                inner = bound | self.pattern(case.pattern, bound)
                if case.guard is not None:
                    expr([case.guard], inner)
                self.block(case.body, inner)
            return bound
        if isinstance(node, ast.Import):
            for alias in node.names:
                name = alias.asname or alias.name.partition(".")[0]
                self.names._bind(name)
                bound |= {name}
            return bound
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":
                    self.names.star_import = True
                    continue
                name = alias.asname or alias.name
                self.names._bind(name)
                bound |= {name}
            return bound
        if isinstance(node, ast.Delete):
            expr(node.targets, bound)  # ``del x`` needs x to exist
            gone = {t.id for t in node.targets if isinstance(t, ast.Name)}
            return bound - gone
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            return bound
        # Expr, Return, Raise, Assert, Pass, Break, Continue, and anything newer: plain reads.
        expr([child for child in ast.iter_child_nodes(node) if isinstance(child, ast.expr)], bound)
        for value in ast.iter_fields(node):
            if isinstance(value[1], list) and value[1] and isinstance(value[1][0], ast.stmt):
                bound = self.block(value[1], bound)
        return bound

    def targets(self, targets: Iterable[ast.expr], bound: frozenset[str]) -> frozenset[str]:
        """Bind the names of assignment targets; attribute and subscript bases are reads."""
        new = set()
        for target in targets:
            for node in _walk_own_scope(target):
                if isinstance(node, ast.Name):
                    if isinstance(node.ctx, ast.Store):
                        self.names._bind(node.id)
                        new.add(node.id)
                    else:
                        self.read(node.id, bound)
                elif isinstance(node, _SCOPES):
                    self.nested_scope(node, bound)
        return bound | new

    def pattern(self, pattern: ast.AST, bound: frozenset[str]) -> set[str]:
        """Bind the capture names of a ``match`` pattern; value patterns are reads."""
        captured: set[str] = set()
        for node in ast.walk(pattern):
            for attr in ("name", "rest"):
                name = getattr(node, attr, None)
                if isinstance(name, str) and not isinstance(node, ast.Name):
                    self.names._bind(name)
                    captured.add(name)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                self.read(node.id, bound)
        return captured

    # ------------------------------------------------------------------ expressions
    def read(self, name: str, bound: frozenset[str]) -> None:
        if name not in bound:
            self.names._read(name)

    def expr(self, nodes: Iterable[ast.AST], bound: frozenset[str]) -> None:
        """Reads of expressions evaluated at the cell's top level (nested scopes included)."""
        calls: list[ast.Call] = []
        for root in nodes:
            for node in _walk_own_scope(root):
                if isinstance(node, ast.Name):
                    if isinstance(node.ctx, ast.Store):  # a walrus target
                        self.names._bind(node.id)
                    else:
                        self.read(node.id, bound)
                elif isinstance(node, _SCOPES):
                    self.nested_scope(node, bound)
                elif isinstance(node, ast.Call):
                    calls.append(node)
        for call in calls:  # after the call's own names: the magic's code runs when it is called
            self.magic_call(call, bound)

    def nested_scope(self, node: ast.AST, bound: frozenset[str]) -> None:
        """Globals read (walrus, ``global`` names bound) by a function, class or comprehension."""
        reads, binds = _scope_globals(node, frozenset())
        for name in sorted(reads):
            self.read(name, bound)
        for name in sorted(binds):
            self.names._bind(name)

    def magic_call(self, node: ast.Call, bound: frozenset[str]) -> None:
        """``get_ipython().run_line_magic('time', 'y = f(x)')``: analyse the magic's Python code."""
        inner = _magic_argument(node)
        if inner is not None:
            self.block(inner.body, bound)


def _magic_argument(node: ast.Call) -> ast.Module | None:
    """The parsed Python code passed to ``run_line_magic`` / ``run_cell_magic``, if any."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr in _MAGIC_CALLS):
        return None
    index = _MAGIC_CALLS[func.attr]
    if len(node.args) <= index:
        return None
    arg = node.args[index]
    if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
        return None
    try:
        return ast.parse(arg.value)
    except SyntaxError:
        return None  # not Python (``%matplotlib inline``, ``%timeit -n 3 f()``...)


def magic_code(tree: ast.AST) -> list[ast.Module]:
    """The Python code passed to line and cell magics anywhere in a cell (nested magics too).

    ``%time y = f(x)`` becomes ``get_ipython().run_line_magic('time', 'y = f(x)')``: the
    code in that string runs too, so what it uses counts like the cell's own code.

    Parameters
    ----------
    tree : ast.AST
        The parsed cell (IPython syntax already transformed).

    Returns
    -------
    list of ast.Module
        One parsed module per magic call whose argument is Python, in no particular order.

    Examples
    --------
    >>> tree = ast.parse("get_ipython().run_line_magic('time', 'y = f(x)')\\nz = 1")
    >>> [ast.unparse(m) for m in magic_code(tree)]
    ['y = f(x)']
    >>> magic_code(ast.parse("get_ipython().run_line_magic('timeit', '-n 3 f()')"))
    []
    """
    found: list[ast.Module] = []
    stack = [tree]
    while stack:
        for node in ast.walk(stack.pop()):
            if isinstance(node, ast.Call) and (inner := _magic_argument(node)) is not None:
                found.append(inner)
                stack.append(inner)
    return found


try:
    _TRY_TYPES: tuple[type, ...] = (ast.Try, ast.TryStar)  # type: ignore[attr-defined]
except AttributeError:  # Python 3.10
    _TRY_TYPES = (ast.Try,)
_MATCH = getattr(ast, "Match", None)


def _evaluated_at_definition(
    node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
) -> list[ast.expr]:
    """The parts of a ``def`` / ``class`` statement evaluated in the enclosing scope."""
    parts: list[ast.expr] = list(node.decorator_list)
    if isinstance(node, ast.ClassDef):
        parts += node.bases
        parts += [kw.value for kw in node.keywords]
    else:
        args = node.args
        parts += [d for d in (*args.defaults, *args.kw_defaults) if d is not None]
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        parts += [a.annotation for a in every if a is not None and a.annotation is not None]
        if node.returns is not None:
            parts.append(node.returns)
    return parts


def _walk_own_scope(root: ast.AST) -> Iterator[ast.AST]:
    """Yield the nodes of ``root`` that run in the scope ``root`` runs in.

    A nested scope (function, lambda, class, comprehension; ``root`` itself included) is
    yielded but not entered; only its parts evaluated in the enclosing scope are walked
    (decorators, defaults, annotations, bases; a comprehension's first iterable).
    """
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _COMPREHENSIONS):
            stack.append(node.generators[0].iter)
        elif isinstance(node, ast.Lambda):
            stack.extend(d for d in (*node.args.defaults, *node.args.kw_defaults) if d is not None)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            stack.extend(reversed(_evaluated_at_definition(node)))
        else:
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def _scope_body(node: ast.AST) -> list[ast.AST]:
    """The nodes that make up a nested scope's own body (what runs inside the scope)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return list(node.body)
    if isinstance(node, ast.Lambda):
        return [node.body]
    assert isinstance(node, _COMPREHENSIONS)
    parts: list[ast.AST] = []
    for i, gen in enumerate(node.generators):
        parts.append(gen.target)
        if i:
            parts.append(gen.iter)
        parts.extend(gen.ifs)
    if isinstance(node, ast.DictComp):
        parts += [node.key, node.value]
    else:
        parts.append(node.elt)
    return parts


def _parameters(node: ast.AST) -> set[str]:
    if not isinstance(node, _FUNCTIONS):
        return set()
    args = node.args
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
    return {a.arg for a in every if a is not None}


def _scope_globals(
    scope: ast.AST, enclosing: frozenset[str], *, top: bool = True
) -> tuple[set[str], set[str]]:
    """Names a nested scope reads from, and may bind in, the cell's global scope.

    ``enclosing`` holds the local names of enclosing *function* scopes (closures), which
    shadow globals; class scopes do not enclose the functions defined in them. ``top``
    says that the enclosing scope is the cell's own (global) scope.
    """
    local = _parameters(scope)
    loads: set[str] = set()
    declared_global: set[str] = set()
    declared_nonlocal: set[str] = set()
    walrus: set[str] = set()
    children: list[ast.AST] = []
    for part in _scope_body(scope):
        for node in _walk_own_scope(part):
            if isinstance(node, _SCOPES):
                children.append(node)
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    local.add(node.name)
            elif isinstance(node, ast.Name):
                (loads if isinstance(node.ctx, ast.Load) else local).add(node.id)
            elif isinstance(node, ast.NamedExpr) and isinstance(node.target, ast.Name):
                walrus.add(node.target.id)
            elif isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                loads.add(node.target.id)  # ``x += 1`` reads x
            elif isinstance(node, ast.ExceptHandler) and node.name:
                local.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                local.update(
                    a.asname or a.name.partition(".")[0] for a in node.names if a.name != "*"
                )
            elif isinstance(node, ast.Global):
                declared_global.update(node.names)
            elif isinstance(node, ast.Nonlocal):
                declared_nonlocal.update(node.names)
            elif type(node).__name__.startswith("Match"):  # match-pattern captures
                for attr in ("name", "rest"):
                    name = getattr(node, attr, None)
                    if isinstance(name, str):
                        local.add(name)
    binds = declared_global & local  # ``global x; x = ...`` inside a function binds a cell global
    if isinstance(scope, _COMPREHENSIONS):
        targets = {
            t.id for g in scope.generators for t in ast.walk(g.target) if isinstance(t, ast.Name)
        }
        escaping = walrus - targets  # a comprehension's walrus binds in the enclosing scope
        local -= escaping
        if top:
            binds |= escaping
    local -= declared_global
    shadowed = local | declared_nonlocal | enclosing
    reads = {n for n in loads if n in declared_global or n not in shadowed}
    if isinstance(scope, ast.ClassDef):
        inner_enclosing, inner_top = enclosing, top
    else:
        inner_enclosing, inner_top = enclosing | frozenset(local | declared_nonlocal), False
    if isinstance(scope, _COMPREHENSIONS):
        inner_top = top and not enclosing  # a comprehension does not hide the cell's scope
    for child in children:
        child_reads, child_binds = _scope_globals(
            child, inner_enclosing - declared_global, top=inner_top
        )
        reads |= child_reads
        binds |= child_binds
    return reads, binds
