"""Files and folders as inputs: which values name one, and their content digest (stat-cached).

A path argument, a watched path or a string constant in checkpointed code that names an
existing file or folder counts by *content*: xxh3-128 of the bytes of a file; for a folder,
its sorted listing with each entry's kind and digest, recursively. A ``(device, inode, size,
mtime_ns)`` signature cache keeps an unchanged file from being read again: on a hit, a file
input costs one ``stat``.

Examples
--------
>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "data.csv")
>>> with open(path, "w") as f:
...     _ = f.write("a,b\\n1,2\\n")
>>> path_candidate(path) == os.path.abspath(path)
True
>>> len(content_digest(path))
32
"""

from __future__ import annotations

import io
import logging
import mmap
import os
import re
import stat as stat_module
import types
import weakref
from collections.abc import Iterable
from typing import Any

import xxhash

from .encoding import HASH_SCHEME_VERSION, hex_digest
from .origin import is_user_code

__all__ = [
    "code_path_constants",
    "content_digest",
    "nested_path_values",
    "path_candidate",
    "path_shaped",
    "path_values",
    "signature",
]

logger = logging.getLogger(__name__)

_READ = 1 << 22  # bytes read at a time
_MAX_PATH = 4096
_DIGESTS: dict[str, tuple[tuple[int, int, int, int], str]] = {}  # abs path -> (signature, digest)
_DIGESTS_MAX = 65536
_CONSTANTS: weakref.WeakKeyDictionary[types.CodeType, tuple[str, ...]] = weakref.WeakKeyDictionary()
#: type -> whether its values name a path (``str`` or ``os.PathLike``): see path_values;
#: only types whose attributes cannot change (builtin and extension types: int, ndarray...)
_PATH_TYPES: dict[type, int] = {}  # 0: neither, _PATH, _OPEN_FILE
_PATH, _OPEN_FILE = 1, 2
_IMMUTABLE_TYPE = 1 << 8  # Py_TPFLAGS_IMMUTABLETYPE
_PATH_TYPES_MAX = 1024
#: Paths never taken as inputs: hashing the working folder or the root would read everything.
_TOO_BROAD = frozenset({"", ".", "..", "/", "~"})


def path_candidate(value: Any) -> str | None:
    """Return the absolute path that ``value`` names if it is a ``str``/``os.PathLike``, else None.

    Only the form is checked here (no file system access): a short string without NUL or
    newline, not ``.``, ``..`` or ``/``.

    Parameters
    ----------
    value : object
        Any value (an argument, a global, a constant).

    Returns
    -------
    str or None
        The absolute, user-expanded path, or None.

    Examples
    --------
    >>> import os
    >>> path_candidate("data.csv") == os.path.abspath("data.csv")
    True
    >>> path_candidate("."), path_candidate(3)
    (None, None)
    """
    if isinstance(value, str):
        text = value
    elif isinstance(value, os.PathLike):
        text = os.fspath(value)
        if not isinstance(text, str):
            return None
    else:
        return None
    if len(text) > _MAX_PATH or "\0" in text or "\n" in text or text.strip() in _TOO_BROAD:
        return None
    if text[:1] == "~":  # what it means depends on HOME
        return os.path.abspath(os.path.expanduser(text))
    cwd = os.getcwd()  # what a relative path means (abspath asks it too)
    known = _ABSOLUTE.get(text)
    if known is not None and known[0] == cwd:
        return known[1]
    if len(_ABSOLUTE) >= _ABSOLUTE_MAX:
        _ABSOLUTE.clear()
    found = _ABSOLUTE[text] = (cwd, os.path.abspath(os.path.expanduser(text)))
    return found[1]


_SPACE = re.compile(r"\s")
#: text -> (working folder, absolute path): a hit with 64 names in its arguments asks 3 times
_ABSOLUTE: dict[str, tuple[str, str]] = {}
_ABSOLUTE_MAX = 4096


