"""Store backends: the I/O primitives under :class:`~checkpoint_magic.store.Store`, and their registry.

A store location is a local path or a URL. :func:`open_backend` picks the backend by the
location's scheme (``"local"`` for a path); :func:`register_backend` adds one. The registry
is filled explicitly, never by import side effects.

Examples
--------
>>> import tempfile
>>> open_backend(tempfile.mkdtemp()).exists()
True
>>> sorted(registered_backends())
['local']
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

from ...exceptions import InvalidArgumentError
from .base import Staged, Stat, StoreBackend, UnsafeStoreError
from .local import LocalBackend, atomic_write

__all__ = [
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

BackendFactory = Callable[[str], StoreBackend]

_registry: dict[str, BackendFactory] = {"local": LocalBackend}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")


def register_backend(scheme: str, factory: BackendFactory) -> None:
    """Make ``factory(location)`` the backend of store locations starting with ``<scheme>://``.

    ``"local"`` is the backend of plain paths (and ``file://`` URLs).
    """
    _registry[scheme] = factory


def registered_backends() -> dict[str, BackendFactory]:
    """A copy of the registry: scheme -> backend factory."""
    return dict(_registry)


def scheme_of(location: str | os.PathLike[str]) -> str:
    """The scheme of a store location: a URL's scheme, ``"local"`` for a path.

    Examples
    --------
    >>> scheme_of("/tmp/store"), scheme_of("s3://bucket/store"), scheme_of("file:///tmp/x")
    ('local', 's3', 'local')
    """
    match = _URL.match(os.fspath(location))
    if match is None or match.group(1).lower() == "file":
        return "local"
    return match.group(1).lower()


def open_backend(location: str | os.PathLike[str]) -> StoreBackend:
    """The backend of a store location (path or URL).

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
    return factory(text)
