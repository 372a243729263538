"""The ``checkpoint-magic`` command line: inspect, budget, check and repair a checkpoint store.

Commands (each accepts ``--store PATH`` and ``--json``, before or after its name)::

    checkpoint-magic ls [NAME] [-l]      entries grouped by function, block or cell
    checkpoint-magic show KEY            one entry's manifest (a unique key prefix is enough)
    checkpoint-magic du                  disk usage, and how much gc would reclaim
    checkpoint-magic clear [NAME] [--force] [--yes]  remove the entries of NAME (or all, after asking) but pinned ones
    checkpoint-magic pin KEY / unpin KEY never evict this entry / allow it again
    checkpoint-magic verify [--fix] [--drop-unsigned]  check every manifest and blob; repair
    checkpoint-magic gc [--max-size 10GB] [--max-age 30d] [--keep-versions N] [--dry-run]
    checkpoint-magic why NAME            why NAME last recomputed although entries existed

The store is ``--store PATH``, else ``$CHECKPOINT_MAGIC_DIR``, else ``./.Lutil-checkpoint``.
``NAME`` is a namespace (``module.function``, a block or cell name) or its unique last
part. Exit codes: 0 success, 1 ``verify`` found damage it did not fix, 2 a usage error
or an error that stopped the command (unknown key, a store of a newer format, a
directory that is not a store, a file system error), with one line on stderr.

Nothing here unpickles a stored value, so inspecting any store is safe. Loading from it
is not: stored values are pickles, and loading a pickle from someone else's store
without signed entries (``CHECKPOINT_MAGIC_SECRET``) is running their code.

This module also holds what the notebook magics (:mod:`checkpoint_magic.notebook.inspection`)
share with it: the commands and their options (:func:`add_commands`), the tables and
texts (:func:`run` returns an :class:`Output`).

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
import datetime
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..exceptions import CheckpointError
from ..store.core import Store
from .options import add_command_arguments, add_commands, build_parser

__all__ = [
    "COMMANDS",
    "Output",
    "Table",
    "add_command_arguments",
    "add_commands",
    "build_parser",
    "main",
    "render_text",
    "run",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------- output
@dataclass
class Table:
    """Rows of strings under headers; columns listed in ``right`` are right-aligned."""

    headers: list[str]
    rows: list[list[str]]
    right: set[int] = field(default_factory=set)
    title: str = ""


@dataclass
class Output:
    """A command's result: ``data`` for ``--json``, ``blocks`` (tables and lines) for people."""

    data: Any
    blocks: list[Table | str] = field(default_factory=list)
    code: int = 0


