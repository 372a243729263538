"""The store as data and as a picture: :func:`entries_frame` and an HTML report with plots.

``entries_frame(store)`` is one row per entry with real datetimes (what
``%checkpoint_store ls --json`` gives as nested dicts of epoch floats);
:func:`report_html` renders a self-contained page (plots embedded as PNG) of where the
store's time and space go: compute time saved by function/cell, the store's size over
time, code versions per name, and a table per name. ``checkpoint-magic report --html FILE``
and ``%checkpoint_store report`` show it.

Nothing here unpickles a stored value; matplotlib is imported only to draw the plots
(through :class:`matplotlib.figure.Figure`, never ``pyplot``, so a notebook's figures
are not touched).

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> entries_frame(Store(tempfile.mkdtemp())).columns.tolist()[:4]
['name', 'kind', 'key', 'code']
>>> "no entries yet" in report_html(Store(tempfile.mkdtemp()))
True
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.core import Store, get_store
from ..ui.units import format_ago, format_duration, format_size
from .output import shorten

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .inventory import EntryInfo

__all__ = ["entries_frame", "report_html", "write_report"]

#: How many names the bar charts and the stacked size plot show (the rest is "other").
TOP = 12
_PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3"]
_COLUMNS = [
    "name",
    "kind",
    "key",
    "code",
    "created",
    "last_used",
    "hits",
    "duration_s",
    "saved_s",
    "size_bytes",
    "pinned",
    "inputs",
    "outputs",
    "inputs_from",
]


def _entries(store: Store) -> list[EntryInfo]:
    from .inventory import list_entries

    return list_entries(store)


def _sources(manifest: Mapping[str, Any]) -> list[str]:
    """The names of the entries an entry's inputs came from (its manifest's ``lineage``)."""
    links = manifest.get("lineage") or []
    return sorted({str((link.get("from") or {}).get("namespace")) for link in links})


def _when(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch)


def entries_frame(store: Store | str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """One row per stored entry, as a :class:`pandas.DataFrame` with datetimes.

    Parameters
    ----------
    store : Store or path, optional
        Default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.

    Returns
    -------
    pandas.DataFrame
        Columns: ``name`` (the function, block or cell), ``kind``, ``key``, ``code`` (the
        code fingerprint: one value per code version), ``created`` and ``last_used``
        (local ``datetime64``; ``NaT`` if never used), ``hits``, ``duration_s`` (how long
        the computation took), ``saved_s`` (hits times duration), ``size_bytes``,
        ``pinned``, ``inputs`` and ``outputs`` (lists of names), ``inputs_from`` (the names
        of the entries its inputs came from, see :mod:`checkpoint_magic.core.lineage`).

    Examples
    --------
    >>> import tempfile
    >>> from checkpoint_magic import checkpoint
    >>> where = tempfile.mkdtemp()
    >>> square = checkpoint(store=where)(lambda x: x * x)
    >>> square(3), square(3)
    (9, 9)
    >>> frame = entries_frame(where)
    >>> frame[["kind", "hits", "outputs"]].to_dict("records")
    [{'kind': 'function', 'hits': 1, 'outputs': ['return']}]
    >>> str(frame["created"].dtype).startswith("datetime64")
    True
    """
    import pandas as pd

    rows = [
        {
            "name": e.namespace,
            "kind": e.kind,
            "key": e.key,
            "code": e.code,
            "created": _when(e.created),
            "last_used": _when(e.last_used) if e.hits else pd.NaT,
            "hits": int(e.hits),
            "duration_s": float(e.duration),
            "saved_s": float(e.saved),
            "size_bytes": int(e.size),
            "pinned": bool(e.pinned),
            "inputs": sorted(e.inputs),
            "outputs": list(e.outputs),
            "inputs_from": _sources(e.manifest),
        }
        for e in _entries(get_store(store))
    ]
    frame = pd.DataFrame(rows, columns=_COLUMNS)
    for column in ("created", "last_used"):
        frame[column] = pd.to_datetime(frame[column])
    return frame.sort_values("created", ignore_index=True)


# ---------------------------------------------------------------------------------------- plots
def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="x", color="#e5e5e5")
    ax.set_axisbelow(True)
    return fig, ax


def _short(name: str, width: int = 34) -> str:
    """A name as a label: ``__main__.`` dropped, shortened, never starting with ``_``
    (matplotlib hides legend entries whose label does)."""
    name = name.removeprefix("__main__.")
    name = shorten(name, width)
    return "\u2009" + name if name.startswith("_") else name


def _barh(labels: Sequence[str], values: Sequence[float], texts: Sequence[str]) -> str:
    """A horizontal bar chart, largest on top, each bar labelled with its value."""
    fig, ax = _figure(6.4, 0.45 * len(labels) + 1.0)
    positions = range(len(labels))[::-1]
    ax.barh(list(positions), list(values), color=_PALETTE[0], height=0.6)
    ax.set_yticks(list(positions), [_short(label) for label in labels])
    peak = max(values) if values else 1
    for y, value, text in zip(positions, values, texts, strict=True):
        ax.text(value + peak * 0.01, y, text, va="center", fontsize=9, color="#333")
    ax.set_xlim(0, peak * 1.25 or 1)
    ax.set_xticks([])
    return _png(fig)


def _size_over_time(frame: pd.DataFrame, names: list[str]) -> str:
    """The store's size as entries were created, stacked by name (top names, then the rest)."""
    import numpy as np

    fig, ax = _figure(5.2, 3.2)
    ordered = frame.sort_values("created")
    group = ordered["name"].where(ordered["name"].isin(names), "other")
    layers = [n for n in [*names, "other"] if (group == n).any()]
    sizes = [(ordered["size_bytes"].where(group == n, 0)).cumsum() / 2**20 for n in layers]
    times = ordered["created"].to_numpy()
    ax.stackplot(
        times,
        sizes,
        labels=[_short(n, 28) for n in layers],
        colors=[_PALETTE[i % len(_PALETTE)] for i in range(len(layers))],
        step="post",
        alpha=0.9,
    )
    if times[0] == times[-1]:  # one moment: give the axis a width the date locator can label
        pad = np.timedelta64(30, "s")
        ax.set_xlim(times[0] - pad, times[-1] + pad)
    ax.set_ylabel("MiB")
    ax.grid(axis="y", color="#e5e5e5")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(maxticks=6)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return _png(fig)


