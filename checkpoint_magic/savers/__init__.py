"""Savers for what plain pickling cannot handle, and the full dump and load of a pipeline.

Examples
--------
>>> from checkpoint_magic.savers import PickleSaver, registered_savers
>>> any(isinstance(s, PickleSaver) for s in registered_savers())
True
"""

from __future__ import annotations

from .base import Saver, saver_name
from .builtin import (
    NumpySaver,
    PandasSaver,
    PickleSaver,
    SklearnSaver,
    StripUnpicklableSaver,
    strip_unpicklable,
)
from .registry import (
    find_saver,
    find_store_saver,
    is_fallback_saver,
    register_saver,
    registered_savers,
    saver_for,
    store_savers,
    unregister_saver,
)
from .torch import TorchModuleSaver, TorchTensorSaver

__all__ = [
    "NumpySaver",
    "PandasSaver",
    "PickleSaver",
    "Saver",
    "SklearnSaver",
    "StripUnpicklableSaver",
    "TorchModuleSaver",
    "TorchTensorSaver",
    "find_saver",
    "find_store_saver",
    "is_fallback_saver",
    "register_saver",
    "registered_savers",
    "saver_for",
    "saver_name",
    "store_savers",
    "strip_unpicklable",
    "unregister_saver",
]
