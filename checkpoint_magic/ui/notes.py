"""The one-line notes a person sees: a miss that has a reason, a hit that skipped a long run.

``@checkpoint``, ``InlineCheckpoint`` and ``%%checkpoint`` call :func:`note_miss` and
:func:`note_hit`; whether a note is shown is :func:`checkpoint_magic.config.notes_mode`:
``"auto"`` shows them where someone is watching (a Jupyter kernel or a terminal IPython)
and keeps scripts quiet, ``"on"`` also shows them in scripts (on stderr), ``"off"`` never.
A note is HTML in Jupyter (a dim line under the output) and dim text in a terminal. Hit notes
are also logged at INFO on :data:`logger`, miss reasons by the checkpointer, whatever the
setting.

Examples
--------
>>> from checkpoint_magic import config
>>> config.notes = "on"
>>> import sys; sys.stderr = sys.stdout  # doctest output is stdout
>>> note_miss("load_data", "code changed: helpers.clean")
[checkpoint] recomputing load_data: code changed: helpers.clean
>>> note_hit("load_data", duration=4.62, created=0.0)  # doctest: +ELLIPSIS
[checkpoint] restored load_data (took 4.6 s on 1970-01-01 ...)
>>> note_hit("tiny", duration=0.01, created=0.0)  # fast steps are not worth a line
>>> sys.stderr = sys.__stderr__; config.notes = None
"""

from __future__ import annotations

import html
import logging
import sys
import time
from typing import Any

from .. import config
from .units import format_duration

__all__ = [
    "NOTE_METADATA",
    "display_name",
    "enabled",
    "interactive",
    "note_hit",
    "note_miss",
    "show",
]

logger = logging.getLogger(__name__)

_PREFIX = "[checkpoint] "
#: Display metadata marking a note: a ``%%checkpoint`` recording leaves notes out (a note
#: says what happened in *this* run; replaying it later would be stale).
NOTE_METADATA = "checkpoint_magic_note"
_STYLE = "color:#6a737d;font-size:0.85em;font-family:monospace;margin:2px 0"


def _shell() -> Any:
    """The running IPython shell, or ``None`` (IPython is never imported here)."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if get is not None else None


def display_name(namespace: str) -> str:
    """A namespace as a person calls it: ``__main__.load_data`` is ``load_data``.

    Parameters
    ----------
    namespace : str
        A store namespace (``module.function``, a block or a cell name).

    Returns
    -------
    str
        ``namespace`` without a ``__main__.`` prefix.

    Examples
    --------
    >>> display_name("__main__.load_data"), display_name("mylib.fit")
    ('load_data', 'mylib.fit')
    """
    return namespace.removeprefix("__main__.")


def interactive() -> bool:
    """Whether someone is watching: a Jupyter kernel, or IPython at a terminal.

    Returns
    -------
    bool
        False in a script or a test run (no IPython shell, or stdin not a terminal).
    """
    shell = _shell()
    if shell is None:
        return False
    if getattr(shell, "kernel", None) is not None:
        return True
    isatty = getattr(sys.stdin, "isatty", None)
    return bool(isatty and isatty())


def enabled() -> bool:
    """Whether notes are shown now (see :func:`checkpoint_magic.config.notes_mode`).

    ``"auto"`` means :func:`interactive`. With notes shown, an ``InlineCheckpoint`` hit also
    replays what its block printed.

    Returns
    -------
    bool
        True when :func:`show` should be called.
    """
    mode = config.notes_mode()
    if mode == "auto":
        return interactive()
    return mode == "on"


def show(text: str, *, html_text: str | None = None) -> None:
    """Show one note: HTML in a Jupyter kernel, dim text on a terminal, plain text otherwise.

    The caller decides whether to show it (:func:`enabled`). Outside IPython the note goes
    to stderr, so a script's stdout stays its own.

    Parameters
    ----------
    text : str
        The note, without the ``[checkpoint]`` prefix.
    html_text : str, optional
        Replaces the escaped ``text`` in the HTML form.
    """
    line = _PREFIX + text
    shell = _shell()
    if shell is not None and getattr(shell, "kernel", None) is not None:
        body = html_text if html_text is not None else html.escape(line)
        sys.stdout.flush()
        sys.stderr.flush()
        shell.display_pub.publish(
            data={"text/plain": line, "text/html": f'<div style="{_STYLE}">{body}</div>'},
            metadata={NOTE_METADATA: True},
        )
        return
    stream = sys.stdout if shell is not None else sys.stderr
    isatty = getattr(stream, "isatty", None)
    dim = bool(isatty and isatty())
    stream.write(f"\x1b[2m{line}\x1b[0m\n" if dim else line + "\n")
    stream.flush()


def note_miss(namespace: str, reason: str) -> None:
    """Say why ``namespace`` recomputes although entries exist (``code changed: helpers.clean``).

    The caller (:class:`~checkpoint_magic.core.checkpointer.Checkpointer`) logs the reason and
    checks :func:`enabled` first, since computing the reason is the costly part.

    Parameters
    ----------
    namespace : str
        The namespace that recomputes.
    reason : str
        What changed since its newest entry.
    """
    show(f"recomputing {display_name(namespace)}: {reason.replace('__main__.', '')}")


def note_hit(namespace: str, *, duration: float, created: float, what: str = "") -> None:
    """Say that ``namespace`` was restored, if the run it skips took long.

    Hits faster than :data:`~checkpoint_magic.config.NOTE_HIT_SECONDS` say nothing; longer
    ones are logged at INFO and shown when :func:`enabled`.

    Parameters
    ----------
    namespace : str
        The namespace that hit.
    duration : float
        Seconds the stored run took.
    created : float
        When the entry was stored (seconds since the epoch).
    what : str, default=""
        What was restored, shown instead of the namespace when given.
    """
    if duration < config.NOTE_HIT_SECONDS:
        return  # the checkpointer already logged the hit at DEBUG; keep fast hits fast
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
    text = (
        f"restored {what or display_name(namespace)} (took {format_duration(duration)} on {when})"
    )
    logger.info(text)
    if enabled():
        show(text)
