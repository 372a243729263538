"""Output capture and replay of ``%%checkpoint`` cells: what a cell showed, shown again.

On a miss :class:`Recorder` records stream text, rich displays and ``clear_output`` as
ordered events while they are shown live; on a hit :func:`replay` publishes them again.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..ui.capture import TeeStream
from ..ui.notes import NOTE_METADATA

logger = logging.getLogger(__name__)

#: Extra entries stored next to the produced variables (no variable may use these names).
OUTPUTS_KEY = "__outputs__"
RESULT_KEY = "__result__"
RESERVED = frozenset({OUTPUTS_KEY, RESULT_KEY})
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
_UNSET: Any = object()


class ReplayedResult:
    """The stored display of a last-expression value that could not be stored itself.

    IPython shows it through ``_repr_mimebundle_`` exactly as the value was shown.

    Parameters
    ----------
    data : dict
        The display's MIME bundle (``{"text/plain": ..., "text/html": ...}``).
    metadata : dict
        The display's metadata.

    Examples
    --------
    >>> ReplayedResult({"text/plain": "<Model>"}, {})
    <Model>
    """

    def __init__(self, data: dict[str, Any], metadata: dict[str, Any]):
        self._data = data
        self._metadata = metadata

    def _repr_mimebundle_(
        self, include: Any = None, exclude: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return dict(self._data), dict(self._metadata)

    def __repr__(self) -> str:
        return str(self._data.get("text/plain", "<replayed output>"))


class Recorder:
    """Tee stdout/stderr and the display publisher: output is shown live and recorded in order.

    A context manager for one cell run; ``events`` then holds stream, display and
    ``clear_output`` events in order, as :func:`replay` takes them.

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell whose ``display_pub`` is recorded.
    """

    def __init__(self, ip: Any):
        self.ip = ip
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Recorder:
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = TeeStream(sys.stdout, "stdout", self.events)
        sys.stderr = TeeStream(sys.stderr, "stderr", self.events)
        pub = self._pub = self.ip.display_pub
        self._saved = {attr: pub.__dict__.get(attr, _UNSET) for attr in ("publish", "clear_output")}
        publish, clear_output, events = pub.publish, pub.clear_output, self.events

        def recording_publish(data: Any, metadata: Any = None, *a: Any, **kw: Any) -> Any:
            if metadata and metadata.get(NOTE_METADATA):  # this run's note, not the cell's output
                return publish(data, metadata, *a, **kw)
            events.append(
                {
                    "type": "display",
                    "data": dict(data or {}),
                    "metadata": dict(metadata or {}),
                    "transient": kw.get("transient"),
                    "update": bool(kw.get("update", False)),
                }
            )
            return publish(data, metadata, *a, **kw)

        def recording_clear_output(wait: bool = False, *a: Any, **kw: Any) -> Any:
            events.append({"type": "clear", "wait": bool(wait)})
            return clear_output(wait, *a, **kw)

        pub.publish = recording_publish
        pub.clear_output = recording_clear_output
        return self

    def __exit__(self, *exc: Any) -> None:
        for event in self.events:
            if event["type"] == "display" and _WIDGET_MIME in event["data"]:
                final_widget_state(event)
        for stream in (sys.stdout, sys.stderr):
            if hasattr(stream, "flush"):
                stream.flush()
        sys.stdout, sys.stderr = self._streams
        for attr, saved in self._saved.items():
            if saved is _UNSET:
                self._pub.__dict__.pop(attr, None)
            else:
                setattr(self._pub, attr, saved)


def _widget_text(widget: Any) -> tuple[str, str] | None:
    """Text and HTML of a widget's current state: labels and progress bars, in order (tqdm)."""
    parts: list[tuple[str, str]] = []
    for child in getattr(widget, "children", None) or (widget,):
        value, top = getattr(child, "value", None), getattr(child, "max", None)
        if isinstance(value, (int, float)) and isinstance(top, (int, float)) and top > 0:
            done = max(0.0, min(1.0, value / top))
            bar = "█" * round(done * 20) + " " * (20 - round(done * 20))
            parts.append((f"|{bar}|", f"<progress value='{value}' max='{top}'></progress>"))
        elif isinstance(value, str):
            text = re.sub(r"<[^>]+>", "", value).replace("&nbsp;", " ")
            parts.append((text, value))
    if not parts:
        return None
    return "".join(p[0] for p in parts), " ".join(p[1] for p in parts)


