"""checkpoint_magic: checkpoint the expensive steps of notebooks, scripts and pipelines.

Front ends: ``@checkpoint`` (functions), ``InlineCheckpoint`` (a ``with`` block) and the
``%%checkpoint`` cell magic (``%load_ext checkpoint_magic``). All share one
content-addressed store (``.Lutil-checkpoint/``) that keeps every code version.

Public names are imported on first use, so ``import checkpoint_magic`` stays cheap.

Examples
--------
>>> import checkpoint_magic
>>> callable(checkpoint_magic.checkpoint)
True
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__

# Old module paths (checkpoint_magic.hashing, ...) live in _deprecated/ for one release.
__path__.append(os.path.join(os.path.dirname(__file__), "_deprecated"))

# public name -> submodule that defines it
_EXPORTS = {
    "ComplexParamsIdentifyWarning": "exceptions",
    "InlineCheckpoint": "inline",
    "Memory": "memory",
    "checkpoint": "decorator",
    "Store": "store",
    "dump": "savers.dump",
    "entries_frame": "tools.report",
    "load": "savers.dump",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # pragma: no cover
    from .decorator import checkpoint as checkpoint
    from .exceptions import ComplexParamsIdentifyWarning as ComplexParamsIdentifyWarning
    from .inline import InlineCheckpoint as InlineCheckpoint
    from .memory import Memory as Memory
    from .savers.dump import dump as dump
    from .savers.dump import load as load
    from .store import Store as Store
    from .tools.report import entries_frame as entries_frame


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'checkpoint_magic' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


def load_ipython_extension(ipython: Any) -> None:
    """Register the ``%%checkpoint`` cell magic (``%load_ext checkpoint_magic``).

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
        The shell loading the extension.
    """
    from .notebook.magic import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove what :func:`load_ipython_extension` registered (``%unload_ext checkpoint_magic``).

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell
        The shell unloading the extension.
    """
    from .notebook.magic import unload_ipython_extension as unload

    unload(ipython)
