"""The ``checkpoint-magic`` command line: parse the options, run a command, print its output.

The commands are plain functions in :mod:`checkpoint_magic.tools.commands` returning an
:class:`~checkpoint_magic.tools.output.Output` (both re-exported here), and their options
are defined in :mod:`checkpoint_magic.tools.options`, all shared with the notebook magics;
the user manual is the README's "Inspecting and maintaining the store". Exit codes: 0 success, 1 ``verify`` found damage it did not fix,
2 a usage error or an error that stopped the command (one line on stderr). Nothing here
unpickles a stored value, so inspecting any store is safe.

Examples
--------
>>> import tempfile
>>> main(["--store", tempfile.mkdtemp(), "du"])  # doctest: +NORMALIZE_WHITESPACE
AREA     FILES  SIZE
objects      0   0 B
entries      0   0 B
tmp          0   0 B
state        0   0 B
total        0   0 B
0
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import sys
from collections.abc import Sequence

from ..exceptions import CheckpointError
from ..store.core import Store
from .commands import (
    COMMANDS,
    call,
    clear_output,
    du_output,
    gc_output,
    ls_output,
    pin_output,
    report_output,
    show_output,
    upgrade_output,
    verify_output,
    why_output,
)
from .options import add_command_arguments, add_commands, build_parser
from .output import Output, Table, render_text

__all__ = [
    "COMMANDS",
    "Output",
    "Table",
    "add_command_arguments",
    "add_commands",
    "build_parser",
    "call",
    "clear_output",
    "du_output",
    "gc_output",
    "ls_output",
    "main",
    "pin_output",
    "render_text",
    "report_output",
    "run",
    "show_output",
    "suggest_command",
    "upgrade_output",
    "verify_output",
    "why_output",
]

logger = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> Output:
    """Run the parsed command line ``args`` (``args.command`` on the store ``args.store``).

    Parameters
    ----------
    args : argparse.Namespace
        What :func:`build_parser` parsed; ``store`` may be missing or ``None`` (the default
        store).

    Returns
    -------
    Output
        What the command returned.

    Raises
    ------
    CheckpointError
        An error that stops the command (unknown key, not a store, a newer format).

    Examples
    --------
    >>> import tempfile
    >>> out = run(argparse.Namespace(command="ls", store=tempfile.mkdtemp()))
    >>> out.code, out.data["namespaces"], out.blocks[0].startswith("no entries in")
    (0, [], True)
    """
    options = {"json": False, **vars(args)}  # without --json, a command may do less (ls)
    return call(args.command, Store(getattr(args, "store", None)), options)


def suggest_command(word: str) -> str | None:
    """The command closest to a mistyped one, if any is close (:mod:`difflib`).

    Parameters
    ----------
    word : str
        What the user typed where a command was expected.

    Returns
    -------
    str or None
        The closest command name, or ``None`` when none is close.

    Examples
    --------
    >>> suggest_command("lss"), suggest_command("verfy"), suggest_command("xyzzy")
    ('ls', 'verify', None)
    """
    close = difflib.get_close_matches(word, list(COMMANDS), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_command(argv: Sequence[str]) -> str | None:
    """The first word of ``argv`` where a command is expected, if it is not one."""
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--store":
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        return None if word in COMMANDS else word
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``checkpoint-magic`` (and ``python -m checkpoint_magic``).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments; ``sys.argv[1:]`` when ``None``.

    Returns
    -------
    int
        The exit code: 0 success, 1 ``verify`` found damage it did not fix, 2 a usage error
        or an error that stopped the command.
    """
    logging.basicConfig(
        level=logging.WARNING, format="checkpoint-magic: %(levelname)s: %(message)s"
    )
    argv = sys.argv[1:] if argv is None else list(argv)
    typo = _unknown_command(argv)
    if typo is not None:
        near = suggest_command(typo)
        hint = f"; did you mean {near!r}?" if near else f"; the commands are: {', '.join(COMMANDS)}"
        print(f"checkpoint-magic: error: unknown command {typo!r}{hint}", file=sys.stderr)
        return 2
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed the usage error
        return int(exc.code or 0)
    try:
        output = run(args)
    except (CheckpointError, OSError) as exc:  # 1 is reserved for "verify found damage"
        print(f"checkpoint-magic: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    try:
        if getattr(args, "json", False):
            print(json.dumps(output.data, indent=2, sort_keys=True, default=str))
        else:
            print(render_text(output.blocks))
        sys.stdout.flush()
    except BrokenPipeError:  # `checkpoint-magic ls | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return output.code


def _one_line(exc: BaseException) -> str:
    """An error as one line: its message, or its type for an error without one."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
