"""The entry index's rows, and the stat signatures it tells changed files by.

:mod:`checkpoint_magic.store.index` keeps one :class:`EntryRow` per manifest and lists
entries with their usage and pin as the columns :data:`LISTED` names; :func:`signature` and
:func:`trusted` say whether a file read before can be reused without reading it again.
"""

from __future__ import annotations

from typing import NamedTuple

from .backends import Stat

__all__ = ["LISTED", "RACY_SECONDS", "EntryRow", "signature", "trusted"]

#: A folder or file modified this recently may change again within a timestamp tick unseen.
RACY_SECONDS = 2.0


class EntryRow(NamedTuple):
    """What the index keeps of one manifest (``damage`` set: the manifest is unreadable).

    Attributes
    ----------
    ns_dir : str
        The namespace folder under ``entries/``.
    key : str
        The entry's key (the manifest's file name).
    version : str
        The manifest's stat signature when it was read (:func:`signature`).
    trusted : bool
        False when it was read within :data:`RACY_SECONDS` of its last change (then it
        is read again next time).
    file_size : int
        Bytes of the manifest file.
    mtime : float
        The manifest file's modification time.
    damage : str or None
        Why the manifest cannot be read; ``None`` for a readable one.
    problem : str or None
        Why a signed store refuses it (unsigned, or a wrong signature).
    namespace : str
        The function, block or cell the entry belongs to.
    kind : str
        What was cached (``"function"``, ``"block"``...).
    code : str
        The code fingerprint.
    inputs : str
        The input fingerprints by name, as JSON text.
    input_names : str
        The input names, as a JSON list.
    outputs : str
        The output names, as a JSON list.
    size : int
        Bytes of the blobs it references.
    created : float
        When it was committed.
    duration : float
        How long its computation took, in seconds.
    blobs : str
        Digest -> size of every blob it references, as JSON text.
    """

    ns_dir: str
    key: str
    version: str
    trusted: bool
    file_size: int
    mtime: float
    damage: str | None = None
    problem: str | None = None
    namespace: str = ""
    kind: str = ""
    code: str = ""
    inputs: str = "{}"
    input_names: str = "[]"
    outputs: str = "[]"
    size: int = 0
    created: float = 0.0
    duration: float = 0.0
    blobs: str = "{}"


#: The columns of :meth:`~checkpoint_magic.store.index.EntryIndex.listing`, in order: those of
#: an :class:`EntryRow` a listing needs, then the usage record's ``hits`` and ``last_used``
#: (``None`` without one) and ``pinned`` (0 or 1).
LISTED = (
    "ns_dir",
    "key",
    "version",
    "file_size",
    "damage",
    "problem",
    "namespace",
    "kind",
    "code",
    "inputs",
    "outputs",
    "size",
    "created",
    "duration",
    "blobs",
    "hits",
    "last_used",
    "pinned",
)


def signature(st: Stat) -> str:
    """A stat signature as the index stores it (and :class:`EntryInfo` keeps it).

    Parameters
    ----------
    st : Stat
        A file's stat.

    Returns
    -------
    str
        Text that changes whenever the file is replaced or modified.

    Examples
    --------
    >>> signature(Stat(3, 100.0, (7, 3, 100_000_000_000)))
    '(7, 3, 100000000000)'
    """
    return repr(st.version)


def trusted(st: Stat, now: float) -> bool:
    """Whether ``st`` was last changed long enough before ``now`` to reuse what was read.

    Parameters
    ----------
    st : Stat
        A file's stat.
    now : float
        The time the listing started.

    Returns
    -------
    bool
        False for a file changed within :data:`RACY_SECONDS` (or without a version).

    Examples
    --------
    >>> trusted(Stat(3, 100.0, (7, 3, 1)), now=200.0), trusted(Stat(3, 199.5, (7, 3, 1)), 200.0)
    (True, False)
    """
    return st.version is not None and now - st.mtime >= RACY_SECONDS
