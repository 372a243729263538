"""Notebook inspection magics: ``%checkpoint_store <command>`` and ``%checkpoint_why NAME``, as HTML tables.

One line magic mirrors the ``checkpoint-magic`` command line (same commands, same
options, same tables, rendered as HTML)::

    %checkpoint_store ls                      # entries grouped by function, block or cell
    %checkpoint_store ls fit_model            # the entries of one name (or: ls -l for all)
    %checkpoint_store show 3fa9c1             # one entry (a unique key prefix is enough)
    %checkpoint_store du
    %checkpoint_store gc --max-size 1GB --max-age 30d --keep-versions 3 --dry-run
    %checkpoint_store verify --fix
    %checkpoint_store pin 3fa9c1 / unpin 3fa9c1 / clear [NAME] / why NAME
    %checkpoint_why fit_model                 # short for %checkpoint_store why fit_model

``--store PATH`` picks the store (default ``$CHECKPOINT_MAGIC_DIR`` or
``./.Lutil-checkpoint``); ``--json`` returns the data (dicts and lists) instead of a
table. The commands and options are the command line's own definition
(:func:`checkpoint_magic.tools.cli.add_commands`), with the same validation. Bad input, and an
error that stops a command (not a store, a newer format, a file system error), raise
:class:`~IPython.core.error.UsageError`. The extension
(:mod:`checkpoint_magic.notebook.magic`) calls :func:`register` and :func:`unregister`; a
:class:`~checkpoint_magic.store.Store` shown in a notebook renders with
:func:`store_html`. IPython is imported only when the magics are registered.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> "<table" in store_html(Store(tempfile.mkdtemp()))
False
"""

from __future__ import annotations

import argparse
import html
from collections.abc import Callable, Sequence
from typing import Any

from ..store.core import Store
from ..tools.cli import Output, Table, add_command_arguments, add_commands, render_text, run

__all__ = ["Rendered", "register", "render_html", "store_html", "unregister"]

_STYLE = "border-collapse:collapse;font-size:0.9em"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd"


def render_html(blocks: Sequence[Table | str]) -> str:
    """HTML rendering of an output's blocks: tables for tables, paragraphs for lines.

    Examples
    --------
    >>> print(render_html([Table(["A"], [["<x>"]]), "done"]))  # doctest: +ELLIPSIS
    <div class="checkpoint-magic"><table ...><thead><tr><th ...>A</th></tr></thead><tbody><tr><td ...>&lt;x&gt;</td></tr></tbody></table><p>done</p></div>
    """
    parts = ['<div class="checkpoint-magic">']
    for block in blocks:
        if isinstance(block, str):
            parts.append(f"<p>{html.escape(block)}</p>")
            continue
        if block.title:
            parts.append(f"<p><b>{html.escape(block.title)}</b></p>")

        def cell(tag: str, i: int, text: str, block: Table = block) -> str:
            align = "right" if i in block.right else "left"
            return f'<{tag} style="{_CELL};text-align:{align}">{html.escape(text)}</{tag}>'

        head = "".join(cell("th", i, h) for i, h in enumerate(block.headers))
        body = "".join(
            "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>"
            for row in block.rows
        )
        parts.append(
            f'<table style="{_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
        )
    parts.append("</div>")
    return "".join(parts)


class Rendered:
    """What ``%checkpoint_store`` returns: shown as HTML in a notebook, as text elsewhere.

    ``data`` holds what ``--json`` would return; ``code`` the CLI's exit code.
    """

    def __init__(self, output: Output):
        self.data = output.data
        self.code = output.code
        self._blocks = output.blocks

    def _repr_html_(self) -> str:
        return render_html(self._blocks)

    def __repr__(self) -> str:
        return render_text(self._blocks)


def store_html(store: Store) -> str:
    """The ``ls`` table of a store, as HTML (registered for :class:`Store` by :func:`register`); never raises."""
    from ..exceptions import CheckpointError

    try:
        output = run(argparse.Namespace(command="ls", store=store.root, target=None, entries=False))
    except (CheckpointError, OSError) as exc:
        output = Output(None, [f"{store!r}: {exc}"])
    return render_html([f"checkpoint store {store.root}", *output.blocks])


def _execute(args: argparse.Namespace) -> Any:
    from IPython.core.error import UsageError

    from ..exceptions import CheckpointError

    try:
        output = run(args)
    except (CheckpointError, OSError) as exc:
        raise UsageError(str(exc)) from None
    return output.data if getattr(args, "json", False) else Rendered(output)


_magics: dict[str, Callable[[str], Any]] = {}


def _build() -> dict[str, Callable[[str], Any]]:
    """The magic functions (IPython is imported here, not when the module is)."""
    if _magics:
        return _magics
    from IPython.core.magic_arguments import magic_arguments, parse_argstring

    @magic_arguments()
    def checkpoint_store(line: str) -> Any:
        """Inspect, budget and check the checkpoint store (the checkpoint-magic CLI, as HTML tables)."""
        return _execute(parse_argstring(checkpoint_store, line))

    @magic_arguments()
    def checkpoint_why(line: str) -> Any:
        """Why NAME recomputed although entries existed (the code changed, an input changed, a new input)."""
        args = parse_argstring(checkpoint_why, line)
        args.command = "why"
        return _execute(args)

    # The command line's own commands and options (one definition, the same validation).
    add_commands(checkpoint_store.parser)
    add_command_arguments(checkpoint_why.parser, "why")
    for func in (checkpoint_store, checkpoint_why):
        func.__doc__ = func.parser.format_help()
    _magics.update(checkpoint_store=checkpoint_store, checkpoint_why=checkpoint_why)
    return _magics


def register(ip: Any) -> None:
    """Register ``%checkpoint_store`` and ``%checkpoint_why``, and the HTML view of a :class:`Store`."""
    for name, func in _build().items():
        ip.register_magic_function(func, magic_kind="line", magic_name=name)
    ip.display_formatter.formatters["text/html"].for_type(Store, store_html)


def unregister(ip: Any) -> None:
    """Remove what :func:`register` added (only if it is still ours)."""
    html = ip.display_formatter.formatters["text/html"]
    if html.type_printers.get(Store) is store_html:
        html.pop(Store)
    table = ip.magics_manager.magics["line"]
    for name, func in _build().items():
        if table.get(name) is func:
            del table[name]
            user = ip.magics_manager.user_magics
            if getattr(user, name, None) is func:
                delattr(user, name)
