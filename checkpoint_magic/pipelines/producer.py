"""Producer records: bind each checkpoint file to the configuration that produced it.

A feature file (or a model file) is valid only for the estimator that made it. The
*producer* of a file is described by :func:`describe_producer` as a small table of named
parts, each a short fingerprint: the estimator's class and the code of every class in it,
each parameter of ``get_params(deep=True)``, and (for feature files) the whole fitted
state of every estimator inside it, private attributes such as ``_fit_X`` included. The
table's own fingerprint is the producer's digest.

The record travels with the file, so the directory listing does not change:

- HDF5 files written by the default ``save_func`` keep it in the HDF5 *user block* (the
  first bytes of the file, which HDF5 leaves to applications);
- model files start with it, before the pickle (:func:`~.files.load_pickle` skips it);
- files written by a custom ``save_func`` get a hidden ``.<name>.producer`` file beside them.

:func:`read_digest` reads the first few bytes of a file to compare digests (one small read
per sample); :func:`read_description` reads the whole table only when they differ, so the
warning can say what changed (:func:`describe_changes`).

This module is the only one of the package that imports the value
and code fingerprints.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any, BinaryIO

from ..exceptions import FingerprintError, StaleCheckpointWarning

__all__ = [
    "DIGEST_BYTES",
    "HEADER_MAGIC",
    "NO_RECORD",
    "StaleCheckpointWarning",
    "describe_changes",
    "describe_producer",
    "description_in",
    "digest_in",
    "encode_header",
    "fingerprint",
    "header_size",
    "producer_digest",
    "read_description",
    "read_digest",
    "safe_describe",
    "sidecar_path",
    "skip_record",
]

logger = logging.getLogger(__name__)

#: First bytes of every producer record (not an HDF5, pickle or numpy signature).
HEADER_MAGIC = b"\x89CMP1\n"
_DIGEST_LEN = 32
_LEN_DIGITS = 8
_FIXED = len(HEADER_MAGIC) + _DIGEST_LEN + _LEN_DIGITS
#: Bytes at the start of a file that hold its producer digest (:func:`digest_in`).
DIGEST_BYTES = len(HEADER_MAGIC) + _DIGEST_LEN
#: What :func:`read_digest` returns for an existing file without a producer record.
NO_RECORD = ""
_SHOWN_MAX = 60  # longest repr shown in a warning


# ----------------------------------------------------------------------------- describe


def _is_estimator(obj: Any) -> bool:
    return (
        not isinstance(obj, type)
        and hasattr(obj, "get_params")
        and (hasattr(obj, "fit") or hasattr(obj, "transform"))
    )


def _deep_state(obj: Any, depth: int = 0) -> Any:
    """A value with every estimator inside replaced by its class and *all* its attributes.

    The value fingerprint of an estimator counts its parameters and public fitted
    attributes only; a fitted state also lives in private attributes (``_fit_X``,
    ``_tree``), so estimators are unfolded here before fingerprinting.
    """
    if depth > 50:
        return obj
    if _is_estimator(obj) and hasattr(obj, "__dict__"):
        return (
            "estimator",
            type(obj),
            {k: _deep_state(v, depth + 1) for k, v in vars(obj).items()},
        )
    if isinstance(obj, list):
        return [_deep_state(v, depth + 1) for v in obj]
    if type(obj) is tuple:
        return tuple(_deep_state(v, depth + 1) for v in obj)
    if type(obj) is dict:
        return {k: _deep_state(v, depth + 1) for k, v in obj.items()}
    return obj


def fingerprint(value: Any, name: str | None = None) -> str:
    """The value fingerprint of the package (imported on first use: it is not cheap).

    Parameters
    ----------
    value
        Any value.
    name
        Its label in warnings.

    Returns
    -------
    str
        32 hex characters.
    """
    from ..fingerprint.values import fingerprint as value_fingerprint

    return value_fingerprint(value, name=name)


def _code(cls: type) -> str | None:
    """The code fingerprint of a user-defined class, ``None`` for installed code."""
    from ..fingerprint.code import code_fingerprint, is_user_code

    return code_fingerprint(cls) if is_user_code(cls) else None


def _short(value: Any, name: str) -> str:
    return fingerprint(value, name=name)[:16]


def _shown(value: Any) -> str | None:
    if isinstance(value, type):
        return value.__qualname__
    if _is_estimator(value):
        return f"{type(value).__qualname__}(...)"
    if callable(value) and hasattr(value, "__qualname__"):
        return str(value.__qualname__)
    if value is None or isinstance(value, (bool, int, float, str)):
        text = repr(value)
        return text if len(text) <= _SHOWN_MAX else None
    return None


def _estimators(estimator: Any) -> list[tuple[str, Any]]:
    """``(path, estimator)`` for ``estimator`` and every estimator among its deep parameters."""
    found = [("", estimator)]
    try:
        params = estimator.get_params(deep=True)
    except (AttributeError, TypeError):
        return found
    found.extend((name, value) for name, value in params.items() if _is_estimator(value))
    return found


def describe_producer(estimator: Any, *, fitted_state: bool = True) -> dict[str, list[Any]]:
    """Describe what produces a checkpoint file, as named parts with short fingerprints.

    Parameters
    ----------
    estimator
        The estimator that computes the file's content (for feature files, the estimator
        wrapped by a :class:`~checkpoint_magic.pipelines.CheckpointWrapper`, fitted or not).
    fitted_state
        Include the whole fitted state of every estimator inside (every attribute that is
        not a parameter, private ones included). Feature files depend on it; model files,
        which *are* that state, do not.

    Returns
    -------
    dict
        ``{part: [fingerprint, shown]}`` where ``part`` is ``"class"``, ``"code <class>"``,
        ``"parameter <name>"`` or ``"fitted state <path>"``, and ``shown`` is a short text
        for the warning (a parameter's repr) or ``None``.

    Raises
    ------
    FingerprintError
        If a part cannot be fingerprinted.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> d = describe_producer(FunctionTransformer(validate=True))
    >>> d["parameter validate"][1], sorted(d)[0]
    ('True', 'class')
    """
    description: dict[str, list[Any]] = {}
    cls = type(estimator)
    description["class"] = [_short(cls, "class"), f"{cls.__module__}.{cls.__qualname__}"]
    try:
        params = estimator.get_params(deep=True)
    except (AttributeError, TypeError):
        params = None
    if params is None:  # not a scikit-learn estimator: its whole state is its configuration
        description["state"] = [_short(_deep_state(vars(estimator)), "estimator"), None]
        return description
    for name, value in params.items():
        if _is_estimator(value):  # its own parameters are listed as name__param
            value_cls = type(value)
            description[f"parameter {name}"] = [
                _short(value_cls, name),
                f"{value_cls.__qualname__}(...)",
            ]
        else:
            description[f"parameter {name}"] = [_short(value, name), _shown(value)]
    for path, est in _estimators(estimator):
        est_cls = type(est)
        code = _code(est_cls)
        if code is not None:
            key = f"code {est_cls.__module__}.{est_cls.__qualname__}"
            description[key] = [code[:16], None]
        if fitted_state:
            try:
                own = set(est.get_params(deep=False))
            except (AttributeError, TypeError):
                own = set()
            state = {k: _deep_state(v) for k, v in vars(est).items() if k not in own}
            if state:
                label = f"fitted state {path or 'of the estimator'}"
                description[label] = [_short(state, path or "estimator"), None]
    return description


def producer_digest(description: Mapping[str, list[Any]]) -> str:
    """The 32-hex digest of a description (its parts in sorted order).

    Only each part's fingerprint counts, not its shown value.

    Parameters
    ----------
    description : mapping of str to list
        ``{part: [fingerprint, shown value or None]}``, as from :func:`describe_producer`.

    Returns
    -------
    str
        32 hexadecimal characters.

    Examples
    --------
    >>> producer_digest({"a": ["1", None]}) == producer_digest({"a": ["1", "shown"]})
    True
    """
    return fingerprint(sorted((k, v[0]) for k, v in description.items()))


def describe_changes(
    old: Mapping[str, list[Any]] | None, new: Mapping[str, list[Any]], limit: int = 4
) -> str:
    """Say which parts differ between two descriptions, e.g. ``parameter k (2 -> 3)``.

    Parameters
    ----------
    old : mapping of str to list or None
        The description recorded with the file; ``None`` when it has none.
    new : mapping of str to list
        The description of the current estimator.
    limit : int, default=4
        Most changes named; the rest are counted (``and 2 more``).

    Returns
    -------
    str
        A short, human-readable list of the changes.

    Examples
    --------
    >>> describe_changes({"parameter k": ["a", "2"]}, {"parameter k": ["b", "3"]})
    'parameter k (2 -> 3)'
    >>> describe_changes(None, {})
    'the file has no producer record (written by another tool or an older version)'
    """
    if old is None:
        return "the file has no producer record (written by another tool or an older version)"
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before is not None and after is not None and before[0] == after[0]:
            continue
        if before is None:
            changes.append(f"{name} added")
        elif after is None:
            changes.append(f"{name} removed")
        elif before[1] is not None and after[1] is not None and before[1] != after[1]:
            changes.append(f"{name} ({before[1]} -> {after[1]})")
        else:
            changes.append(f"{name} changed")
    if not changes:
        return "the producer record differs"
    more = len(changes) - limit
    text = ", ".join(changes[:limit])
    return text + (f" and {more} more" if more > 0 else "")


# ----------------------------------------------------------------------------- records


def encode_header(digest: str, description: Mapping[str, list[Any]]) -> bytes:
    """The record written with a file: magic, digest, then the description as JSON.

    Parameters
    ----------
    digest : str
        The producer digest (:func:`producer_digest`).
    description : mapping of str to list
        The producer description.

    Returns
    -------
    bytes
        The record, read back by :func:`read_digest` and :func:`read_description`.
    """
    body = json.dumps(description, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return HEADER_MAGIC + digest.encode("ascii") + f"{len(body):0{_LEN_DIGITS}x}".encode() + body


def sidecar_path(path: str) -> str:
    """Where the record of a file written by a custom ``save_func`` lives.

    Parameters
    ----------
    path : str
        The checkpoint file.

    Returns
    -------
    str
        A hidden ``.<name>.producer`` file beside ``path``.

    Examples
    --------
    >>> sidecar_path("features/a/1.npy")
    'features/a/.1.npy.producer'
    """
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.producer")


def read_digest(path: str) -> str | None:
    """The producer digest recorded at the start of ``path``.

    Parameters
    ----------
    path : str
        A checkpoint file (or its sidecar).

    Returns
    -------
    str or None
        The digest; :data:`NO_RECORD` (``""``) for a file without a record (or unreadable
        now); ``None`` if the file does not exist.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError:  # unreadable now: treat as present without record, recomputed
        return NO_RECORD
    try:
        head = os.read(fd, DIGEST_BYTES)
    except OSError:
        return NO_RECORD
    finally:
        os.close(fd)
    return digest_in(head)


def digest_in(head: bytes) -> str:
    """The producer digest in the first :data:`DIGEST_BYTES` bytes of a file.

    Parameters
    ----------
    head : bytes
        The start of the file (at least :data:`DIGEST_BYTES` bytes when it has a record).

    Returns
    -------
    str
        The digest, or :data:`NO_RECORD` (``""``) when ``head`` starts no record.

    Examples
    --------
    >>> digest_in(encode_header("0" * 32, {})[:DIGEST_BYTES]) == "0" * 32, digest_in(b"HDF")
    (True, '')
    """
    if not head.startswith(HEADER_MAGIC) or len(head) < DIGEST_BYTES:
        return NO_RECORD
    return head[len(HEADER_MAGIC) : DIGEST_BYTES].decode("ascii", "replace")


def read_description(path: str) -> dict[str, list[Any]] | None:
    """The description recorded at the start of ``path`` (``None`` without a readable one).

    Parameters
    ----------
    path : str
        A checkpoint file (or its sidecar).

    Returns
    -------
    dict of str to list or None
        The description, or ``None`` when the file has no readable record.
    """
    try:
        with open(path, "rb") as f:
            return description_in(f)
    except (OSError, ValueError) as exc:
        logger.debug("No readable producer record in %s: %s", path, exc)
        return None


def description_in(f: BinaryIO) -> dict[str, list[Any]] | None:
    """The description recorded at the start of the binary file ``f`` (at its start).

    Parameters
    ----------
    f : binary file
        A file object opened for reading, positioned at its start (a local file, or an
        fsspec file of a URL: it reads the record only).

    Returns
    -------
    dict of str to list or None
        The description, or ``None`` when ``f`` starts no record.

    Raises
    ------
    OSError, ValueError
        When ``f`` cannot be read, or its record is damaged.
    """
    head = f.read(_FIXED)
    if len(head) < _FIXED or not head.startswith(HEADER_MAGIC):
        return None
    size = int(head[len(HEADER_MAGIC) + _DIGEST_LEN :], 16)
    value = json.loads(f.read(size).decode("utf-8"))
    return value if isinstance(value, dict) else None


def skip_record(f: BinaryIO) -> None:
    """Move the binary file ``f`` (at its start) past its producer record, if it has one.

    Parameters
    ----------
    f : binary file
        A file object opened for reading, positioned at its start.
    """
    head = f.read(_FIXED)
    if len(head) == _FIXED and head.startswith(HEADER_MAGIC):
        f.seek(_FIXED + int(head[len(HEADER_MAGIC) + _DIGEST_LEN :], 16))
    else:
        f.seek(0)


def header_size(header: bytes) -> int:
    """Bytes a record takes at the start of a file: its length, or for HDF5 a user block.

    Parameters
    ----------
    header : bytes
        The record (:func:`encode_header`).

    Returns
    -------
    int
        The smallest HDF5 user-block size (a power of two, at least 512) that holds it.

    Examples
    --------
    >>> header_size(b"x" * 10), header_size(b"x" * 600)
    (512, 1024)
    """
    size = 512
    while size < len(header):
        size *= 2
    return size


def safe_describe(estimator: Any, *, fitted_state: bool) -> tuple[str, dict[str, list[Any]]] | None:
    """:func:`describe_producer` and its digest, or ``None`` when it cannot be fingerprinted.

    Parameters
    ----------
    estimator : object
        The estimator that produces the file.
    fitted_state : bool
        Whether the fitted state counts (feature files) or not (model files).

    Returns
    -------
    tuple of (str, dict) or None
        ``(digest, description)``; ``None``, with a logged warning, when the estimator
        cannot be fingerprinted.
    """
    try:
        description = describe_producer(estimator, fitted_state=fitted_state)
    except FingerprintError as exc:
        logger.warning("Cannot fingerprint %s: %s", type(estimator).__name__, exc)
        return None
    return producer_digest(description), description
