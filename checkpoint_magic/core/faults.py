"""When checkpointing cannot do its job: the uncached fallback and store-fault warnings.

The uncached fallback for a call that cannot be fingerprinted (:func:`fingerprint_or_warn`, one
policy and message for every front end), and the warn-once policy for lasting store faults
(:func:`fault_kind`, :func:`warn_fault`)."""

from __future__ import annotations

import errno
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..exceptions import UncachedWarning, warn_user
from ..store.core import ForeignStoreError, Store

__all__ = ["ADVICE", "fault_kind", "fingerprint_or_warn", "warn_fault"]

logger = logging.getLogger("checkpoint_magic.core.checkpointer")
T = TypeVar("T")


#: What a ComplexParamsIdentifyWarning advises, in each front end's own arguments.
ADVICE = {
    "function": "Leave it out of the key with @checkpoint(ignore=['{root}']) and pass the values "
    "that affect the result as arguments.",
    "block": "Watch the attributes that affect the result instead, e.g. "
    "InlineCheckpoint(watch=['{root}.a']), and leave {root} itself out of watch=[...].",
    "cell": "Watch the attributes that affect the result instead: %%checkpoint --watch {root}.a",
}


def fingerprint_or_warn(what: str, compute: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
    """Run ``compute(*args)`` (fingerprinting a call, block or cell); ``(False, None)`` if it failed.

    Fingerprinting must never stop the user's computation: any error becomes one
    :class:`~checkpoint_magic.exceptions.UncachedWarning` naming ``what`` and the error, and
    the caller runs the computation uncached. Warnings the user's filters turned into
    errors stay errors. Every front end (decorator, ``InlineCheckpoint``, ``%%checkpoint``)
    calls this, so the policy and the message are one.

    Parameters
    ----------
    what : str
        What is fingerprinted, as the warning names it (``module.function``, a cell label).
    compute : callable
        Returns the fingerprint(s).
    *args
        Passed to ``compute`` (no closure to build on the hit path).

    Returns
    -------
    ok : bool
        Whether ``compute`` returned.
    value : object or None
        What it returned; None when it failed.

    Raises
    ------
    Warning
        A warning raised by ``compute`` that the user's filters turned into an error.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     fingerprint_or_warn("doc.f", lambda: 1 / 0)
    (False, None)
    >>> print(caught[0].message)
    doc.f: could not be fingerprinted (ZeroDivisionError: division by zero); running it uncached
    >>> fingerprint_or_warn("doc.f", lambda: "fp")
    (True, 'fp')
    """
    try:
        return True, compute(*args)
    except Warning:
        raise  # warnings turned into errors by the user's filters stay errors
    except Exception as exc:  # fingerprinting must never stop the user's computation
        warn_user(
            f"{what}: could not be fingerprinted ({type(exc).__name__}: {exc}); running it uncached",
            UncachedWarning,
        )
        return False, None


#: Faults that persist until someone fixes them, by errno: warned about once per store.
_PERSISTENT = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "a folder where a file should be",
    errno.ELOOP: "a link the store did not create",
}
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def fault_kind(exc: BaseException) -> str | None:
    """Return the kind of a persistent store fault (warned about once per store), None for others.

    Parameters
    ----------
    exc : BaseException
        The error a store operation raised.

    Returns
    -------
    str or None
        A short description (``"permission denied"``, ``"read-only file system"``...).

    Examples
    --------
    >>> fault_kind(PermissionError(13, "Permission denied")), fault_kind(OSError(28, "full"))
    ('permission denied', None)
    """
    if isinstance(exc, ForeignStoreError):
        return "not a checkpoint store"
    return _PERSISTENT.get(getattr(exc, "errno", None) or -1)


def warn_fault(store: Store, exc: BaseException, doing: str, category: type[Warning]) -> None:
    """Warn about a store fault; a persistent one only the first time for this store and process.

    Parameters
    ----------
    store : Store
        The store that failed; a lasting fault is warned once per ``store.location``.
    exc : BaseException
        The fault (an ``OSError`` or a store error); its type and text end the message.
    doing : str
        What could not be done, e.g. ``"checkpoint f: not stored"``: the message's start.
    category : type of Warning
        The warning class to emit (a CheckpointWarning subclass).
    """
    kind = fault_kind(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if kind is None:
        warn_user(f"{doing} ({text})", category)
        return
    with _warned_lock:
        first = (store.location, kind) not in _warned
        _warned.add((store.location, kind))
    if not first:
        logger.debug("%s (%s; warned before)", doing, text)
        return
    warn_user(
        f"{doing} ({text}). The checkpoint store {store.location} has a lasting fault "
        f"({kind}): what it cannot do is skipped, and computations run uncached, until it is "
        "fixed (check its permissions and links, or point store=... / CHECKPOINT_MAGIC_DIR "
        "elsewhere); this warning is shown once per process",
        category,
    )
