"""Target paths that front ends watch and produce: a name, an attribute path or a literal subscript.

``x``, ``cfg.alpha``, ``params['C']``, ``x[0]`` and chains of those
(``model.steps[0].coef_``) are targets; anything else (calls, operators, computed keys)
is not. Used by :class:`~checkpoint_magic.inline.InlineCheckpoint` and the
``%%checkpoint`` magic.

Examples
--------
>>> node = parse_target("d['a'].b")
>>> resolve(node, [{"d": {"a": 1}}]) is MISSING
True
>>> ns = {"d": {}}
>>> assign(parse_target("d['k']"), 5, ns, [ns], lambda n: KeyError(n))
>>> ns
{'d': {'k': 5}}
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..exceptions import InvalidArgumentError

__all__ = ["MISSING", "assign", "parse_target", "resolve"]

#: What :func:`resolve` returns for a target that does not exist.
MISSING: Any = object()


def parse_target(text: str, role: str = "target") -> ast.expr:
    """Parse a target; raise :class:`~checkpoint_magic.exceptions.InvalidArgumentError` otherwise.

    The one place that says what a target is: ``InlineCheckpoint`` and the ``%%checkpoint``
    magic (which turns the error into a ``UsageError``) both call it. The parsed node is
    cached and shared: do not modify it.

    Parameters
    ----------
    text : str
        The target, e.g. ``"cfg.params['alpha']"``.
    role : str, default "target"
        What the caller calls it in an error message (``"watch"``, ``"--produce"``).

    Returns
    -------
    ast.expr
        The parsed name, attribute or subscript chain.

    Raises
    ------
    InvalidArgumentError
        ``text`` is empty, not a string, or not a name, attribute path or literal subscript
        (also a :class:`ValueError`).

    Examples
    --------
    >>> ast.unparse(parse_target("cfg.params['alpha']"))
    "cfg.params['alpha']"
    >>> parse_target("f(x)", "watch")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: watch 'f(x)' is not a name, an attribute ...
    """
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgumentError(
            f"{role} items must be non-empty strings such as 'x', 'f.a' or \"d['a']\", not {text!r}"
        )
    node = _parse(text)
    if node is None:
        raise InvalidArgumentError(
            f"{role} {text!r} is not a name, an attribute path (f.a) or a subscript with a "
            "literal key (d['a'])"
        )
    return node


@functools.lru_cache(maxsize=1024)
def _parse(text: str) -> ast.expr | None:
    try:
        node: ast.expr | None = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        return None
    current = node
    while isinstance(current, (ast.Attribute, ast.Subscript)):
        if isinstance(current, ast.Subscript) and literal_key(current.slice) is MISSING:
            return None
        current = current.value
    return node if isinstance(current, ast.Name) else None


def literal_key(node: ast.expr) -> Any:
    """Return the value of a literal subscript key, or :data:`MISSING` when it is not a literal.

    Parameters
    ----------
    node : ast.expr
        The ``slice`` of an ``ast.Subscript``.

    Returns
    -------
    object
        The key, or :data:`MISSING`.

    Examples
    --------
    >>> literal_key(ast.parse("'a'", mode="eval").body)
    'a'
    >>> literal_key(ast.parse("k", mode="eval").body) is MISSING
    True
    """
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError):  # not a literal, or an unhashable one
        return MISSING


def resolve(node: ast.expr, scopes: Sequence[Mapping[str, Any]]) -> Any:
    """Return the value of a parsed target; names are looked up in ``scopes`` in order.

    Parameters
    ----------
    node : ast.expr
        A target from :func:`parse_target` (a name, attribute or literal subscript chain).
    scopes : Sequence of Mapping of str to object
        The namespaces to look the leading name up in (e.g. locals, then globals).

    Returns
    -------
    object
        The value; :data:`MISSING` when a name, an attribute or a key along the path does not
        exist.

    Examples
    --------
    >>> resolve(parse_target("d['a']"), [{"d": {"a": 1}}])
    1
    """
    if isinstance(node, ast.Name):
        for scope in scopes:
            if node.id in scope:
                return scope[node.id]
        return MISSING
    assert isinstance(node, (ast.Attribute, ast.Subscript))  # guaranteed by parse_target
    parent = resolve(node.value, scopes)
    if parent is MISSING:
        return MISSING
    try:
        if isinstance(node, ast.Attribute):
            return getattr(parent, node.attr)
        return parent[literal_key(node.slice)]
    except (AttributeError, LookupError, TypeError):
        return MISSING


def assign(
    node: ast.expr,
    value: Any,
    namespace: dict[str, Any],
    scopes: Sequence[Mapping[str, Any]],
    missing_parent: Callable[[str], Exception],
) -> None:
    """Set a parsed target: a name in ``namespace``, an attribute or item on its parent.

    Parameters
    ----------
    node : ast.expr
        A target from :func:`parse_target`.
    value : object
        The value to set.
    namespace : dict of str to object
        Where a bare name is bound.
    scopes : Sequence of Mapping of str to object
        Where the parent of an attribute or item target is looked up.
    missing_parent : callable
        Takes the parent's path (``"d['a']"``) and returns the exception to raise when the
        parent does not exist.

    Raises
    ------
    Exception
        ``missing_parent(<parent path>)`` when the parent does not exist.

    Examples
    --------
    >>> ns = {"d": {}}
    >>> assign(parse_target("d['k']"), 5, ns, [ns], KeyError)
    >>> ns
    {'d': {'k': 5}}
    """
    if isinstance(node, ast.Name):
        namespace[node.id] = value
        return
    assert isinstance(node, (ast.Attribute, ast.Subscript))  # guaranteed by parse_target
    parent = resolve(node.value, scopes)
    if parent is MISSING:
        raise missing_parent(ast.unparse(node.value))
    if isinstance(node, ast.Attribute):
        setattr(parent, node.attr, value)
    else:
        parent[literal_key(node.slice)] = value
