"""Notebook inspection magics: ``%checkpoint_store <command>`` and ``%checkpoint_why NAME``.

The command line's own commands and options
(:func:`checkpoint_magic.tools.options.add_commands`), rendered as HTML tables; errors that
stop a command raise :class:`~IPython.core.error.UsageError`. Also the HTML view of a
:class:`~checkpoint_magic.store.Store` (:func:`store_html`). IPython is imported only when
:func:`register` runs.

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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from ..store.core import Store

from ..tools.cli import (
    Output,
    Table,
    add_command_arguments,
    add_commands,
    call,
    ls_output,
    render_text,
)

__all__ = ["Rendered", "register", "render_html", "store_html", "unregister"]

_STYLE = "border-collapse:collapse;font-size:0.9em"
_CELL = "padding:2px 8px;border-bottom:1px solid #ddd"


def render_html(blocks: Sequence[Table | str]) -> str:
    """HTML rendering of an output's blocks: tables for tables, paragraphs for lines.

    Parameters
    ----------
    blocks : sequence of Table or str
        The blocks of an :class:`~checkpoint_magic.tools.cli.Output`.

    Returns
    -------
    str
        One ``<div class="checkpoint-magic">`` with the blocks, text escaped.

    Examples
    --------
    >>> html = render_html([Table(["A"], [["<x>"]]), "done"])
    >>> html.startswith('<div class="checkpoint-magic"><table'), "&lt;x&gt;" in html
    (True, True)
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

    Parameters
    ----------
    output : Output
        The command's result (:func:`checkpoint_magic.tools.cli.run`).

    Attributes
    ----------
    data : object
        What ``--json`` would return.
    code : int
        The command line's exit code.
    """

    def __init__(self, output: Output):
        self.data = output.data
        self.code = output.code
        self._blocks = output.blocks

    def _repr_html_(self) -> str:
        return render_html(self._blocks)

    def __repr__(self) -> str:
        return render_text(self._blocks)


class _Html:
    """HTML shown as the result of a magic (its text form says how to get a file)."""

    def __init__(self, text: str):
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return "<checkpoint store report: shown as HTML in a notebook; use --html FILE for a file>"


def store_html(store: Store) -> str:
    """The ``ls`` table of a store, as HTML (registered with IPython for ``Store``); never raises.

    Parameters
    ----------
    store : Store
        The store to show.

    Returns
    -------
    str
        The HTML table; an error that stops the listing is shown as a line instead.
    """
    from ..exceptions import CheckpointError

    try:
        output = ls_output(store, json=False)
    except (CheckpointError, OSError) as exc:
        output = Output(None, [f"{store!r}: {exc}"])
    return render_html([f"checkpoint store {store.location}", *output.blocks])


def _execute(args: argparse.Namespace) -> Any:
    """Call the command's function (:data:`checkpoint_magic.tools.cli.COMMANDS`) with the options."""
    from IPython.core.error import UsageError

    from ..exceptions import CheckpointError
    from ..store.core import Store

    store = Store(getattr(args, "store", None))
    if args.command == "report" and not getattr(args, "html", None):
        from ..tools.report import report_html

        return _Html(report_html(store, page=False))  # shown in the notebook, no file
    try:
        output = call(args.command, store, vars(args))
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
        """Inspect, budget and check the checkpoint store (the checkpoint-magic CLI, as HTML)."""
        from IPython.core.error import UsageError

        from ..tools.cli import suggest_command

        try:
            args = parse_argstring(checkpoint_store, line)
        except UsageError as exc:
            words = line.split()
            typo = next((w for w in words if not w.startswith("-")), None)
            near = suggest_command(typo) if typo and "invalid choice" in str(exc) else None
            if near is None:
                raise
            raise UsageError(f"{exc}; did you mean %checkpoint_store {near}?") from None
        return _execute(args)

    @magic_arguments()
    def checkpoint_why(line: str) -> Any:
        """Why NAME recomputed although entries existed (code changed, an input changed, ...)."""
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
    """Register ``%checkpoint_store`` and ``%checkpoint_why``, and the HTML view of a ``Store``.

    The store knows nothing of notebooks: its HTML rendering (:func:`store_html`) is handed
    to IPython's HTML formatter here, for the :class:`~checkpoint_magic.store.Store` type.

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell to register in.
    """
    from ..store.core import Store

    for name, func in _build().items():
        ip.register_magic_function(func, magic_kind="line", magic_name=name)
    ip.display_formatter.formatters["text/html"].for_type(Store, store_html)


def unregister(ip: Any) -> None:
    """Remove what :func:`register` added (only if it is still ours).

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell to remove them from.
    """
    from ..store.core import Store

    html_formatter = ip.display_formatter.formatters["text/html"]
    if html_formatter.type_printers.get(Store) is store_html:
        html_formatter.pop(Store)
    table = ip.magics_manager.magics["line"]
    for name, func in _build().items():
        if table.get(name) is func:
            del table[name]
            user = ip.magics_manager.user_magics
            if getattr(user, name, None) is func:
                delattr(user, name)
