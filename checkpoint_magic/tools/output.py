"""What a command returns and how it reads as text: :class:`Output`, :class:`Table`.

The notebook magics render the same blocks as HTML
(:func:`checkpoint_magic.notebook.inspection.render_html`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Output", "Table", "plural", "render_text", "shorten"]


@dataclass
class Table:
    """Rows of strings under headers; columns listed in ``right`` are right-aligned.

    Parameters
    ----------
    headers : list of str
        Column headers.
    rows : list of list of str
        The rows, one string per column.
    right : set of int, optional
        Indices of the right-aligned columns (numbers, sizes).
    title : str, default=""
        A line shown above the table.
    """

    headers: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)
    title: str = ""


@dataclass
class Output:
    """A command's result: ``data`` for ``--json``, ``blocks`` (tables and lines) for people.

    Parameters
    ----------
    data : object
        JSON-serialisable result (dicts, lists, strings, numbers).
    blocks : list of Table or str, optional
        What :func:`render_text` (or the notebook's HTML) shows, in order.
    code : int, default=0
        The command line's exit code (1: ``verify`` found damage it did not fix).
    """

    data: Any
    blocks: list[Table | str] = field(default_factory=list)
    code: int = 0


def render_text(blocks: Sequence[Table | str]) -> str:
    """Plain-text rendering of an output's blocks (aligned columns, two spaces apart).

    Parameters
    ----------
    blocks : sequence of Table or str
        The blocks of an :class:`Output`.

    Returns
    -------
    str
        The lines, without a final newline.

    Examples
    --------
    >>> table = Table(["NAME", "SIZE"], [["a", "1 B"], ["bb", "10 KiB"]], right={1})
    >>> print(render_text([table]))
    NAME    SIZE
    a        1 B
    bb    10 KiB
    """
    out: list[str] = []
    for block in blocks:
        if isinstance(block, str):
            out.append(block)
            continue
        if block.title:
            out.append(block.title)
        widths = [
            max([len(h)] + [len(r[i]) for r in block.rows]) for i, h in enumerate(block.headers)
        ]
        for row in [block.headers, *block.rows]:
            cells = [
                c.rjust(w) if i in block.right else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ]
            out.append("  ".join(cells).rstrip())
    return "\n".join(out)


def plural(count: int, word: str) -> str:
    """``count`` and ``word``, in the plural unless ``count`` is 1.

    Parameters
    ----------
    count : int
        How many.
    word : str
        A noun in the singular (a final ``y`` becomes ``ies``).

    Returns
    -------
    str
        For example ``'1 entry'`` or ``'2 entries'``.

    Examples
    --------
    >>> plural(1, "entry"), plural(2, "entry"), plural(0, "blob")
    ('1 entry', '2 entries', '0 blobs')
    """
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def shorten(text: str, width: int = 40) -> str:
    """``text`` cut to ``width`` characters, an ellipsis marking the cut.

    Parameters
    ----------
    text : str
        A cell of a table.
    width : int, default 40
        The most characters shown.

    Returns
    -------
    str
        ``text`` itself when it fits.

    Examples
    --------
    >>> shorten("abcdef", 4)
    'abc…'
    """
    return text if len(text) <= width else text[: width - 1] + "…"
