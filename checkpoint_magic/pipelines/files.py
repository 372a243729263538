"""Checkpoint files of the pipeline wrappers: paths from keys, HDF5 codec, atomic retried I/O.

- :func:`checked_relative_path` turns a sample key into a safe, normalised relative path
  (no absolute path, no ``..``, no ``.`` or empty component), so a key can never write
  outside ``features_dir`` and two keys never name one file; :func:`check_extension`
  does the same for the file suffix.
- :func:`save_hdf5` / :func:`load_hdf5` are the default ``save_func`` / ``load_func`` of
  :class:`~checkpoint_magic.pipelines.CheckpointWrapper` (h5py is imported when called).
- :func:`atomic_save` writes through a temporary file in the target directory and
  ``os.replace``: readers, and other processes writing the same file, see either the old
  file or the whole new one, never a partial file. Failed attempts are retried.
- :class:`FileLoader` is the picklable ``load`` of a delayed sample read from a file.
"""

from __future__ import annotations

import logging
import os
import pickle
import posixpath
import re
import time
import uuid
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np
import xxhash

from ..exceptions import InvalidArgumentError, StoreFormatError
from .producer import header_size, skip_record

__all__ = [
    "FileLoader",
    "atomic_save",
    "check_attempts",
    "check_extension",
    "checked_relative_path",
    "hash_string",
    "load_hdf5",
    "load_pickle",
    "retry_delay",
    "save_hdf5",
    "save_pickle",
]

logger = logging.getLogger(__name__)

#: First delay between two attempts (seconds); doubled after each failure.
RETRY_DELAY = 0.01
#: Longest delay between two attempts (seconds).
MAX_RETRY_DELAY = 0.5

_SEPARATORS = re.compile(r"[\\/]")
_DRIVE = re.compile(r"^[A-Za-z]:")
#: dtype kinds HDF5 stores natively (bool, ints, floats, complex, fixed bytes).
_HDF5_KINDS = frozenset("biufcS")
#: Longest component of a key, in UTF-8 bytes. File names are limited to 255 bytes on
#: most filesystems; the extension (at most :data:`MAX_EXTENSION_BYTES`) and the
#: temporary and record names made from a key's file name need the rest.
MAX_KEY_COMPONENT_BYTES = 190
#: Longest file extension, in UTF-8 bytes.
MAX_EXTENSION_BYTES = 32


# ------------------------------------------------------------------------------ paths


def checked_relative_path(value: Any, what: str = "key") -> str:
    """Return ``value`` as a relative path that stays inside its base directory.

    Parameters
    ----------
    value
        A string (an integer is accepted and converted).
    what
        How to name the value in error messages.

    Returns
    -------
    str
        ``value`` (an integer as its decimal string), checked.

    Raises
    ------
    InvalidArgumentError
        For a non-string, an empty string, an absolute path, a ``..`` component, a path
        ending in a separator, a NUL character, a path that is not normalised (an
        empty or ``.`` component, as in ``./a``, ``x/./y`` or ``x//y``): each file has
        exactly one key; or a component longer than :data:`MAX_KEY_COMPONENT_BYTES` UTF-8
        bytes (the filesystem would refuse its file name).

    Examples
    --------
    >>> checked_relative_path("subject-1/0")
    'subject-1/0'
    >>> checked_relative_path("../etc/passwd")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: key '../etc/passwd' ...
    """
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidArgumentError(
            f"{what} {value!r} is a {type(value).__name__}; keys name files, so they must be "
            "strings, e.g. key=str(i)."
        )
    problem = None
    if not value:
        problem = "is empty"
    elif "\x00" in value:
        problem = "contains a NUL character"
    elif os.path.isabs(value) or value[0] in "/\\" or _DRIVE.match(value):
        problem = "is an absolute path"
    else:
        parts = _SEPARATORS.split(value)
        if ".." in parts:
            problem = "contains a '..' component"
        elif parts[-1] in ("", "."):
            problem = "does not end with a file name"
        elif "" in parts or "." in parts or posixpath.normpath(value) != value:
            # "./a", "x/./y" and "x//y" name the files of "a", "x/y" and "x/y": two keys
            # for one file would load one sample's result for the other.
            problem = (
                f"is not normalised (write it {_normalised(parts)!r}: no empty or '.' "
                "component, so that each file has exactly one key)"
            )
        elif len(value) * 4 > MAX_KEY_COMPONENT_BYTES:  # (a UTF-8 character: 1-4 bytes)
            longest = max(len(p.encode("utf-8", "surrogatepass")) for p in parts)
            if longest > MAX_KEY_COMPONENT_BYTES:
                raise InvalidArgumentError(
                    f"{what} {value[:40]!r}... has a component of {longest} bytes; file "
                    f"names are limited, so each part of a key between '/' may have at most "
                    f"{MAX_KEY_COMPONENT_BYTES} bytes. Use shorter keys, e.g. a hash of the "
                    "long identifier (checkpoint_magic.pipelines.hash_string or hashlib), "
                    "or split it into sub-directories with '/'."
                )
    if problem is not None:
        raise InvalidArgumentError(
            f"{what} {value!r} {problem}: keys become file names relative to features_dir "
            "and may not leave it. Use relative names such as 'subject-1/sample-3'."
        )
    return value