# ---------------------------------------------------------------------------------------- page
# Every rule is scoped to the report's own <div>, so it can sit inside a notebook's output.
_CSS = """
.cm-report{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;color:#222}
.cm-report h1{font-size:1.4em;margin:0 0 4px}
.cm-report .sub{color:#666;margin:0 0 18px;font-size:.9em}
.cm-report .cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.cm-report .card{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:10px 16px;
min-width:120px}
.cm-report .card b{display:block;font-size:1.5em;color:#4C72B0}
.cm-report .card span{color:#666;font-size:.85em}
.cm-report .plots{display:flex;gap:16px;flex-wrap:wrap}
.cm-report .plot{background:#fff;border:1px solid #e3e3e3;border-radius:8px;padding:8px 12px}
.cm-report .plot h3{font-size:1em;margin:4px 0 6px;font-weight:600}
.cm-report table{border-collapse:collapse;background:#fff;margin-top:18px;font-size:.9em}
.cm-report th,.cm-report td{padding:4px 10px;border-bottom:1px solid #eee;text-align:left}
.cm-report .n{text-align:right}.cm-report th{background:#f2f2f2}
"""
_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>checkpoint store report</title>"
    "</head><body style='margin:24px;background:#fafafa'>{body}</body></html>"
)


def report_html(store: Store | str | os.PathLike[str] | None = None, *, page: bool = True) -> str:
    """A self-contained HTML page about the store: totals, plots (embedded PNG), a table per name.

    Parameters
    ----------
    store : Store or path, optional
        Default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    page : bool
        A whole HTML document (for a file); ``False`` gives the report's ``<div>`` alone,
        its styles scoped to it (for a notebook's output).

    Returns
    -------
    str
        The HTML; nothing is written (see :func:`write_report`).

    Examples
    --------
    >>> import tempfile
    >>> from checkpoint_magic import checkpoint
    >>> where = tempfile.mkdtemp()
    >>> square = checkpoint(store=where)(lambda x: x * x)
    >>> square(3), square(3)
    (9, 9)
    >>> page = report_html(where)
    >>> page.count("data:image/png;base64,"), "Code versions per name" in page
    (3, True)
    """
    root = get_store(store)
    frame = entries_frame(root)
    head = (
        f"<div class='cm-report'><style>{_CSS}</style><h1>checkpoint store report</h1>"
        f"<p class='sub'>{html.escape(str(root.root))} · {_when(_now()):%Y-%m-%d %H:%M}</p>"
    )
    if frame.empty:
        body = head + "<p>The store has no entries yet.</p></div>"
        return _PAGE.format(body=body) if page else body
    by_name = (
        frame.groupby("name", sort=False)
        .agg(
            kind=("kind", "first"),
            versions=("code", "nunique"),
            entries=("key", "size"),
            size=("size_bytes", "sum"),
            hits=("hits", "sum"),
            saved=("saved_s", "sum"),
            compute=("duration_s", "sum"),
            last_used=("last_used", "max"),
            created=("created", "max"),
        )
        .sort_values(["saved", "size"], ascending=False)
    )
    newest = frame.groupby("name", sort=False)["inputs_from"].last()  # sorted by created
    by_name["inputs_from"] = [", ".join(newest[name]) for name in by_name.index]
    top = by_name.head(TOP)
    cards = [
        (format_duration(float(frame["saved_s"].sum())), "compute time saved"),
        (str(int(frame["hits"].sum())), "hits"),
        (format_size(int(frame["size_bytes"].sum())), "stored"),
        (str(len(by_name)), "functions, blocks and cells"),
        (str(len(frame)), "entries"),
        (format_duration(float(frame["duration_s"].sum())), "compute time stored"),
    ]
    saved_plot = _barh(
        list(top.index),
        list(top["saved"]),
        [format_duration(float(v)) for v in top["saved"]],
    )
    by_versions = by_name.sort_values("versions", ascending=False).head(TOP)
    versions_plot = _barh(
        list(by_versions.index),
        list(by_versions["versions"]),
        [
            f"{v} version{'s' if v != 1 else ''}, {format_size(int(s))}"
            for v, s in zip(by_versions["versions"], by_versions["size"], strict=True)
        ],
    )
    size_plot = _size_over_time(frame, list(by_name.sort_values("size", ascending=False).index[:6]))
    parts = [head, "<div class='cards'>"]
    parts += [f"<div class='card'><b>{html.escape(v)}</b><span>{t}</span></div>" for v, t in cards]
    parts.append("</div><div class='plots'>")
    for png, title in (
        (saved_plot, "Compute time saved, by name"),
        (size_plot, "Store size over time, by name"),
        (versions_plot, "Code versions per name"),
    ):
        parts.append(
            f"<div class='plot'><h3>{title}</h3>"
            f"<img alt='{title}' src='data:image/png;base64,{png}'></div>"
        )
    parts.append("</div>" + _table(by_name) + "</div>")
    body = "".join(parts)
    return _PAGE.format(body=body) if page else body


