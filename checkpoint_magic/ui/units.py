"""Human-readable sizes, durations and ages: the one format every message, table and report uses.

A leaf module (it imports nothing from the package), so the core (hit and miss lines),
the notebook layer and the command line all format the same way.

Examples
--------
>>> format_size(1536), format_duration(252), format_ago(100.0, now=400.0)
('1.5 KiB', '4 min 12 s', '5 min ago')
"""

from __future__ import annotations

import time

__all__ = ["format_ago", "format_duration", "format_size"]


def format_size(n: float) -> str:
    """A size in binary units: ``1536`` is ``'1.5 KiB'``.

    Parameters
    ----------
    n : float
        A number of bytes.

    Returns
    -------
    str
        Whole bytes below 1 KiB, else one decimal in KiB, MiB, GiB or TiB.

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
    """A short duration: two significant units at most (``'4.6 s'``, ``'4 min 12 s'``).

    Parameters
    ----------
    seconds : float
        The duration.

    Returns
    -------
    str
        Seconds with two or three significant digits below a minute, else the two largest
        of days, hours, minutes and seconds.

    Examples
    --------
    >>> format_duration(0.0123), format_duration(0.354), format_duration(4.62)
    ('0.012 s', '0.35 s', '4.6 s')
    >>> format_duration(252), format_duration(7300), format_duration(2 * 86400 + 7200)
    ('4 min 12 s', '2 h 1 min', '2 d 2 h')
    """
    if seconds < 0.1:
        return f"{seconds:.3f} s"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    if whole < 86400:
        return f"{whole // 3600} h {whole % 3600 // 60} min"
    return f"{whole // 86400} d {whole % 86400 // 3600} h"


def format_ago(when: float | None, now: float | None = None) -> str:
    """How long ago a time was: ``'5 min ago'``; ``'never'`` for ``None``.

    Parameters
    ----------
    when : float or None
        A time in seconds since the epoch, or ``None`` for never.
    now : float, optional
        The current time; ``time.time()`` by default.

    Returns
    -------
    str
        ``'just now'``, or the age in seconds, minutes, hours or days, rounded.

    Examples
    --------
    >>> format_ago(100.0, now=400.0), format_ago(None), format_ago(0.0, now=3 * 86400)
    ('5 min ago', 'never', '3 d ago')
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