def path_values(values: Iterable[Any]) -> dict[Any, Any]:
    """The values that are ``str`` or ``os.PathLike``, by what ``os.fspath`` makes of them.

    An open file object (``io.IOBase`` with a ``str`` name, open for reading) gives the
    path it was opened with: a file handle read by the code makes that file an input by
    content; a handle open only for writing (a log) does not.

    This runs on every call of a checkpointed function: what a builtin or extension type
    is, is found once per type (a class is asked again: it may gain ``__fspath__``), and a
    type without ``__fspath__`` is never checked against the abstract ``os.PathLike``,
    slow to check. The type is asked, as :func:`os.fspath` does, never the value: an
    object whose ``__getattr__`` raises something else than ``AttributeError``
    (``dict.__getitem__`` as ``__getattr__``) is an ordinary value, not an error.

    Parameters
    ----------
    values : iterable
        Any values (a call's arguments, a block's watched values).

    Returns
    -------
    dict
        ``os.fspath(value) -> value`` for each path-like value, in order.

    Examples
    --------
    >>> import pathlib
    >>> path_values([3, "data.csv", pathlib.PurePosixPath("d/x.npy"), b"raw"])
    {'data.csv': 'data.csv', 'd/x.npy': PurePosixPath('d/x.npy')}
    """
    found = {}
    for v in values:
        kind = type(v)
        path_like = _PATH_TYPES.get(kind)
        if path_like is None:
            path_like = (
                _PATH
                if issubclass(kind, str)
                or (hasattr(kind, "__fspath__") and issubclass(kind, os.PathLike))
                else _OPEN_FILE
                if issubclass(kind, io.IOBase)
                else 0
            )
            if kind.__flags__ & _IMMUTABLE_TYPE:  # a class may gain __fspath__: asked each time
                if len(_PATH_TYPES) >= _PATH_TYPES_MAX:
                    _PATH_TYPES.clear()
                _PATH_TYPES[kind] = path_like
        if path_like == _PATH:
            found[os.fspath(v)] = v
        elif path_like == _OPEN_FILE and (name := _read_file_name(v)) is not None:
            found[name] = name  # open("data.csv"): the file it reads, by its name
    return found


def _read_file_name(f: Any) -> str | None:
    """The name of the file an open file object reads; None for a handle that only writes.

    A log opened with ``"a"`` or ``"w"`` grows with every write: its content is never read
    through that handle, and counting it would make every call after a write miss.
    """
    try:
        name = getattr(f, "name", None)
        return name if type(name) is str and not f.closed and f.readable() else None
    except Exception as exc:  # a broken file-like object: not a file the code reads
        logger.debug("open file %r not taken as an input: %s", type(f), exc)
        return None


