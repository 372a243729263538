"""Recording what a block writes to stdout/stderr while it runs, and writing it again on a hit.

:class:`TeeStream` writes through to the real stream and records the text as ordered
events (``{"type": "stream", "name": "stdout", "text": ...}``); :class:`StreamRecorder`
installs one on each of ``sys.stdout`` and ``sys.stderr`` for a block, and
:func:`replay_streams` writes recorded events again. ``InlineCheckpoint`` uses them
directly; the ``%%checkpoint`` recorder (:mod:`checkpoint_magic.notebook.outputs`) adds
rich displays on top.

Examples
--------
>>> with StreamRecorder() as recorder:
...     print("PCA fitted")
PCA fitted
>>> recorder.events
[{'type': 'stream', 'name': 'stdout', 'text': 'PCA fitted\\n'}]
>>> replay_streams(recorder.events)
PCA fitted
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

__all__ = ["StreamRecorder", "TeeStream", "replay_streams"]


class TeeStream:
    """A text stream that writes through to the real one and records what was written.

    Consecutive writes to one stream are merged into one event.

    Parameters
    ----------
    stream : text stream
        The real stream (``sys.stdout`` or ``sys.stderr``); other attributes are its own.
    name : str
        ``"stdout"`` or ``"stderr"``, the ``name`` of the recorded events.
    events : list of dict
        Where events are appended; shared by the streams of one recorder, to keep order.
    """

    def __init__(self, stream: Any, name: str, events: list[dict[str, Any]]):
        self._stream = stream
        self._name = name
        self._events = events

    def write(self, text: str) -> int:
        """Write ``text`` to the real stream and record it.

        Parameters
        ----------
        text : str
            The text to write.

        Returns
        -------
        int
            What the real stream's ``write`` returned.
        """
        result = self._stream.write(text)
        if text:
            last = self._events[-1] if self._events else None
            if last is not None and last["type"] == "stream" and last["name"] == self._name:
                last["text"] += text
            else:
                self._events.append({"type": "stream", "name": self._name, "text": text})
        return result

    def writelines(self, lines: Any) -> None:
        """Write each of ``lines`` (no newline added), as :meth:`write`.

        Parameters
        ----------
        lines : iterable of str
            The text to write.
        """
        for line in lines:
            self.write(line)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._stream, attr)


class StreamRecorder:
    """Tee ``sys.stdout`` and ``sys.stderr`` for a block: output is shown live and recorded.

    A context manager; ``events`` holds the text written, in order, as
    ``{"type": "stream", "name": "stdout" or "stderr", "text": ...}`` dicts.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._streams: tuple[Any, Any] | None = None

    def __enter__(self) -> StreamRecorder:
        self._streams = (sys.stdout, sys.stderr)
        sys.stdout = TeeStream(sys.stdout, "stdout", self.events)
        sys.stderr = TeeStream(sys.stderr, "stderr", self.events)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        """Put the real streams back (idempotent)."""
        if self._streams is None:
            return
        for stream in (sys.stdout, sys.stderr):
            flush = getattr(stream, "flush", None)
            if flush is not None:
                flush()
        sys.stdout, sys.stderr = self._streams
        self._streams = None


def replay_streams(events: Iterable[dict[str, Any]]) -> None:
    """Write the recorded stream events again, in their original order.

    Parameters
    ----------
    events : iterable of dict
        Events as recorded by :class:`StreamRecorder`; those that are not stream text
        (rich displays of a cell) are skipped.
    """
    for event in events:
        if event.get("type") == "stream":
            stream = sys.stderr if event.get("name") == "stderr" else sys.stdout
            stream.write(event.get("text", ""))
    sys.stdout.flush()
    sys.stderr.flush()