def _now() -> float:
    import time

    return time.time()


def _table(by_name: pd.DataFrame) -> str:
    headers = ["name", "kind", "versions", "entries", "size", "hits", "saved", "last used"]
    headers.append("inputs from")
    numeric = {"versions", "entries", "size", "hits", "saved"}
    now = _now()
    rows = []
    for name, row in by_name.iterrows():
        used = row["last_used"]
        cells = [
            str(name),
            str(row["kind"]),
            str(row["versions"]),
            str(row["entries"]),
            format_size(int(row["size"])),
            str(int(row["hits"])),
            format_duration(float(row["saved"])),
            "never" if used is None or used != used else format_ago(used.timestamp(), now),
            str(row["inputs_from"]),
        ]
        rows.append(
            "<tr>"
            + "".join(
                f"<td class='{'n' if h in numeric else ''}'>{html.escape(c)}</td>"
                for h, c in zip(headers, cells, strict=True)
            )
            + "</tr>"
        )
    head = "".join(f"<th class='{'n' if h in numeric else ''}'>{h}</th>" for h in headers)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(
    path: str | os.PathLike[str], store: Store | str | os.PathLike[str] | None = None
) -> Path:
    """Write :func:`report_html` of ``store`` to ``path`` (folders created).

    Parameters
    ----------
    path : str or os.PathLike
        The HTML file to write (``~`` is expanded).
    store : Store, str or os.PathLike, optional
        The store, or its directory; the default store when ``None``.

    Returns
    -------
    pathlib.Path
        The absolute path of the file written.

    Examples
    --------
    >>> import tempfile
    >>> out = write_report(Path(tempfile.mkdtemp()) / "report.html", tempfile.mkdtemp())
    >>> out.read_text().startswith("<!DOCTYPE html>")
    True
    """
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(report_html(store), encoding="utf-8")
    return target