def signature(path: str) -> tuple[int, int, int, int] | None:
    """Return ``(device, inode, size, mtime_ns)`` of a path, None if it does not exist.

    Parameters
    ----------
    path : str
        The path (symbolic links are followed).

    Returns
    -------
    tuple of four int, or None
        The stat signature that tells whether a file may have changed.

    Examples
    --------
    >>> signature("/nonexistent/file") is None
    True
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _read_digest(path: str) -> str:
    """xxh3-128 of a file's bytes: memory-mapped (no copy), or read in 4 MiB chunks."""
    h = xxhash.xxh3_128()
    with open(path, "rb", buffering=0) as f:
        try:
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                h.update(mapped)
                return h.hexdigest()
        except (ValueError, OSError):  # empty file, or a file system without mmap
            pass
        buf = bytearray(_READ)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def content_digest(path: str, _depth: int = 0) -> str | None:
    """Return the digest of a file's bytes or a folder's listing and contents; None if missing.

    An unchanged ``(device, inode, size, mtime_ns)`` reuses the digest computed before.

    Parameters
    ----------
    path : str
        A file or folder (folders are walked recursively, in name order).
    _depth : int, default 0
        Internal: the folder nesting reached (beyond 32 levels a folder counts by its path).

    Returns
    -------
    str or None
        32 hexadecimal digits; None when nothing exists at ``path``.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "a.txt"), "w") as f:
    ...     _ = f.write("x")
    >>> len(content_digest(d)), content_digest(os.path.join(d, "missing"))
    (32, None)
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    sig = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if stat_module.S_ISDIR(st.st_mode):
        if _depth > 32:
            return hex_digest("deep folder", path)
        try:
            names = sorted(os.listdir(path))
        except OSError as exc:
            logger.debug("cannot list %s: %s", path, exc)
            return hex_digest("unlistable folder", str(sig))
        parts = [str(HASH_SCHEME_VERSION), "folder"]
        for name in names:
            parts += [name, content_digest(os.path.join(path, name), _depth + 1) or "gone"]
        return hex_digest(*parts)
    if not stat_module.S_ISREG(st.st_mode):
        return hex_digest("special file", str(st.st_mode))
    hit = _DIGESTS.get(path)
    if hit is not None and hit[0] == sig:
        return hit[1]
    try:
        digest = _read_digest(path)
    except OSError as exc:
        logger.debug("cannot read %s: %s", path, exc)
        return hex_digest("unreadable file", str(sig))
    if len(_DIGESTS) >= _DIGESTS_MAX:
        _DIGESTS.clear()
    _DIGESTS[path] = (sig, digest)
    return digest


#: Values never looked into for paths (the common scalars: one set lookup per argument).
_LEAVES = frozenset({int, float, bool, type(None), str, bytes, complex})
_NESTED_MAX = 64  # paths taken from inside containers, at most
_NESTED_ITEMS = 256  # containers longer than this are not looked into
_CONTAINERS = frozenset({dict, list, tuple, set, frozenset})


def nested_path_values(values: Iterable[Any]) -> dict[Any, Any]:
    """Paths held inside the values: in lists, tuples, dicts, dataclasses and user objects.

    ``f(["a.csv", "b.csv"])``, ``f({"path": "data.csv"})`` and ``f(Config(path=...))`` read
    the files they name as much as ``f("data.csv")`` does. Two levels deep, in containers
    of at most 256 items; a string counts only when it is shaped like a file name
    (:func:`path_shaped`), a path-like object always; at most 64.

    Parameters
    ----------
    values : iterable
        The values (a call's arguments, a block's watched values); their top level is
        :func:`path_values`' job.

    Returns
    -------
    dict
        ``os.fspath(value) -> value`` for each path found, in order.

    Examples
    --------
    >>> nested_path_values([3, ["data.csv", "mean"], {"out": "d/x.npy"}])
    {'data.csv': 'data.csv', 'd/x.npy': 'd/x.npy'}
    """
    found: dict[Any, Any] = {}
    for v in values:
        if type(v) not in _LEAVES:
            _nested(v, found, 2)
    return found


def _nested(v: Any, found: dict[Any, Any], depth: int) -> None:
    kind = type(v)
    if kind is dict:
        items: Any = v.values()
    elif kind in _CONTAINERS:
        items = v
    elif hasattr(kind, "__dataclass_fields__") or (not isinstance(v, type) and is_user_code(kind)):
        try:  # never through __getattr__ (a proxy's may raise anything, or compute)
            items = object.__getattribute__(v, "__dict__")
        except AttributeError:  # __slots__
            return
        items = items.values() if type(items) is dict else ()
    else:
        return
    if len(items) > _NESTED_ITEMS:
        return
    for x in items:
        if len(found) >= _NESTED_MAX:
            return
        kind = type(x)
        if kind is str:
            if path_shaped(x):
                found.setdefault(x, x)
        elif kind in _LEAVES:
            continue
        elif paths := path_values((x,)):  # a pathlib.Path, an open file
            found.update(paths)
        elif depth > 1 and (kind in _CONTAINERS or hasattr(kind, "__dataclass_fields__")):
            _nested(x, found, depth - 1)


def path_shaped(text: str) -> bool:
    """Whether a string constant is shaped like a file name (``"data.csv"``, ``"inputs/"``).

    Parameters
    ----------
    text : str
        The constant.

    Returns
    -------
    bool
        True for 2 to 1023 characters with a dot or a separator and no whitespace.

    Examples
    --------
    >>> path_shaped("data.csv"), path_shaped("a b.csv"), path_shaped("mean")
    (True, False, False)
    """
    return (
        1 < len(text) < 1024
        and ("." in text or "/" in text or os.sep in text)
        and _SPACE.search(text) is None
        and "\0" not in text
        and text not in _TOO_BROAD  # as path_candidate, without making the path absolute
    )


def code_path_constants(code: types.CodeType) -> tuple[str, ...]:
    """Return string constants of code shaped like a file name (``"data.csv"``, ``"inputs/"``).

    Nested code is searched too; these are candidates to check for existence on each call.

    Parameters
    ----------
    code : types.CodeType
        The code object.

    Returns
    -------
    tuple of str
        Up to 64 constants, in order of first appearance (cached while the code lives).

    Examples
    --------
    >>> code_path_constants(compile("pd.read_csv('data.csv', sep=',')", "<s>", "exec"))
    ('data.csv',)
    """
    hit = _CONSTANTS.get(code)
    if hit is not None:
        return hit
    found: list[str] = []
    stack = [code]
    while stack:
        current = stack.pop()
        for c in current.co_consts:
            if isinstance(c, types.CodeType):
                stack.append(c)
            elif isinstance(c, str) and path_shaped(c) and c not in found:
                found.append(c)
    result = tuple(found[:64])
    _CONSTANTS[code] = result
    return result
