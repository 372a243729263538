"""Store backends: the I/O primitives under :class:`~.store.Store`, and their registry.

A store location is a local path or a URL. :func:`open_backend` picks the backend by the
location's scheme (``"local"`` for a path); :func:`register_backend` adds one. The registry
is filled explicitly, never by import side effects.

Examples
--------
>>> import tempfile
>>> open_backend(tempfile.mkdtemp()).exists()
True
>>> sorted(registered_backends())[:4], "s3" in registered_backends()
(['abfs', 'abfss', 'adl', 'az'], True)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from ...exceptions import InvalidArgumentError
from .base import TICK_SECONDS, Staged, Stat, StoreBackend, UnsafeStoreError
from .local import LocalBackend, atomic_write

__all__ = [
    "FSSPEC_SCHEMES",
    "TICK_SECONDS",
    "LocalBackend",
    "Staged",
    "Stat",
    "StoreBackend",
    "UnsafeStoreError",
    "atomic_write",
    "open_backend",
    "register_backend",
    "registered_backends",
    "scheme_of",
]

BackendFactory = Callable[..., StoreBackend]


def _url_backend(location: str, **storage_options: Any) -> StoreBackend:
    """The fsspec backend (:mod:`.url`), imported when a URL store is first opened."""
    from .url import FsspecBackend

    return FsspecBackend(location, storage_options)


#: URL schemes served through fsspec (s3fs, gcsfs, adlfs... must be installed for their scheme).
FSSPEC_SCHEMES = ("s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "memory", "hdfs", "sftp")

_registry: dict[str, BackendFactory] = {"local": LocalBackend}
_registry.update(dict.fromkeys(FSSPEC_SCHEMES, _url_backend))
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make ``factory(location)`` the backend of store locations starting with ``<scheme>://``.

    ``"local"`` is the backend of plain paths (and ``file://`` URLs). A later registration
    of a scheme replaces the earlier one.

    Parameters
    ----------
    scheme : str
        A URL scheme (lower case, without ``://``), or ``"local"``.
    factory : callable
        ``factory(location, **storage_options)`` returns a :class:`StoreBackend`.

    Examples
    --------
    >>> register_backend("mylocal", lambda location: LocalBackend(location[len("mylocal://"):]))
    >>> open_backend("mylocal:///tmp/somewhere")
    LocalBackend('/tmp/somewhere')
    >>> del _registry["mylocal"]
    """
    _registry[scheme] = factory


def registered_backends() -> dict[str, BackendFactory]:
    """A copy of the registry: scheme -> backend factory.

    Returns
    -------
    dict of str to callable
        Changing it does not change the registry.
    """
    return dict(_registry)


def scheme_of(location: str | os.PathLike[str]) -> str:
    """The scheme of a store location: a URL's scheme, ``"local"`` for a path.

    Parameters
    ----------
    location : str or os.PathLike
        A store path or URL.

    Returns
    -------
    str
        The lower-cased scheme; ``"local"`` for paths and ``file://`` URLs.

    Examples
    --------
    >>> scheme_of("/tmp/store"), scheme_of("s3://bucket/store"), scheme_of("file:///tmp/x")
    ('local', 's3', 'local')
    """
    match = _URL.match(os.fspath(location))
    if match is None or match.group(1).lower() == "file":
        return "local"
    return match.group(1).lower()


def open_backend(location: str | os.PathLike[str], **storage_options: Any) -> StoreBackend:
    """The backend of a store location (path or URL), chosen by its scheme.

    Parameters
    ----------
    location : str or os.PathLike
        A local path, a ``file://`` URL, or a URL of a registered scheme.
    **storage_options
        Passed to the backend factory (fsspec options of a URL backend).

    Returns
    -------
    StoreBackend
        A backend over that location; nothing is created yet.

    Raises
    ------
    InvalidArgumentError
        No backend is registered for the location's scheme.
    """
    text = os.fspath(location)
    scheme = scheme_of(text)
    if scheme == "local" and text.startswith("file://"):
        text = text[len("file://") :]
    factory = _registry.get(scheme)
    if factory is None:
        raise InvalidArgumentError(
            f"no store backend for {scheme}:// (store {text!r}); known: "
            f"{', '.join(sorted(_registry))}. Register one with "
            "checkpoint_magic.store.backends.register_backend"
        )
    return factory(text, **storage_options) if storage_options else factory(text)
