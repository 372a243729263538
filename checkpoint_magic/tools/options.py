"""The commands and options of ``checkpoint-magic`` and ``%checkpoint_store``, defined once.

:mod:`checkpoint_magic.tools.cli` parses its command line with :func:`build_parser`, and
:mod:`checkpoint_magic.notebook.inspection` adds the same commands (:func:`add_commands`,
:func:`add_command_arguments`) to its magics' parsers, so both accept and validate the
same options (sizes, ages, a grace period, a positive ``--keep-versions``, a non-empty
``--store``) with the same messages.

Examples
--------
>>> args = build_parser().parse_args(["verify", "--fix", "--grace", "0"])
>>> args.command, args.fix, args.drop_unsigned, args.grace
('verify', True, False, 0.0)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..exceptions import InvalidArgumentError

__all__ = ["add_command_arguments", "add_commands", "build_parser"]


def _arg_type(parse: Callable[[str], Any], keep: bool = False) -> Callable[[str], Any]:
    """An argparse ``type``: ``parse`` checks the value; the parsed value is kept if ``keep``."""

    def check(value: str) -> Any:
        try:
            parsed = parse(value)
        except InvalidArgumentError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return parsed if keep else value

    check.__name__ = parse.__name__
    return check


def _store_path(value: str) -> str:
    if not value.strip():
        raise InvalidArgumentError(
            "--store needs a directory (an empty path would mean the current directory)"
        )
    return value


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise InvalidArgumentError(f"invalid number {value!r}: give a whole number >= 1")
    return n


def _add_common(parser: argparse.ArgumentParser) -> None:
    """``--store`` and ``--json``, accepted before and after the command's name."""
    parser.add_argument(
        "--store",
        metavar="PATH",
        type=_arg_type(_store_path),
        default=argparse.SUPPRESS,
        help="the store directory (default: $CHECKPOINT_MAGIC_DIR, else ./.Lutil-checkpoint)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the data as JSON (in a notebook: as dicts and lists) instead of tables",
    )


def _command_table() -> list[tuple[str, str, list[tuple[Any, dict[str, Any]]]]]:
    """Every command: name, help, and its arguments as ``(names, add_argument options)``."""
    from .maintenance import parse_age, parse_grace, parse_size

    key = ("target", {"metavar": "KEY", "help": "an entry key or a unique prefix of one"})
    grace = (
        "--grace",
        {
            "type": _arg_type(parse_grace, keep=True),
            "metavar": "SECONDS",
            "help": "leave unused files younger than this alone (default 0: "
            "free them at once; commits in flight are protected by their leases)",
        },
    )
    flag = {"action": "store_true"}
    return [
        ("ls", "entries grouped by function, block or cell", [
            ("target", {"metavar": "NAME", "nargs": "?", "help": "list the entries of this name only"}),
            (("-l", "--entries"), {**flag, "help": "one row per entry instead of per name"}),
        ]),
        ("show", "details of one entry", [key]),
        ("du", "disk usage of the store", []),
        ("clear", "remove the entries of NAME (or every entry), except pinned ones, and their blobs", [
            ("target", {"metavar": "NAME", "nargs": "?", "help": "the function, block or cell (default: all)"}),
            ("--force", {**flag, "help": "remove pinned entries too"}),
            (("-y", "--yes"), {**flag, "help": "clear every entry without asking (needed "
                               "without NAME when not run from a terminal)"}),
            grace,
        ]),
        ("pin", "never evict this entry", [key]),
        ("unpin", "let gc evict this entry again", [key]),
        ("verify", "check every manifest and blob", [
            ("--fix", {**flag, "help": "remove damaged entries and blobs, and leftovers "
                       "(never entries whose only problem is their signature)"}),
            ("--drop-unsigned", {**flag, "help": "remove the entries whose signature fails "
                                 "(check CHECKPOINT_MAGIC_SECRET first)"}),
            grace,
        ]),
        ("gc", "evict least recently used entries to meet budgets; free unreferenced blobs", [
            ("--max-size", {"type": _arg_type(parse_size), "metavar": "SIZE",
                            "help": "keep the store within SIZE (e.g. 10GB, 500MiB)"}),
            ("--max-age", {"type": _arg_type(parse_age), "metavar": "AGE",
                           "help": "evict entries unused for AGE (e.g. 30d, 12h)"}),
            ("--keep-versions", {"type": _arg_type(_positive_int, keep=True), "metavar": "N",
                                 "help": "keep the N most recently used code versions of each name"}),
            ("--dry-run", {**flag, "help": "show what would be removed, remove nothing"}),
            grace,
        ]),
        ("upgrade", "move the entries of a store of format 1 into shard folders (format 2; run "
         "it when no other process uses the store)", []),
        ("why", "why NAME recomputed although entries existed", [
            ("target", {"metavar": "NAME", "help": "the function, block or cell"}),
        ]),
        ("report", "an HTML page with plots: time saved, size over time, versions per name", [
            ("--html", {"metavar": "FILE", "help": "write the page to FILE (command line default: "
                        "checkpoint-report.html; in a notebook the report is shown instead)"}),
        ]),
    ]  # fmt: skip


def add_command_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add the arguments of one command (and ``--store``, ``--json``) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser to extend (``%checkpoint_why``'s, or a subcommand's).
    command : str
        The command whose arguments are added (``"why"``, ``"gc"``, ...).

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_command_arguments(parser, "why")
    >>> parser.parse_args(["fit", "--json"]).target
    'fit'
    """
    _add_common(parser)
    for name, _, arguments in _command_table():
        if name == command:
            for names, options in arguments:
                parser.add_argument(*((names,) if isinstance(names, str) else names), **options)


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add every command, with its options, to ``parser`` (the CLI's, or ``%checkpoint_store``'s).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser to extend; the chosen command is parsed into ``command``.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_commands(parser)
    >>> parser.parse_args(["gc", "--keep-versions", "2"]).keep_versions
    2
    """
    _add_common(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, help_, _ in _command_table():
        add_command_arguments(sub.add_parser(name, help=help_, description=help_), name)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``checkpoint-magic``.

    Returns
    -------
    argparse.ArgumentParser
        A parser with every command (:func:`add_commands`) and the exit codes in its help.

    Examples
    --------
    >>> args = build_parser().parse_args(["gc", "--max-size", "10GB", "--json"])
    >>> args.command, args.max_size, args.json
    ('gc', '10GB', True)
    """
    parser = argparse.ArgumentParser(
        prog="checkpoint-magic",
        description="Inspect, budget and check a checkpoint_magic store.",
        epilog="Exit codes: 0 ok, 1 verify found damage, 2 usage error or an error that stopped "
        "the command. Loading a pickle from someone else's store without signed entries "
        "(CHECKPOINT_MAGIC_SECRET) is running their code.",
    )
    add_commands(parser)
    return parser