def _normalised(parts: list[str]) -> str:
    return "/".join(p for p in parts if p not in ("", "."))


def check_extension(extension: Any) -> str:
    """Validate the ``extension`` of checkpoint files: ``""`` or a suffix starting with ``.``.

    The extension is appended to a key's file name, so it may not contain a path
    separator, a ``..`` or a NUL character (it could otherwise leave ``features_dir`` or
    make two keys share a file).

    Parameters
    ----------
    extension : str
        The suffix to check, such as ``".h5"``.

    Returns
    -------
    str
        ``extension``, unchanged.

    Raises
    ------
    InvalidArgumentError
        If ``extension`` is not a string or not a plain file suffix.

    Examples
    --------
    >>> check_extension(".tar.gz"), check_extension("")
    ('.tar.gz', '')
    >>> check_extension("/../..")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: extension '/../..' ...
    """
    if not isinstance(extension, str):
        raise InvalidArgumentError(
            f"extension must be a string such as '.h5' (or ''), not {extension!r}."
        )
    if extension and (
        not extension.startswith(".")
        or _SEPARATORS.search(extension)
        or ".." in extension
        or "\x00" in extension
        or len(extension.encode("utf-8", "surrogatepass")) > MAX_EXTENSION_BYTES
    ):
        raise InvalidArgumentError(
            f"extension {extension!r} is not a file suffix: it must be empty or start with "
            "'.', contain no path separator, no '..' and no NUL, and have at most "
            f"{MAX_EXTENSION_BYTES} bytes, e.g. '.h5' or '.npy'."
        )
    return extension


def hash_string(key: str, fold: int = 1000) -> str:
    """Spread keys over ``fold`` sub-directories: a stable bucket name for ``key``.

    Use it as ``CheckpointWrapper(..., hash_fn=hash_string)`` when a single directory
    would hold too many files. The bucket comes from xxh3 (stable across processes).

    Parameters
    ----------
    key : str
        A sample key.
    fold : int, default=1000
        Number of buckets.

    Returns
    -------
    str
        The bucket, zero-padded to the width of ``fold - 1``.

    Raises
    ------
    InvalidArgumentError
        If ``fold`` is less than 1.

    Examples
    --------
    >>> hash_string("sample-1") == hash_string("sample-1")
    True
    >>> len(hash_string("sample-1"))
    3
    """
    if fold < 1:
        raise InvalidArgumentError(f"fold must be at least 1, got {fold}.")
    width = len(str(fold - 1))
    return f"{xxhash.xxh3_64_intdigest(key.encode('utf-8')) % fold:0{width}d}"


# ------------------------------------------------------------------------------ codecs


