"""Settings read from the environment: store, fsync, signing, budget, notes, URL stores.

Every setting has one environment variable, read when it is needed (not at import), so a
notebook can change ``os.environ`` and the next checkpoint sees it.

Examples
--------
>>> import os
>>> from checkpoint_magic.config import resolve_store_path
>>> resolve_store_path("/tmp/somewhere").as_posix()
'/tmp/somewhere'
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .exceptions import InvalidArgumentError

__all__ = [
    "DEFAULT_STORE_DIRNAME",
    "ENV_CACHE",
    "ENV_CACHE_SIZE",
    "ENV_DIR",
    "ENV_FSYNC",
    "ENV_LEASE_TTL",
    "ENV_MAX_SIZE",
    "ENV_NOTES",
    "ENV_SECRET",
    "NOTE_HIT_SECONDS",
    "ENV_STORAGE_OPTIONS",
    "blob_cache_dir",
    "blob_cache_max_bytes",
    "fsync_enabled",
    "lease_ttl",
    "resolve_store_location",
    "notes",
    "notes_mode",
    "resolve_store_path",
    "secret_key",
    "storage_options",
]

DEFAULT_STORE_DIRNAME = ".Lutil-checkpoint"
ENV_DIR = "CHECKPOINT_MAGIC_DIR"
ENV_FSYNC = "CHECKPOINT_MAGIC_FSYNC"
ENV_SECRET = "CHECKPOINT_MAGIC_SECRET"
ENV_MAX_SIZE = "CHECKPOINT_MAGIC_MAX_SIZE"
ENV_NOTES = "CHECKPOINT_MAGIC_NOTES"

#: The one-line notes on hits and misses (:mod:`checkpoint_magic.ui.notes`): ``"auto"`` (shown
#: in IPython and Jupyter, quiet in scripts), ``"on"`` (also in scripts, on stderr) or
#: ``"off"``. ``None`` defers to ``$CHECKPOINT_MAGIC_NOTES`` (default ``"auto"``).
notes: str | None = None
#: A hit is noted only if the computation it skips took at least this long (seconds).
NOTE_HIT_SECONDS = 1.0
_NOTES_VALUES = {"auto": "auto", "on": "on", "1": "on", "true": "on", "yes": "on"}
_NOTES_VALUES.update({"off": "off", "0": "off", "false": "off", "no": "off"})
ENV_STORAGE_OPTIONS = "CHECKPOINT_MAGIC_STORAGE_OPTIONS"
ENV_CACHE = "CHECKPOINT_MAGIC_CACHE"
ENV_CACHE_SIZE = "CHECKPOINT_MAGIC_CACHE_SIZE"
ENV_LEASE_TTL = "CHECKPOINT_MAGIC_LEASE_TTL"
#: Default bound of the local read cache of URL stores.
DEFAULT_CACHE_BYTES = 1 << 30
#: Default seconds without a heartbeat after which a computation's lease is taken over.
DEFAULT_LEASE_TTL = 60.0


def storage_options() -> dict[str, Any]:
    """Return extra fsspec options for URL stores, from ``CHECKPOINT_MAGIC_STORAGE_OPTIONS`` (JSON).

    Credentials and endpoints normally come from the standard environment
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...); this is for anything else, and it
    reaches worker processes (Dask) through their environment.

    Returns
    -------
    dict of str to object
        The options; empty when the variable is unset or blank.

    Raises
    ------
    InvalidArgumentError
        The variable is set but is not a JSON object.

    Examples
    --------
    >>> _ = os.environ.pop(ENV_STORAGE_OPTIONS, None)
    >>> storage_options()
    {}
    """
    text = os.environ.get(ENV_STORAGE_OPTIONS, "").strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        value = exc
    if not isinstance(value, dict):
        raise InvalidArgumentError(
            f"{ENV_STORAGE_OPTIONS} must be a JSON object such as "
            f"'{{\"anon\": false}}' (got {text[:80]!r})"
        )
    return value


def blob_cache_dir() -> Path:
    """Return where URL stores keep their local read cache.

    Returns
    -------
    pathlib.Path
        ``$CHECKPOINT_MAGIC_CACHE``, else ``checkpoint_magic/blobs`` in the user cache directory
        (``$XDG_CACHE_HOME`` or ``~/.cache``).

    Examples
    --------
    >>> blob_cache_dir().is_absolute()
    True
    """
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "checkpoint_magic" / "blobs"


def blob_cache_max_bytes() -> int:
    """Return the bound of the local read cache (``CHECKPOINT_MAGIC_CACHE_SIZE`` in bytes).

    Returns
    -------
    int
        The bound; 0 disables the cache; :data:`DEFAULT_CACHE_BYTES` when unset or invalid.
    """
    text = os.environ.get(ENV_CACHE_SIZE, "").strip()
    try:
        return max(0, int(float(text))) if text else DEFAULT_CACHE_BYTES
    except ValueError:
        return DEFAULT_CACHE_BYTES


def lease_ttl() -> float:
    """Return the seconds a lease lives without a heartbeat before another caller takes over.

    ``CHECKPOINT_MAGIC_LEASE_TTL``, default 60. The holder renews it every third of that.

    Returns
    -------
    float
        At least 0.5; :data:`DEFAULT_LEASE_TTL` when unset or invalid.
    """
    text = os.environ.get(ENV_LEASE_TTL, "").strip()
    try:
        return max(0.5, float(text)) if text else DEFAULT_LEASE_TTL
    except ValueError:
        return DEFAULT_LEASE_TTL


def resolve_store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the store directory: ``path``, ``$CHECKPOINT_MAGIC_DIR``, or ``./.Lutil-checkpoint``.

    The result is absolute, so a later ``os.chdir`` does not move the store.

    Parameters
    ----------
    path : str or os.PathLike, optional
        The store directory given by the caller; ``~`` is expanded.

    Returns
    -------
    pathlib.Path
        The absolute store directory (not created).

    Examples
    --------
    >>> resolve_store_path("relative/dir").is_absolute()
    True
    """
    if path is None:
        env = os.environ.get(ENV_DIR)
        path = env if env else DEFAULT_STORE_DIRNAME
    return Path(os.path.abspath(os.path.expanduser(os.fspath(path))))


