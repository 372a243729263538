"""The ``ls`` command: the entries of a store grouped by name, or one row per entry.

The grouped view of the command line reads only the entry index's totals per name
(:func:`~checkpoint_magic.tools.inventory.summarize_store`); ``--json``, ``-l`` and a name
build every entry (:func:`~checkpoint_magic.tools.inventory.list_entries`).
"""

from __future__ import annotations

import time
from typing import Any

from ..store.core import Store
from ..ui.units import format_ago, format_duration, format_size
from .output import Output, Table, plural, shorten

__all__ = ["ls_output"]


def ls_output(
    store: Store, target: str | None = None, *, entries: bool = False, json: bool = True
) -> Output:
    """``ls``: the entries grouped by name, or one row per entry (``entries`` or a ``target``).

    The grouped view without ``json`` reads only the entry index's totals per name (no entry
    is built: at 100,000 entries this is ~20 times faster); ``json`` also lists every entry.

    Parameters
    ----------
    store : Store
        The store to work on.
    target : str, optional
        A namespace or its unique last part: list only its entries, one row each.
    entries : bool, default=False
        One row per entry for every name (``ls -l``).
    json : bool, default=True
        Put every entry in ``data`` (``items`` of each name), as ``--json`` prints it.

    Returns
    -------
    Output
        ``data`` is ``{"store": ..., "namespaces": [...]}``, each name with its ``items``
        (its entries) unless only the grouped view was asked for without ``json``.

    Raises
    ------
    InvalidArgumentError
        If ``target`` matches no name, or the last part of several.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "k1", {"namespace": "m.f", "code": "c1", "inputs": {"x": "1"}})
    >>> out = ls_output(store, json=False)
    >>> [g["entries"] for g in out.data["namespaces"]], "items" in out.data["namespaces"][0]
    ([1], False)
    >>> [e["key"] for e in ls_output(store).data["namespaces"][0]["items"]]
    ['k1']
    """
    from .maintenance import list_entries, resolve_namespace, summarize, summarize_store

    name = target
    if not (name or entries or json):
        groups = summarize_store(store)
        data = {"store": store.location, "namespaces": [g.to_dict() for g in groups]}
        if not groups:
            return Output(data, [f"no entries in {store.location}"])
        return Output(data, [_groups_table(groups), _totals(store, groups)])
    found = list_entries(store, resolve_namespace(store, name) if name else None)
    groups = summarize(found)
    items: dict[str, list[dict[str, Any]]] = {}
    for e in found:
        items.setdefault(e.namespace, []).append(e.to_dict())
    data = {
        "store": store.location,
        "namespaces": [{**g.to_dict(), "items": items[g.namespace]} for g in groups],
    }
    if not found:
        return Output(data, [f"no entries in {store.location}"])
    now = time.time()
    blocks: list[Table | str] = []
    if name or entries:
        rows = [
            [
                e.key[:12],
                e.namespace,
                e.code[:8],
                shorten(", ".join(f"{k}={v[:6]}" for k, v in sorted(e.inputs.items()))),
                format_size(e.size),
                format_ago(e.created, now),
                format_ago(e.last_used, now) if e.hits else "never",
                str(e.hits),
                format_duration(e.saved),
                "yes" if e.pinned else "",
            ]
            for e in sorted(found, key=lambda e: (e.namespace, -e.last_used))
        ]
        headers = [
            "KEY",
            "NAME",
            "CODE",
            "INPUTS",
            "SIZE",
            "CREATED",
            "LAST USED",
            "HITS",
            "SAVED",
            "PINNED",
        ]
        blocks.append(Table(headers, rows, right={4, 7, 8}))
    else:
        blocks.append(_groups_table(groups))
    blocks.append(_totals(store, groups))
    return Output(data, blocks)


def _groups_table(groups: list[Any]) -> Table:
    """The grouped view of ``ls``: one row per name."""
    now = time.time()
    rows = [
        [
            g.namespace,
            g.kind,
            str(g.versions),
            str(g.entries),
            shorten(", ".join(g.inputs)),
            format_size(g.size),
            format_ago(g.created, now),
            format_ago(g.last_used, now) if g.hits else "never",
            str(g.hits),
            format_duration(g.saved),
        ]
        for g in groups
    ]
    headers = [
        "NAME",
        "KIND",
        "VERSIONS",
        "ENTRIES",
        "INPUTS",
        "SIZE",
        "CREATED",
        "LAST USED",
        "HITS",
        "SAVED",
    ]
    return Table(headers, rows, right={2, 3, 5, 8, 9})


def _totals(store: Store, groups: list[Any]) -> str:
    """The last line of ``ls``: names, entries, size and time saved, summed over ``groups``."""
    entries = sum(g.entries for g in groups)
    size = sum(g.size for g in groups)
    saved = sum(g.saved for g in groups)
    return (
        f"{plural(len(groups), 'name')}, {plural(entries, 'entry')}, {format_size(size)}; "
        f"compute time saved: {format_duration(saved)}  (store: {store.location})"
    )