def save_hdf5(data: Any, path: str, header: bytes | None = None) -> None:
    """Save ``data`` to an HDF5 file (the default ``save_func``).

    numpy arrays and scalars of a numeric, boolean or bytes dtype are stored as the
    dataset ``array`` (or ``scalar``); any other object (lists, strings, dicts, object
    arrays, ...) is stored with cloudpickle as a ``uint8`` dataset ``pickle``.
    :func:`load_hdf5` returns an equal value of the same type.

    Parameters
    ----------
    data
        The value to save.
    path
        The file to write.
    header
        Bytes written in the file's HDF5 user block (the producer record of
        :mod:`~checkpoint_magic.pipelines.producer`); any HDF5 reader skips it.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_hdf5(np.arange(3.0), os.path.join(d, "a.h5"))
    ...     save_hdf5({"label": "cat"}, os.path.join(d, "b.h5"))
    ...     load_hdf5(os.path.join(d, "a.h5")), load_hdf5(os.path.join(d, "b.h5"))
    (array([0., 1., 2.]), {'label': 'cat'})
    """
    import h5py

    # The dataset's name says what was stored: "array" (an ndarray), "scalar" (a numpy
    # scalar) or "pickle". No attributes: each costs as much as a small dataset.
    options = {} if header is None else {"userblock_size": header_size(header)}
    with h5py.File(path, "w", **options) as f:
        if isinstance(data, (np.ndarray, np.generic)) and data.dtype.kind in _HDF5_KINDS:
            f.create_dataset("array" if isinstance(data, np.ndarray) else "scalar", data=data)
        else:
            import cloudpickle

            payload = cloudpickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
            f.create_dataset("pickle", data=np.frombuffer(payload, dtype=np.uint8))
    if header is not None:
        with open(path, "r+b") as raw:
            raw.write(header)


def load_hdf5(path: str | BinaryIO) -> Any:
    """Load what :func:`save_hdf5` saved (the default ``load_func``).

    A file written by another tool is read as its only dataset (or its ``array``
    dataset).

    Parameters
    ----------
    path : str or binary file
        The HDF5 file (or a file object, such as ``io.BytesIO`` of its bytes).

    Returns
    -------
    object
        The array, scalar or unpickled object that was saved.

    Raises
    ------
    StoreFormatError
        If the file has several datasets and none of the names :func:`save_hdf5` writes.
    """
    import h5py

    with h5py.File(path, "r") as f:
        if "array" in f:
            value = f["array"][()]
        elif "scalar" in f:
            return f["scalar"][()]
        elif "pickle" in f:
            return pickle.loads(f["pickle"][()].tobytes())
        else:
            names = list(f.keys())
            if len(names) != 1:
                raise StoreFormatError(
                    f"{path} has datasets {names}; load_hdf5 reads files with one dataset. "
                    "Pass your own load_func to read this file."
                )
            value = f[names[0]][()]
        return np.asarray(value)


def save_pickle(obj: Any, path: str, header: bytes | None = None) -> None:
    """Save ``obj`` with cloudpickle (how models are saved), after an optional ``header``.

    Parameters
    ----------
    obj
        The object to save.
    path
        The file to write.
    header
        A producer record written before the pickle (:func:`load_pickle` skips it).
    """
    import cloudpickle

    with open(path, "wb") as f:
        if header is not None:
            f.write(header)
        cloudpickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)


def load_pickle(path: str | BinaryIO) -> Any:
    """Load a pickle written by :func:`save_pickle`. Loading a pickle runs code: trust it.

    Parameters
    ----------
    path
        The file (or a binary file object at its start); a producer record at its start is
        skipped.

    Returns
    -------
    object
        The unpickled value.
    """
    if not isinstance(path, (str, os.PathLike)):
        skip_record(path)
        return pickle.load(path)
    with open(path, "rb") as f:
        skip_record(f)
        return pickle.load(f)


# ------------------------------------------------------------------------------ I/O


