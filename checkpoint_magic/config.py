"""Settings read from the environment: store location, fsync, signing secret, size budget, notes,
URL stores.

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
    """Extra fsspec options for URL stores, from ``CHECKPOINT_MAGIC_STORAGE_OPTIONS`` (a JSON object).

    Credentials and endpoints normally come from the standard environment
    (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...); this is for anything else, and it
    reaches worker processes (Dask) through their environment.

    Raises
    ------
    InvalidArgumentError
        The variable is set but is not a JSON object.
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
    """Where URL stores keep their local read cache: ``$CHECKPOINT_MAGIC_CACHE``, else the user cache dir."""
    env = os.environ.get(ENV_CACHE)
    if env:
        return Path(os.path.abspath(os.path.expanduser(env)))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "checkpoint_magic" / "blobs"


def blob_cache_max_bytes() -> int:
    """The bound of the local read cache (``CHECKPOINT_MAGIC_CACHE_SIZE`` in bytes; 0 disables it)."""
    text = os.environ.get(ENV_CACHE_SIZE, "").strip()
    try:
        return max(0, int(float(text))) if text else DEFAULT_CACHE_BYTES
    except ValueError:
        return DEFAULT_CACHE_BYTES


def lease_ttl() -> float:
    """Seconds a computation's lease lives without a heartbeat before another caller takes over.

    ``CHECKPOINT_MAGIC_LEASE_TTL``, default 60. The holder renews it every third of that.
    """
    text = os.environ.get(ENV_LEASE_TTL, "").strip()
    try:
        return max(0.5, float(text)) if text else DEFAULT_LEASE_TTL
    except ValueError:
        return DEFAULT_LEASE_TTL


def resolve_store_path(path: str | os.PathLike[str] | None = None) -> Path:
    """Return the store directory: ``path``, else ``$CHECKPOINT_MAGIC_DIR``, else ``./.Lutil-checkpoint``.

    The result is absolute, so a later ``os.chdir`` does not move the store.

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
    """The store location as a string: a URL (``scheme://...``) as given, else :func:`resolve_store_path`.

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
    """Whether blobs and manifests are fsync'ed before they are published (``CHECKPOINT_MAGIC_FSYNC=1``).

    Off by default: every blob is verified against its name when it is read, so a blob torn
    by a power cut is detected and recomputed; fsync only buys durability at ~0.25 s per GiB.
    """
    return os.environ.get(ENV_FSYNC, "").strip().lower() in {"1", "true", "yes", "on"}


def secret_key() -> bytes | None:
    """The HMAC key for signed entries (``CHECKPOINT_MAGIC_SECRET``), or ``None`` when unset."""
    value = os.environ.get(ENV_SECRET)
    return value.encode("utf-8") if value else None


def notes_mode() -> str:
    """``"auto"``, ``"on"`` or ``"off"``: :data:`notes` if set, else ``$CHECKPOINT_MAGIC_NOTES``.

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
