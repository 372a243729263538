"""The arguments of ``%%checkpoint``: parsing its magic line and the target paths it names.

A target is a name, an attribute path (``cfg.alpha``) or a subscript with a literal key
(``params['C']``); :func:`get_target` and :func:`set_target` read and write one in a
namespace. Used by :mod:`checkpoint_magic.notebook.magic`.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Mapping
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic_arguments import parse_argstring

from ..core import targets
from ..exceptions import MissingProducedNameError
from .outputs import RESERVED

#: What :func:`_get` returns for a target that does not exist.
MISSING: Any = targets.MISSING


def usage(magic: Any) -> str:
    """The one-line usage of a magic, from its declared arguments (``magic_arguments``).

    The ``@argument`` declarations on the magic are the single source of its usage and
    help text; this only reflows argparse's usage into one line with a pointer to the help.

    Parameters
    ----------
    magic : callable
        A function decorated with ``@magic_arguments()`` (it has a ``parser``).

    Returns
    -------
    str
        ``usage: %%checkpoint [-w NAME ...] ...   (details: %%checkpoint?)``.
    """
    text = " ".join(magic.parser.format_usage().replace("::", "").split())
    return f"usage: %%{text.lstrip('%')}   (details: %%checkpoint?)"


def parse_args(magic: Any, line: str) -> Any:
    """Parse the magic line of ``%%checkpoint`` (declared on ``magic``) and check it.

    ``--watch``/``--produce`` lists are flattened (``-w a b -w c,d``) and each target
    checked; quotes around ``--name`` and ``--store`` are removed.

    Parameters
    ----------
    magic : callable
        The magic method carrying the ``@argument`` declarations.
    line : str
        The text after ``%%checkpoint``.

    Returns
    -------
    argparse.Namespace
        ``watch``, ``produce`` (lists or ``None``), ``recompute``, ``name``, ``store``,
        ``quiet``.

    Raises
    ------
    UsageError
        For unknown options, unbalanced quotes, a bad target, a reserved ``--produce``
        name, an empty ``--name`` or a ``--store`` that is empty or a file.
    """
    text = usage(magic)
    try:
        args = parse_argstring(magic, line)
    except UsageError as exc:
        raise UsageError(f"%%checkpoint: {exc}\n{text}") from None
    except ValueError as exc:  # unbalanced quotes in the line
        raise UsageError(
            f"%%checkpoint: cannot split the arguments ({exc}); check the quotes\n{text}"
        ) from None
    args.watch = _split_names(args.watch, "--watch", text)
    args.produce = _split_names(args.produce, "--produce", text)
    reserved = sorted(RESERVED.intersection(args.produce or ()))
    if reserved:
        raise UsageError(
            f"%%checkpoint: {', '.join(reserved)} is reserved for the cell's output; rename the variable"
        )
    if args.name is not None:
        args.name = _unquote(args.name)
    if args.name is not None and not args.name.strip():
        raise UsageError(f"%%checkpoint: --name needs a non-empty name\n{text}")
    if args.store is not None:
        path = _unquote(args.store)
        if not path:
            raise UsageError(f"%%checkpoint: --store needs a directory path\n{text}")
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(
                f"%%checkpoint: --store {path!r} is a file; give a directory (it is created if needed)"
            )
        args.store = path
    return args


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def _split_names(values: list[str] | None, flag: str, text: str) -> list[str] | None:
    """Flatten ``-w a b -w c,d`` into ``['a', 'b', 'c', 'd']`` and check each is a valid target."""
    if values is None:
        return None
    names: list[str] = []
    for value in values:
        value = _unquote(value)
        parts = re.split(r",(?![^\[]*\])", value) if "," in value else [value]
        for part in (p.strip() for p in parts):
            if not part:
                continue
            _parse_target(part, flag)
            if part not in names:
                names.append(part)
    if not names:
        raise UsageError(f"%%checkpoint: {flag} needs at least one name\n{text}")
    return names


def _parse_target(text: str, flag: str = "--watch") -> ast.expr:
    """:func:`checkpoint_magic.core.targets.parse_target`, its error as a :class:`UsageError`.

    Examples
    --------
    >>> ast.unparse(_parse_target("cfg.params['alpha']"))
    "cfg.params['alpha']"
    >>> _parse_target("x + 1")
    Traceback (most recent call last):
    ...
    IPython.core.error.UsageError: %%checkpoint: --watch 'x + 1' is not a name, ...
    """
    try:
        return targets.parse_target(text, flag)
    except ValueError as exc:
        raise UsageError(f"%%checkpoint: {exc}") from None


def get_target(ns: Mapping[str, Any], text: str) -> Any:
    """The value at a target path in ``ns``, or :data:`MISSING`.

    Parameters
    ----------
    ns : mapping of str to object
        The namespace (the user's).
    text : str
        A target: ``x``, ``cfg.alpha`` or ``params['C']``.

    Returns
    -------
    object
        The value, or :data:`MISSING` when the name, attribute or key does not exist.

    Raises
    ------
    UsageError
        If ``text`` is not a valid target.

    Examples
    --------
    >>> get_target({"params": {"C": 1.0}}, "params['C']"), get_target({}, "x") is MISSING
    (1.0, True)
    """
    return targets.resolve(_parse_target(text), [ns])


def set_target(ns: dict[str, Any], text: str, value: Any) -> None:
    """Set the target ``text`` in ``ns`` (its parent object must exist).

    Parameters
    ----------
    ns : dict of str to object
        The namespace (the user's).
    text : str
        A target: ``x``, ``cfg.alpha`` or ``params['C']``.
    value : object
        The value to set.

    Raises
    ------
    MissingProducedNameError
        If the object holding the attribute or key does not exist.
    """
    targets.assign(
        _parse_target(text),
        value,
        ns,
        [ns],
        lambda parent: MissingProducedNameError(
            f"%%checkpoint: cannot restore {text!r}: {parent} does not exist; "
            "create it before this cell or use --recompute"
        ),
    )