def render_text(blocks: Sequence[Table | str]) -> str:
    """Plain-text rendering of an output's blocks (aligned columns, two spaces apart).

    Examples
    --------
    >>> print(render_text([Table(["NAME", "SIZE"], [["a", "1 B"], ["bb", "10 KiB"]], right={1})]))
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


def format_size(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    Examples
    --------
    >>> format_size(0), format_size(1536), format_size(3 * 2**30)
    ('0 B', '1.5 KiB', '3.0 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def format_duration(seconds: float) -> str:
    """A short human duration: ``'0.35 s'``, ``'12 s'``, ``'4.2 min'``, ``'3.1 h'``, ``'2.0 d'``.

    Examples
    --------
    >>> format_duration(0.354), format_duration(252), format_duration(7 * 86400)
    ('0.35 s', '4.2 min', '7.0 d')
    """
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def format_ago(when: float | None, now: float | None = None) -> str:
    """``'5 min ago'``; ``'never'`` for ``None``.

    Examples
    --------
    >>> format_ago(100.0, now=400.0), format_ago(None)
    ('5 min ago', 'never')
    """
    if when is None:
        return "never"
    delta = (time.time() if now is None else now) - when
    if delta < 1:
        return "just now"
    if delta < 60:
        return f"{delta:.0f} s ago"
    if delta < 7200:
        return f"{delta / 60:.0f} min ago"
    if delta < 172800:
        return f"{delta / 3600:.0f} h ago"
    return f"{delta / 86400:.0f} d ago"


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).isoformat(sep=" ", timespec="seconds")


def _n(count: int, word: str) -> str:
    """``'1 entry'``, ``'2 entries'``."""
    if count == 1:
        return f"1 {word}"
    return f"{count} {word[:-1] + 'ies' if word.endswith('y') else word + 's'}"


def _short(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------- commands
def _ls(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import list_entries, resolve_namespace, summarize

    name = getattr(args, "target", None)
    entries = list_entries(store, resolve_namespace(store, name) if name else None)
    groups = summarize(entries)
    data = {
        "store": str(store.root),
        "namespaces": [
            {**g.to_dict(), "items": [e.to_dict() for e in entries if e.namespace == g.namespace]}
            for g in groups
        ],
    }
    if not entries:
        return Output(data, [f"no entries in {store.root}"])
    now = time.time()
    blocks: list[Table | str] = []
    if name or getattr(args, "entries", False):
        rows = [
            [
                e.key[:12],
                e.namespace,
                e.code[:8],
                _short(", ".join(f"{k}={v[:6]}" for k, v in sorted(e.inputs.items()))),
                format_size(e.size),
                format_ago(e.created, now),
                format_ago(e.last_used, now) if e.hits else "never",
                str(e.hits),
                format_duration(e.saved),
                "yes" if e.pinned else "",
            ]
            for e in sorted(entries, key=lambda e: (e.namespace, -e.last_used))
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
        rows = [
            [
                g.namespace,
                g.kind,
                str(g.versions),
                str(g.entries),
                _short(", ".join(g.inputs)),
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
        blocks.append(Table(headers, rows, right={2, 3, 5, 8, 9}))
    total = sum(e.size for e in entries)
    saved = sum(e.saved for e in entries)
    blocks.append(
        f"{_n(len(groups), 'name')}, {_n(len(entries), 'entry')}, {format_size(total)}; "
        f"compute time saved: {format_duration(saved)}  (store: {store.root})"
    )
    return Output(data, blocks)


def _show(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import find_entry

    e = find_entry(store, args.target)
    m = e.manifest
    rows = [
        ["name", e.namespace],
        ["key", e.key],
        ["kind", e.kind],
        ["code", e.code],
        *[[f"  code part {k}", v] for k, v in sorted((m.get("code_parts") or {}).items())],
        *[[f"  input {k}", v] for k, v in sorted(e.inputs.items())],
    ]
    for out_name, rec in sorted((m.get("outputs") or {}).items()):
        if isinstance(rec, dict):
            where = "inline" if "inline" in rec else f"{len(rec.get('blobs') or [])} blob(s)"
            rows.append(
                [
                    f"  output {out_name}",
                    f"{rec.get('codec', '?')}, {format_size(rec.get('size', 0))}, {where}",
                ]
            )
    rows += [
        ["size", format_size(e.size)],
        ["created", f"{_iso(e.created)} ({format_ago(e.created)})"],
        ["duration", format_duration(e.duration)],
        ["last used", f"{_iso(e.last_used)} ({format_ago(e.last_used)})" if e.hits else "never"],
        ["hits", str(e.hits)],
        ["time saved", format_duration(e.saved)],
        ["pinned", "yes" if e.pinned else "no"],
        ["python", str(m.get("python", ""))],
        ["checkpoint_magic", str(m.get("checkpoint_magic", ""))],
        ["manifest", str(e.path)],
    ]
    if m.get("meta"):
        rows.append(["meta", _short(json.dumps(m["meta"], default=str), 80)])
    return Output({**e.to_dict(), "manifest": m}, [Table(["FIELD", "VALUE"], rows)])


def _du(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import du

    r = du(store)
    rows = [
        ["objects", str(r.objects_files), format_size(r.objects_bytes)],
        ["entries", str(r.entries_files), format_size(r.entries_bytes)],
        ["tmp", str(r.tmp_files), format_size(r.tmp_bytes)],
        ["state", str(r.state_files), format_size(r.state_bytes)],
        [
            "total",
            str(r.objects_files + r.entries_files + r.tmp_files + r.state_files),
            format_size(r.total_bytes),
        ],
    ]
    blocks: list[Table | str] = [Table(["AREA", "FILES", "SIZE"], rows, right={1, 2})]
    if r.reclaimable_files:
        blocks.append(
            f"reclaimable: {r.reclaimable_files} blobs no entry refers to, {format_size(r.reclaimable_bytes)} "
            "(`checkpoint-magic gc` frees them)"
        )
    return Output(r.to_dict(), blocks)


def _clear(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import clear, resolve_namespace

    name = getattr(args, "target", None)
    if not name and not getattr(args, "yes", False) and not _confirmed_clear_all(store):
        return Output(
            {"removed": {}, "cancelled": True}, ["cancelled: nothing was removed"], code=1
        )
    report = clear(
        store,
        resolve_namespace(store, name) if name else None,
        force=bool(getattr(args, "force", False)),
        grace=_grace_of(args),
    )
    blocks: list[Table | str] = []
    if not report.removed and not report.freed_blobs:
        blocks.append(f"nothing to clear in {store.root}")
    else:
        if report.removed:
            rows = [[ns, str(n)] for ns, n in sorted(report.removed.items())]
            blocks.append(Table(["REMOVED", "ENTRIES"], rows, right={1}))
        blocks.append(
            f"removed {_n(sum(report.removed.values()), 'entry')} and {_n(report.freed_blobs, 'blob')} "
            f"({format_size(report.freed_bytes)}) from {store.root}"
        )
    if report.kept_pinned:
        blocks.append(
            f"kept {_n(report.kept_pinned, 'pinned entry')} (`clear --force` removes them)"
        )
    blocks += _pending(report.pending_blobs, report.pending_bytes)
    return Output(report.to_dict(), blocks)


def _confirmed_clear_all(store: Store) -> bool:
    """Ask before `clear` without a name wipes every entry (refuse when nobody can answer)."""
    from ..exceptions import InvalidArgumentError
    from .maintenance import list_entries

    count = len(list_entries(store))  # also refuses a directory that is not a store
    if not count:
        return True
    what = f"remove all {_n(count, 'entry')} of {store.root} (every function, block and cell)"
    if not sys.stdin or not sys.stdin.isatty():
        raise InvalidArgumentError(
            f"`clear` without NAME would {what}; pass --yes to confirm, or name what to clear"
        )
    return input(f"{what}? [y/N] ").strip().lower() in ("y", "yes")


def _pending(blobs: int, size: int) -> list[Table | str]:
    if not blobs:
        return []
    return [
        f"{_n(blobs, 'unused blob')} ({format_size(size)}) kept for the grace period (written or "
        "reused in the last --grace seconds: a commit may be in progress); a later "
        "`checkpoint-magic gc` frees them"
    ]


def _grace_of(args: argparse.Namespace) -> float:
    from .maintenance import GRACE_SECONDS

    grace = getattr(args, "grace", None)
    return GRACE_SECONDS if grace is None else grace


def _pin(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import pin, unpin

    entry = (pin if args.command == "pin" else unpin)(store, args.target)
    verb = "pinned" if entry.pinned else "unpinned"
    return Output(entry.to_dict(), [f"{verb} {entry.key} ({entry.namespace})"])


def _verify(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import verify

    fix = bool(getattr(args, "fix", False))
    drop = bool(getattr(args, "drop_unsigned", False))
    r = verify(store, fix=fix, drop_unsigned=drop, grace=_grace_of(args))
    blocks: list[Table | str] = []
    found = r.problems + r.garbage
    if found:
        rows = [[p.kind, p.path, _short(p.detail, 70), "yes" if p.fixed else "no"] for p in found]
        blocks.append(Table(["PROBLEM", "PATH", "DETAIL", "FIXED"], rows))
    status = "ok" if not r.problems else ("repaired" if r.ok else "DAMAGED")
    line = f"{status}: {r.entries} entries and {r.blobs} blobs checked, {len(r.problems)} problems, {len(r.garbage)} leftovers"
    if any(not p.fixed and p.kind != "signature" for p in r.problems):
        line += "; run `checkpoint-magic verify --fix` to remove the damaged entries (they are recomputed when next needed)"
    elif r.garbage and not fix:
        line += "; `checkpoint-magic verify --fix` or `gc` removes the leftovers"
    blocks.append(line)
    if r.unsigned:
        blocks.append(
            f"{_n(r.unsigned, 'entry')} with a failing signature kept (--fix never removes "
            "them): check CHECKPOINT_MAGIC_SECRET (a typo, or a secret set on a store written without "
            "one); `checkpoint-magic verify --drop-unsigned` removes them"
        )
    return Output(r.to_dict(), blocks, code=0 if r.ok else 1)


def _gc(store: Store, args: argparse.Namespace) -> Output:
    from .maintenance import gc

    dry = bool(getattr(args, "dry_run", False))
    r = gc(
        store,
        max_size=getattr(args, "max_size", None),
        max_age=getattr(args, "max_age", None),
        keep_versions=getattr(args, "keep_versions", None),
        dry_run=dry,
        grace=_grace_of(args),
        full=True,
    )
    blocks: list[Table | str] = []
    if r.evicted:
        rows = [
            [
                e.namespace,
                e.key[:12],
                format_size(e.size),
                format_ago(e.last_used) if e.hits else "never",
                str(e.hits),
            ]
            for e in r.evicted
        ]
        title = "would evict:" if dry else "evicted:"
        blocks.append(
            Table(["NAME", "KEY", "SIZE", "LAST USED", "HITS"], rows, right={2, 4}, title=title)
        )
    verb = "would free" if dry else "freed"
    blocks.append(
        f"{verb} {_n(len(r.evicted), 'entry')}, {_n(r.freed_blobs, 'blob')}, {_n(r.removed_tmp, 'staging leftover')}, "
        f"{format_size(r.freed_bytes)}; store {format_size(r.size_before)} -> {format_size(r.size_after)}"
    )
    if r.over_budget:
        blocks.append("still over --max-size: the entries left are pinned")
    blocks += _pending(r.pending_blobs, r.pending_bytes)
    return Output(r.to_dict(), blocks)


def _why(store: Store, args: argparse.Namespace) -> Output:
    from ..explain import describe_difference, last_miss
    from .maintenance import list_entries, resolve_namespace

    ns = resolve_namespace(store, args.target)
    miss = last_miss(store, ns)
    if miss:
        data = {
            "namespace": ns,
            "reason": miss.get("reason"),
            "time": miss.get("time"),
            "source": "last miss",
        }
        when = miss.get("time")
        ago = f" ({format_ago(float(when))})" if isinstance(when, (int, float)) else ""
        return Output(data, [f"{ns} last recomputed{ago} because: {data['reason']}"])
    entries = sorted(list_entries(store, ns), key=lambda e: e.created)
    if len(entries) < 2:
        text = "it has one entry and has not missed since" if entries else "it has no entry"
        return Output(
            {"namespace": ns, "reason": None, "time": None, "source": None},
            [f"{ns}: no recorded miss; {text}"],
        )
    old, new = entries[-2], entries[-1]
    reason = describe_difference(old.manifest, new.code, new.manifest.get("code_parts"), new.inputs)
    data = {"namespace": ns, "reason": reason, "time": new.created, "source": "entries"}
    return Output(
        data,
        [
            f"{ns}: the newest entry ({format_ago(new.created)}) differs from the previous one: {reason}"
        ],
    )


#: command -> (function, what its positional argument is: "required", "optional" or None)
COMMANDS: dict[str, tuple[Callable[[Store, argparse.Namespace], Output], str | None]] = {
    "ls": (_ls, "optional"),
    "show": (_show, "required"),
    "du": (_du, None),
    "clear": (_clear, "optional"),
    "pin": (_pin, "required"),
    "unpin": (_pin, "required"),
    "verify": (_verify, None),
    "gc": (_gc, None),
    "why": (_why, "required"),
}


def run(args: argparse.Namespace) -> Output:
    """Run the command ``args.command`` on the store ``args.store`` (the CLI and magics call this).

    Examples
    --------
    >>> import tempfile
    >>> out = run(argparse.Namespace(command="ls", store=tempfile.mkdtemp()))
    >>> out.code, out.data["namespaces"], out.blocks[0].startswith("no entries in")
    (0, [], True)
    """
    store = Store(getattr(args, "store", None))
    func, _ = COMMANDS[args.command]
    return func(store, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``checkpoint-magic`` (and ``python -m checkpoint_magic``); returns the exit code."""
    logging.basicConfig(
        level=logging.WARNING, format="checkpoint-magic: %(levelname)s: %(message)s"
    )
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