def resolve_store_location(path: str | os.PathLike[str] | None = None) -> str:
    """Return the store location as a string: a URL (``scheme://...``) as given, else a local path.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A URL or a directory; None uses ``$CHECKPOINT_MAGIC_DIR``, then the default.

    Returns
    -------
    str
        The URL, or the absolute directory from :func:`resolve_store_path` (``file://`` URLs
        included).

    Examples
    --------
    >>> resolve_store_location("memory://bucket/store")
    'memory://bucket/store'
    >>> resolve_store_location("/tmp/somewhere")
    '/tmp/somewhere'
    """
    if path is None:
        path = os.environ.get(ENV_DIR) or None
    if path is not None and "://" in os.fspath(path) and not os.fspath(path).startswith("file://"):
        return os.fspath(path)
    return str(resolve_store_path(path))


def fsync_enabled() -> bool:
    """Whether blobs and manifests are fsync'ed before publication (``CHECKPOINT_MAGIC_FSYNC=1``).

    Off by default: every blob is verified against its name when it is read, so a blob torn
    by a power cut is detected and recomputed; fsync only buys durability at ~0.25 s per GiB.

    Returns
    -------
    bool
        True when the variable is ``1``, ``true``, ``yes`` or ``on``.
    """
    return os.environ.get(ENV_FSYNC, "").strip().lower() in {"1", "true", "yes", "on"}


# Every hit asks for the secret, and it is usually unset. ``os.environ.get`` of an unset name
# raises and catches a KeyError inside ``Mapping.get``: ~0.5 us, 5 % of a tiny hit. The
# mapping keeps its items in a dict keyed by encoded names (``os._Environ._data`` in CPython
# and PyPy; ``__getitem__`` is ``_data[encodekey(name)]``), which answers "unset" in 30 ns.
# Only that answer comes from it, and only while ``os.environ`` is the object it was at import
# (``os.environ[...] = ``, ``del``, ``putenv`` through it and pytest's monkeypatch all update
# that dict); anything else, or a Python without it, goes through ``os.environ.get``.
_ENVIRON = os.environ
_ENV_DATA: Any = getattr(_ENVIRON, "_data", None)
_SECRET_NAME: Any = None
try:
    _SECRET_NAME = _ENVIRON.encodekey(ENV_SECRET)
except (AttributeError, TypeError, ValueError):  # not CPython's _Environ: no shortcut
    _ENV_DATA = None
if not isinstance(_ENV_DATA, dict):
    _ENV_DATA = None


def secret_key() -> bytes | None:
    """Return the HMAC key for signed entries (``CHECKPOINT_MAGIC_SECRET``), or ``None`` when unset.

    Returns
    -------
    bytes or None
        The UTF-8 encoded secret.
    """
    environ = os.environ
    if environ is _ENVIRON and _ENV_DATA is not None and _SECRET_NAME not in _ENV_DATA:
        return None  # unset (the usual case), answered without raising a KeyError
    value = environ.get(ENV_SECRET)
    return value.encode("utf-8") if value else None


def notes_mode() -> str:
    """Return ``"auto"``, ``"on"`` or ``"off"``: :data:`notes`, else ``$CHECKPOINT_MAGIC_NOTES``.

    Returns
    -------
    str
        The mode (``1``/``true``/``yes`` read as ``"on"``, ``0``/``false``/``no`` as ``"off"``).

    Raises
    ------
    InvalidArgumentError
        When the setting is none of these.

    Examples
    --------
    >>> import os
    >>> os.environ[ENV_NOTES] = "1"
    >>> notes_mode()
    'on'
    >>> del os.environ[ENV_NOTES]
    >>> notes_mode()
    'auto'
    """
    value = notes if notes is not None else os.environ.get(ENV_NOTES, "auto")
    mode = _NOTES_VALUES.get(str(value).strip().lower())
    if mode is None:
        from .exceptions import InvalidArgumentError

        raise InvalidArgumentError(
            f"checkpoint_magic notes setting {value!r} (config.notes or ${ENV_NOTES}) must be "
            "'auto', 'on' or 'off'"
        )
    return mode