def final_widget_state(event: dict[str, Any]) -> None:
    """Record a widget display as the widget looks *now* (its final state), not as first shown.

    A widget's later updates travel as comm messages, not displays, so the recorded
    display holds its first state (a tqdm bar at 0%); and its model dies with the kernel.
    The final state is stored as text and HTML; a widget that cannot be read keeps its
    first representation.

    Parameters
    ----------
    event : dict
        A recorded display event; its ``data`` is updated in place.
    """
    ipywidgets = sys.modules.get("ipywidgets")
    model_id = (event["data"].get(_WIDGET_MIME) or {}).get("model_id")
    registry = getattr(getattr(ipywidgets, "Widget", None), "widgets", None)
    widget = registry.get(model_id) if isinstance(registry, dict) and model_id else None
    if widget is None:
        return
    try:
        state = _widget_text(widget)
    except (AttributeError, TypeError, ValueError, ReferenceError) as exc:  # a widget unlike tqdm's
        logger.debug("cannot read the final state of widget %s: %s", model_id, exc)
        return
    if state is not None:
        event["data"]["text/plain"], event["data"]["text/html"] = state


def flush_inline_figures(ip: Any) -> None:
    """Show the figures the cell drew now (inside the recording), not after the cell.

    IPython's inline backend would show them in a ``post_execute`` callback, after the
    recording stopped; this flushes them only if that callback is registered.

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell running the cell.
    """
    backend = sys.modules.get("matplotlib_inline.backend_inline")
    if backend is None:
        return
    flush = getattr(backend, "flush_figures", None)
    if flush is not None and flush in ip.events.callbacks.get("post_execute", ()):
        flush()


@contextmanager
def closing_new_figures() -> Iterator[None]:
    """Close figures that unpickling restored values registered with pyplot (images are replayed).

    A context manager: the figures pyplot holds when the block ends, and did not hold when it
    started, are closed (their images are replayed from the captured output instead).

    Yields
    ------
    None
        Nothing: restore the values inside the ``with`` block.
    """
    pyplot = sys.modules.get("matplotlib.pyplot")
    before = set(pyplot.get_fignums()) if pyplot is not None else set()
    try:
        yield
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:
            for num in set(pyplot.get_fignums()) - before:
                pyplot.close(num)


def replay(ip: Any, events: Any) -> None:
    """Write the recorded output again, in its original order.

    A widget display whose model lived in the old kernel is shown by its text or HTML
    fallback (or skipped if it has none).

    Parameters
    ----------
    ip : IPython.core.interactiveshell.InteractiveShell
        The shell to publish displays to.
    events : iterable of dict
        Events recorded by :class:`Recorder`.
    """
    for event in events:
        kind = event.get("type")
        if kind == "stream":
            stream = sys.stderr if event.get("name") == "stderr" else sys.stdout
            stream.write(event.get("text", ""))
        elif kind == "display":
            data = dict(event.get("data") or {})
            # A widget's model lived in the old kernel: show its fallback representation instead.
            if data.pop(_WIDGET_MIME, None) is not None and not data:
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            extra: dict[str, Any] = {}
            if event.get("transient"):
                extra["transient"] = event["transient"]
            if event.get("update"):
                extra["update"] = True
            ip.display_pub.publish(data=data, metadata=event.get("metadata") or {}, **extra)
        elif kind == "clear":
            sys.stdout.flush()
            sys.stderr.flush()
            ip.display_pub.clear_output(wait=bool(event.get("wait")))
    sys.stdout.flush()
    sys.stderr.flush()
