"""The base of savers: the :class:`Saver` interface and the pickling and JSON helpers savers share.

:mod:`checkpoint_magic.savers` (the built-in savers and the registry),
:mod:`checkpoint_magic.savers.torch`, :mod:`checkpoint_magic.store.codecs.saver_codec` and
:mod:`checkpoint_magic.savers.dump` import from here, so none of them has to import another
to get the base (``savers`` imports ``savers_torch`` to register its savers: ``savers_torch``
importing ``savers`` back was a circular import). :class:`Saver` is public through
:mod:`checkpoint_magic.savers`.

Examples
--------
>>> class_path(Saver())
'checkpoint_magic.savers.Saver'
"""

from __future__ import annotations

import io
import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Log under the public package's name: these records belong to the savers' log.
logger = logging.getLogger("checkpoint_magic.savers")

__all__ = ["Saver"]


class Saver:
    """Base class of savers: write an object as files into a directory and read it back.

    Subclasses implement :meth:`can_save`, :meth:`save` and :meth:`load`. ``load`` must read
    everything it needs before returning: the directory is deleted afterwards. When the
    files come from the store they are private copies of the verified blobs, so ``load``
    may open them in any mode without touching the store.
    An optional ``name`` attribute distinguishes two registered instances of one class.
    """

    name: str | None = None

    def can_save(self, obj: Any) -> bool:
        """Whether this saver handles ``obj``; called for every stored value, so keep it cheap."""
        raise NotImplementedError

    def save(self, obj: Any, path: str) -> None:
        """Write ``obj`` as one or more files into the existing, empty directory ``path``."""
        raise NotImplementedError

    def load(self, path: str) -> Any:
        """Rebuild the object from the files :meth:`save` wrote into ``path``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# Documented, pickled and named as checkpoint_magic.savers.Saver, where users import it from.
Saver.__module__ = "checkpoint_magic.savers"


def class_path(obj: Any) -> str:
    """``module.QualifiedName`` of the class of ``obj``."""
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class HookedPickler:
    """Factory of cloudpickle picklers that may externalize objects through ``persistent_id``."""

    @staticmethod
    def dumps(obj: Any, persistent_id: Callable[[Any], Any] | None = None) -> bytes:
        import cloudpickle

        if persistent_id is None:
            return cloudpickle.dumps(obj, protocol=5)
        hook = persistent_id

        class Pickler(cloudpickle.CloudPickler):
            def persistent_id(self, o: Any) -> Any:
                return hook(o)

        buf = io.BytesIO()
        Pickler(buf, protocol=5).dump(obj)
        return buf.getvalue()

    @staticmethod
    def loads(data: bytes, persistent_load: Callable[[Any], Any] | None = None) -> Any:
        if persistent_load is None:
            return pickle.loads(data)
        hook = persistent_load

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid: Any) -> Any:
                return hook(pid)

        return Unpickler(io.BytesIO(data)).load()


def write_json(path: str, name: str, data: dict[str, Any]) -> None:
    Path(path, name).write_text(json.dumps(data, sort_keys=True, default=str), encoding="utf-8")


def read_json(path: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path, name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def saver_name(saver: Any) -> str:
    """The stable name of a saver: its ``name`` attribute, else ``module.QualifiedClassName``.

    Examples
    --------
    >>> from checkpoint_magic.savers import PickleSaver
    >>> saver_name(PickleSaver())
    'checkpoint_magic.savers.PickleSaver'
    """
    explicit = getattr(saver, "name", None)
    if isinstance(explicit, str) and explicit:
        return explicit
    cls = type(saver)
    return f"{cls.__module__}.{cls.__qualname__}"


def safe_can_save(saver: Any, obj: Any) -> bool:
    """``saver.can_save(obj)``, with a saver that raises counted as declining (and logged).

    Parameters
    ----------
    saver : Saver
        Any object with a ``can_save`` method.
    obj : object
        The value offered to it.

    Returns
    -------
    bool
        Whether the saver accepts ``obj``.

    Examples
    --------
    >>> class Broken(Saver):
    ...     def can_save(self, obj): raise RuntimeError("bug")
    >>> safe_can_save(Broken(), 1)
    False
    """
    try:
        return bool(saver.can_save(obj))
    except Exception as exc:  # a buggy saver must not break storing every other value
        logger.warning(
            "%s.can_save failed on a %s (%s: %s); skipped",
            saver_name(saver),
            type(obj).__name__,
            type(exc).__name__,
            exc,
        )
        return False
