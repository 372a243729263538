"""Settings read from the environment: store location, fsync, signing secret, size budget.

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

import os
from pathlib import Path

__all__ = [
    "DEFAULT_STORE_DIRNAME",
    "ENV_DIR",
    "ENV_FSYNC",
    "ENV_MAX_SIZE",
    "ENV_SECRET",
    "fsync_enabled",
    "resolve_store_location",
    "resolve_store_path",
    "secret_key",
]

DEFAULT_STORE_DIRNAME = ".Lutil-checkpoint"
ENV_DIR = "CHECKPOINT_MAGIC_DIR"
ENV_FSYNC = "CHECKPOINT_MAGIC_FSYNC"
ENV_SECRET = "CHECKPOINT_MAGIC_SECRET"
ENV_MAX_SIZE = "CHECKPOINT_MAGIC_MAX_SIZE"


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
