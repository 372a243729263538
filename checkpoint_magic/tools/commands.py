"""The commands of ``checkpoint-magic`` as plain functions: ``func(store, ...) -> Output``.

Each command returns an :class:`~checkpoint_magic.tools.output.Output` (``data`` for
``--json``, tables and lines for people); :mod:`checkpoint_magic.tools.cli` and the notebook magics
(:mod:`checkpoint_magic.notebook.inspection`) only parse options and render it. Nothing
here unpickles a stored value.
"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import json
from collections.abc import Callable, Mapping
from typing import Any

from ..store.core import Store
from ..ui.units import format_ago, format_duration, format_size
from .listing import ls_output
from .output import Output, Table, plural, shorten

__all__ = [
    "COMMANDS",
    "call",
    "clear_output",
    "du_output",
    "gc_output",
    "ls_output",
    "pin_output",
    "report_output",
    "show_output",
    "verify_output",
    "why_output",
]


def _iso(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).isoformat(sep=" ", timespec="seconds")


def show_output(store: Store, target: str) -> Output:
    """``show``: one entry's manifest (``target`` is a unique key prefix) and its inputs' lineage.

    Parameters
    ----------
    store : Store
        The store to work on.
    target : str
        The entry's key, or a prefix of it that only it has.

    Returns
    -------
    Output
        The entry's fields, code parts and input fingerprints.

    Raises
    ------
    InvalidArgumentError
        If no entry's key starts with ``target``, or several do.
    """
    from ..core.lineage import describe
    from .maintenance import find_entry

    e = find_entry(store, target)
    m = e.manifest
    rows = [
        ["name", e.namespace],
        ["key", e.key],
        ["kind", e.kind],
        ["code", e.code],
        *[[f"  code part {k}", v] for k, v in sorted((m.get("code_parts") or {}).items())],
        *[[f"  input {k}", v] for k, v in sorted(e.inputs.items())],
        *[["lineage", describe(link)] for link in m.get("lineage") or []],
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
        rows.append(["meta", shorten(json.dumps(m["meta"], default=str), 80)])
    return Output({**e.to_dict(), "manifest": m}, [Table(["FIELD", "VALUE"], rows)])


def du_output(store: Store) -> Output:
    """``du``: disk usage by area, and what gc would reclaim.

    Parameters
    ----------
    store : Store
        The store to work on.

    Returns
    -------
    Output
        Files and bytes per area (objects, entries, tmp, state) and in total.
    """
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


def clear_output(
    store: Store,
    target: str | None = None,
    *,
    force: bool = False,
    grace: float | None = None,
    yes: bool = False,
) -> Output:
    """``clear``: remove the entries of ``target`` (or all), pinned ones only with ``force``.

    Parameters
    ----------
    store : Store
        The store to work on.
    target : str, optional
        A namespace or its unique last part; every entry when ``None``.
    force : bool, default=False
        Also remove pinned entries.
    grace : float, optional
        Seconds a blob or temporary file must be old before it is removed (so a writer
        still running keeps its files); the store's default grace period when ``None``.
    yes : bool, default=False
        Without ``target``, clear everything without asking (otherwise a terminal is asked
        and anything else refused).

    Returns
    -------
    Output
        How many entries were removed (and kept as pinned), and the blobs freed.

    Raises
    ------
    InvalidArgumentError
        If ``target`` matches no name, or the last part of several.
    """
    from .maintenance import clear, confirm_clear_all, resolve_namespace

    if not target and not yes and not confirm_clear_all(store):
        return Output(
            {"removed": {}, "cancelled": True}, ["cancelled: nothing was removed"], code=1
        )
    report = clear(
        store,
        resolve_namespace(store, target) if target else None,
        force=force,
        grace=_grace_of(grace),
    )
    blocks: list[Table | str] = []
    if not report.removed and not report.freed_blobs:
        blocks.append(f"nothing to clear in {store.location}")
    else:
        if report.removed:
            rows = [[ns, str(n)] for ns, n in sorted(report.removed.items())]
            blocks.append(Table(["REMOVED", "ENTRIES"], rows, right={1}))
        blocks.append(
            f"removed {plural(sum(report.removed.values()), 'entry')} and {plural(report.freed_blobs, 'blob')} "
            f"({format_size(report.freed_bytes)}) from {store.location}"
        )
    if report.kept_pinned:
        blocks.append(
            f"kept {plural(report.kept_pinned, 'pinned entry')} (`clear --force` removes them)"
        )
    blocks += _pending(report.pending_blobs, report.pending_bytes)
    return Output(report.to_dict(), blocks)


def _pending(blobs: int, size: int) -> list[Table | str]:
    if not blobs:
        return []
    return [
        f"{plural(blobs, 'unused blob')} ({format_size(size)}) kept for the grace period (written or "
        "reused in the last --grace seconds: a commit may be in progress); a later "
        "`checkpoint-magic gc` frees them"
    ]


def _grace_of(grace: float | None) -> float:
    from .maintenance import GRACE_SECONDS

    return GRACE_SECONDS if grace is None else grace


def pin_output(store: Store, target: str, *, command: str = "pin") -> Output:
    """``pin`` / ``unpin`` (``command``) the entry whose key starts with ``target``.

    Parameters
    ----------
    store : Store
        The store to work on.
    target : str
        The entry's key, or a prefix of it that only it has.
    command : {"pin", "unpin"}, default="pin"
        Whether to protect the entry from eviction or allow it again.

    Returns
    -------
    Output
        The entry, with its new ``pinned`` state.

    Raises
    ------
    InvalidArgumentError
        If no entry's key starts with ``target``, or several do.
    """
    from .maintenance import pin, unpin

    entry = (pin if command == "pin" else unpin)(store, target)
    verb = "pinned" if entry.pinned else "unpinned"
    return Output(entry.to_dict(), [f"{verb} {entry.key} ({entry.namespace})"])


def upgrade_output(store: Store) -> Output:
    """``upgrade``: move a format-1 store's entries into shard folders (format 2).

    Parameters
    ----------
    store : Store
        The store to work on (nothing is done to one already in the current format).

    Returns
    -------
    Output
        The formats before and after, and how many files were moved.
    """
    from ..store.upgrade import upgrade_store

    r = upgrade_store(store)
    if r.format_before == r.format_after:
        line = f"{store.location} is already in format {r.format_after}"
        moved = r.entries + r.records
        line += f"; {plural(moved, 'stray flat file')} moved into shard folders" if moved else ""
    else:
        line = (
            f"upgraded {store.location} from format {r.format_before} to {r.format_after}: "
            f"{plural(r.entries, 'manifest')} and {plural(r.records, 'record')} moved into shard folders"
        )
    return Output(dataclasses.asdict(r), [line])


def verify_output(
    store: Store, *, fix: bool = False, drop_unsigned: bool = False, grace: float | None = None
) -> Output:
    """``verify``: check every manifest and blob; repair with ``fix``.

    Parameters
    ----------
    store : Store
        The store to work on.
    fix : bool, default=False
        Repair what can be repaired (remove damaged entries and blobs, leftovers).
    drop_unsigned : bool, default=False
        With a secret set, also remove entries without a valid signature.
    grace : float, optional
        Seconds a blob or temporary file must be old before it is removed (so a writer
        still running keeps its files); the store's default grace period when ``None``.

    Returns
    -------
    Output
        The problems found (and whether fixed); ``code`` is 1 if damage remains.
    """
    from .maintenance import verify

    r = verify(store, fix=fix, drop_unsigned=drop_unsigned, grace=_grace_of(grace))
    blocks: list[Table | str] = []
    found = r.problems + r.garbage
    if found:
        rows = [[p.kind, p.path, shorten(p.detail, 70), "yes" if p.fixed else "no"] for p in found]
        blocks.append(Table(["PROBLEM", "PATH", "DETAIL", "FIXED"], rows))
    status = "ok" if not r.problems else ("repaired" if r.ok else "DAMAGED")
    line = f"{status}: {r.entries} entries and {r.blobs} blobs checked, {len(r.problems)} problems, {len(r.garbage)} leftovers"
    if any(not p.fixed and p.kind != "signature" for p in r.problems):
        line += "; run `checkpoint-magic verify --fix` to remove the damaged entries (they are recomputed when next needed)"
    elif r.garbage and not fix:
        if any(p.kind != "stray flat manifest" for p in r.garbage):
            line += "; `checkpoint-magic verify --fix` or `gc` removes the leftovers"
        else:  # gc leaves them (and their blobs) where they are
            line += "; `checkpoint-magic verify --fix` moves the stray manifests into their shards"
    blocks.append(line)
    if r.unsigned:
        blocks.append(
            f"{plural(r.unsigned, 'entry')} with a failing signature kept (--fix never removes "
            "them): check CHECKPOINT_MAGIC_SECRET (a typo, or a secret set on a store written without "
            "one); `checkpoint-magic verify --drop-unsigned` removes them"
        )
    return Output(r.to_dict(), blocks, code=0 if r.ok else 1)


def gc_output(
    store: Store,
    *,
    max_size: Any = None,
    max_age: Any = None,
    keep_versions: int | None = None,
    dry_run: bool = False,
    grace: float | None = None,
) -> Output:
    """``gc``: evict least recently used entries over the budgets; free unused blobs.

    Parameters
    ----------
    store : Store
        The store to work on.
    max_size : int or str, optional
        Size budget of the store (bytes, or ``"10GB"``).
    max_age : float or str, optional
        Evict entries not used for longer than this (seconds, or ``"30d"``).
    keep_versions : int, optional
        Keep at most this many code versions per name.
    dry_run : bool, default=False
        Say what would be evicted and freed, change nothing.
    grace : float, optional
        Seconds a blob or temporary file must be old before it is removed (so a writer
        still running keeps its files); the store's default grace period when ``None``.

    Returns
    -------
    Output
        The entries evicted and the blobs and bytes freed (or that would be).
    """
    from .maintenance import gc

    dry = dry_run
    r = gc(
        store,
        max_size=max_size,
        max_age=max_age,
        keep_versions=keep_versions,
        dry_run=dry,
        grace=_grace_of(grace),
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
        f"{verb} {plural(len(r.evicted), 'entry')}, {plural(r.freed_blobs, 'blob')}, {plural(r.removed_tmp, 'staging leftover')}, "
        f"{format_size(r.freed_bytes)}; store {format_size(r.size_before)} -> {format_size(r.size_after)}"
    )
    if r.over_budget:
        blocks.append("still over --max-size: the entries left are pinned")
    blocks += _pending(r.pending_blobs, r.pending_bytes)
    return Output(r.to_dict(), blocks)


def why_output(store: Store, target: str) -> Output:
    """``why``: why ``target`` last recomputed although entries existed.

    Parameters
    ----------
    store : Store
        The store to work on.
    target : str
        A namespace or its unique last part.

    Returns
    -------
    Output
        The reason recorded with the last miss; without one, how the two newest entries
        differ (``reason`` is ``None`` when there are fewer than two); and where the newest
        entry's inputs came from (``lineage``, see :mod:`checkpoint_magic.core.lineage`).

    Raises
    ------
    InvalidArgumentError
        If ``target`` matches no name, or the last part of several.
    """
    from ..core.explain import describe_difference, last_miss
    from ..core.lineage import describe
    from .maintenance import list_entries, resolve_namespace

    ns = resolve_namespace(store, target)
    entries = sorted(list_entries(store, ns), key=lambda e: e.created)
    links = (entries[-1].manifest.get("lineage") or []) if entries else []
    origin = [f"  {describe(link)}" for link in links]  # of the newest entry's inputs
    miss = last_miss(store, ns)
    if miss:
        data = {"namespace": ns, "reason": miss.get("reason"), "time": miss.get("time")}
        when = miss.get("time")
        ago = f" ({format_ago(float(when))})" if isinstance(when, (int, float)) else ""
        text = f"{ns} last recomputed{ago} because: {data['reason']}"
        return Output({**data, "source": "last miss", "lineage": links}, [text, *origin])
    if len(entries) < 2:
        text = "it has one entry and has not missed since" if entries else "it has no entry"
        return Output(
            {"namespace": ns, "reason": None, "time": None, "source": None, "lineage": links},
            [f"{ns}: no recorded miss; {text}", *origin],
        )
    old, new = entries[-2], entries[-1]
    reason = describe_difference(old.manifest, new.code, new.manifest.get("code_parts"), new.inputs)
    data = {"namespace": ns, "reason": reason, "time": new.created, "source": "entries"}
    ago = format_ago(new.created)
    text = f"{ns}: the newest entry ({ago}) differs from the previous one: {reason}"
    return Output({**data, "lineage": links}, [text, *origin])


def report_output(store: Store, *, html: str | None = None) -> Output:
    """``report``: write the store's HTML report to ``html``.

    Parameters
    ----------
    store : Store
        The store to work on.
    html : str, optional
        The file to write; ``checkpoint-report.html`` when ``None``.

    Returns
    -------
    Output
        ``data`` is ``{"path": ...}``, the file written (:mod:`checkpoint_magic.tools.report`).
    """
    from .report import write_report

    path = write_report(html or "checkpoint-report.html", store)
    return Output({"path": str(path)}, [f"report written to {path}"])


#: command -> (function, its positional argument: "required", "optional" or None). Each is a
#: plain ``func(store, target?, **options) -> Output`` the magics and :func:`call` use alike.
COMMANDS: dict[str, tuple[Callable[..., Output], str | None]] = {
    "ls": (ls_output, "optional"),
    "show": (show_output, "required"),
    "du": (du_output, None),
    "clear": (clear_output, "optional"),
    "pin": (pin_output, "required"),
    "unpin": (pin_output, "required"),
    "verify": (verify_output, None),
    "upgrade": (upgrade_output, None),
    "gc": (gc_output, None),
    "why": (why_output, "required"),
    "report": (report_output, None),
}


def call(command: str, store: Store, options: Mapping[str, Any]) -> Output:
    """Call the function of ``command`` with the options it takes; others (``json``) are ignored.

    Parameters
    ----------
    command : str
        A key of :data:`COMMANDS` (``"ls"``, ``"gc"``, ...).
    store : Store
        The store to work on.
    options : mapping of str to object
        Parsed options, e.g. ``vars(args)`` of the command line's parser.

    Returns
    -------
    Output
        What the command returned.

    Examples
    --------
    >>> import tempfile
    >>> out = call("ls", Store(tempfile.mkdtemp()), {"target": None, "json": True})
    >>> out.code, out.data["namespaces"], out.blocks[0].startswith("no entries in")
    (0, [], True)
    """
    func, _ = COMMANDS[command]
    params = inspect.signature(func).parameters
    kwargs = {k: v for k, v in options.items() if k in params and k != "store"}
    if "command" in params:
        kwargs["command"] = command
    return func(store, **kwargs)