def retry_delay(attempt: int) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (doubling, capped).

    Parameters
    ----------
    attempt : int
        The number of the attempt that just failed, from 1.

    Returns
    -------
    float
        :data:`RETRY_DELAY` doubled after each failed attempt, at most :data:`MAX_RETRY_DELAY`.

    Examples
    --------
    >>> retry_delay(1) == RETRY_DELAY, retry_delay(2) == 2 * RETRY_DELAY, retry_delay(99)
    (True, True, 0.5)
    """
    return float(min(RETRY_DELAY * 2 ** (attempt - 1), MAX_RETRY_DELAY))


def check_attempts(attempts: Any) -> int:
    """Validate an ``attempts`` parameter (an integer, at least 1).

    Parameters
    ----------
    attempts : int
        The value to check.

    Returns
    -------
    int
        ``attempts`` as a Python int.

    Raises
    ------
    InvalidArgumentError
        If ``attempts`` is not an integer (booleans included) or is less than 1.

    Examples
    --------
    >>> check_attempts(3)
    3
    """
    if isinstance(attempts, bool) or not isinstance(attempts, (int, np.integer)) or attempts < 1:
        raise InvalidArgumentError(f"attempts must be an integer >= 1, got {attempts!r}.")
    return int(attempts)


def atomic_save(
    save_func: Callable[[Any, str], Any],
    data: Any,
    path: str,
    *,
    attempts: int = 1,
    suffix: str = "",
) -> None:
    """Save ``data`` to ``path`` atomically, trying up to ``attempts`` times.

    ``save_func(data, tmp_path)`` writes a temporary file in the directory of ``path``
    (created if needed), whose name ends with ``suffix`` (so savers that add an
    extension, like ``np.save``, keep the name); ``os.replace`` then moves it to
    ``path``. A failed attempt removes its temporary file and is retried after a short,
    growing delay; the last failure is raised.

    Parameters
    ----------
    save_func : callable
        ``save_func(data, path)`` writes ``data`` to ``path``.
    data : object
        What to save.
    path : str
        The final file.
    attempts : int, default=1
        How many times to try.
    suffix : str, default=""
        Ending of the temporary file's name.

    Raises
    ------
    Exception
        Whatever ``save_func`` or ``os.replace`` raised on the last attempt.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> with tempfile.TemporaryDirectory() as d:
    ...     atomic_save(lambda x, p: np.save(p, x), np.ones(2), os.path.join(d, "sub", "a.npy"),
    ...                 suffix=".npy")
    ...     os.listdir(os.path.join(d, "sub"))
    ['a.npy']
    """
    attempts = check_attempts(attempts)
    directory, name = os.path.split(path)
    for attempt in range(1, attempts + 1):
        tmp = os.path.join(directory, f".{name}.{uuid.uuid4().hex[:16]}.tmp{suffix}")
        try:
            if directory:
                os.makedirs(directory, exist_ok=True)
            save_func(data, tmp)
            os.replace(tmp, path)
            return
        except Exception as exc:  # retried below; the last one propagates
            if attempt == attempts:
                raise
            logger.warning(
                "Saving %s failed (attempt %d of %d), retrying: %s: %s",
                path,
                attempt,
                attempts,
                type(exc).__name__,
                exc,
            )
        finally:
            _remove_quietly(tmp)
        time.sleep(retry_delay(attempt))


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("Could not remove the temporary file %s: %s", path, exc)


class FileLoader:
    """Picklable callable that loads one checkpoint file, retrying on ``OSError``.

    Network filesystems sometimes fail a read that succeeds a moment later; the read is
    tried up to ``attempts`` times.

    Parameters
    ----------
    load_func
        ``load_func(path) -> data``.
    path
        The file.
    attempts
        How many times to try.
    """

    __slots__ = ("attempts", "load_func", "path")

    def __init__(self, load_func: Callable[[str], Any], path: str, attempts: int = 1) -> None:
        self.load_func = load_func
        self.path = path
        self.attempts = attempts

    def __call__(self) -> Any:
        for attempt in range(1, self.attempts + 1):
            try:
                return self.read()
            except OSError as exc:
                if attempt >= self.attempts:
                    raise
                logger.warning(
                    "Loading %s failed (attempt %d of %d), retrying: %s",
                    self.path,
                    attempt,
                    self.attempts,
                    exc,
                )
                time.sleep(retry_delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self) -> Any:
        """One attempt: ``load_func(path)``.

        Returns
        -------
        object
            What ``load_func`` returned.

        Raises
        ------
        OSError
            When the file cannot be read now (:meth:`__call__` retries it).
        """
        return self.load_func(self.path)

    def __getstate__(self) -> tuple[Any, str, int]:
        return (self.load_func, self.path, self.attempts)

    def __setstate__(self, state: tuple[Any, str, int]) -> None:
        self.load_func, self.path, self.attempts = state

    def __repr__(self) -> str:
        name = getattr(self.load_func, "__name__", repr(self.load_func))
        return f"FileLoader({name}, {self.path!r})"
