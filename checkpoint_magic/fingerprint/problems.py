"""How a value that cannot be fingerprinted is named and reported: attribute paths and the warning.

A leaf under :mod:`checkpoint_magic.fingerprint.values`: given the walk stack of a
:class:`~checkpoint_magic.fingerprint.values.Fingerprinter` (and the "hops" it recorded, how a
child is named below its parent), :func:`path_to` spells the path of a value such as ``f.conn``
or ``cfg['db']``, and :func:`problem_message` words the
:class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: How a child is named below its parent in a path: not at all, as attributes, as an item.
HOP_SILENT, HOP_ATTRS, HOP_ITEM = 0, 1, 2


def path_to(root: str, stack: list[Any], hops: dict[int, tuple[Any, int, Any]], target: Any) -> str:
    """Spell the attribute path of ``target`` (on or just below the walk ``stack``): ``f.conn``.

    Parameters
    ----------
    root : str
        The name of the value being fingerprinted (the path's first part).
    stack : list
        The objects being walked, outermost first (``stack[0]`` is the root value).
    hops : dict of int to (object, int, object)
        By ``id`` of a child: ``(child, HOP_SILENT | HOP_ATTRS | HOP_ITEM, key)``, recorded by
        the walk where the child's name cannot be found again by searching its parent.
    target : object
        The value to name: the last object on ``stack`` or a child of it.

    Returns
    -------
    str
        The path; beyond 16 parts the middle is elided (``<n more>``).

    Examples
    --------
    >>> d = {"conn": object()}
    >>> path_to("cfg", [d], {}, d["conn"])
    "cfg['conn']"
    """
    chain = stack + ([] if stack and stack[-1] is target else [target])
    parts, attrs = [root], False
    for parent, child in zip(chain[:-1], chain[1:], strict=True):
        hop = hops.get(id(child))
        if hop is not None and hop[0] is child:
            parts.append(f"[{hop[2]!r}]" if hop[1] == HOP_ITEM else "")
            attrs = hop[1] == HOP_ATTRS
        else:
            parts.append(path_label(parent, child, attrs))
            attrs = False
    parts = [p for p in parts if p]
    if len(parts) > 16:
        parts[8:-7] = [f"<{len(parts) - 15} more>"]
    return "".join(parts)


def path_label(parent: Any, child: Any, attrs: bool) -> str:
    """Name how ``child`` is reached from ``parent``, for a warning message (``.a``, ``[0]``).

    Parameters
    ----------
    parent : object
        A dict, list, tuple, set, array or object holding ``child``.
    child : object
        The value, found in ``parent`` by identity.
    attrs : bool
        Whether ``parent`` is an object's attribute dict (string keys then read as ``.key``).

    Returns
    -------
    str
        The label, or ``"<...>"`` when ``child`` is not found in ``parent``.

    Examples
    --------
    >>> x = object()
    >>> path_label([1, x], x, False), path_label({"a": x}, x, True)
    ('[1]', '.a')
    """
    if isinstance(parent, dict):
        for k, v in parent.items():
            if v is child:
                return f".{k}" if attrs and isinstance(k, str) else f"[{k!r}]"
            if k is child:
                return "<a key>"
    elif isinstance(parent, (list, tuple)):
        for i, x in enumerate(parent):
            if x is child:
                return f"[{i}]"
    elif isinstance(parent, (set, frozenset)):
        return "<a set element>"
    elif isinstance(parent, np.ndarray):
        for i, x in enumerate(parent.reshape(-1) if parent.dtype.hasobject else ()):
            if x is child:
                return "[" + ",".join(str(int(j)) for j in np.unravel_index(i, parent.shape)) + "]"
    else:
        for k, v in getattr(parent, "__dict__", {}).items():
            if v is child:
                return f".{k}"
    return "<...>"


def problem_message(
    root: str, problems: list[tuple[str, str, str]], advice: str | None = None
) -> str:
    """The warning about values that could not be walked: ``(path, type name, reason)`` each.

    Parameters
    ----------
    root : str
        The name of the value being fingerprinted (an argument, a watched name).
    problems : list of (str, str, str)
        ``(attribute path, type name, reason)`` of each value that could not be walked.
    advice : str, optional
        What to do, in the front end's own arguments: a template with ``{root}``. Without
        it the advice names both ``watch=`` and ``ignore=``.

    Returns
    -------
    str
        The message of the :class:`~checkpoint_magic.exceptions.ComplexParamsIdentifyWarning`.

    Examples
    --------
    >>> problem_message("f", [("f.conn", "socket", "it cannot be pickled")])[:40]
    'Cannot fingerprint f.conn (socket): it c'
    """
    shown = "; ".join(f"{path} ({tname}): {reason}" for path, tname, reason in problems[:5])
    if len(problems) > 5:
        shown += f"; and {len(problems) - 5} more"
    if advice is None:
        advice = (
            "Watch the attributes that affect the result instead, e.g. watch=['{root}.a'], "
            "or leave it out with ignore=['{root}']."
        )
    return (
        f"Cannot fingerprint {shown}. Only the type enters the fingerprint, so "
        f"{'it is' if len(problems) == 1 else 'they are'} treated as unchanged whatever the "
        f"state: changing it will not cause a recomputation. {advice.format(root=root)}"
    )
