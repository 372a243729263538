"""The base of savers: the :class:`Saver` interface and the pickling and JSON helpers savers share.

A leaf of the savers: ``builtin``, ``torch``, ``dump`` and the store's ``saver_codec`` import
the base from here rather than from each other (which was an import cycle). :class:`Saver` is
public as ``checkpoint_magic.savers.Saver``.

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

    Attributes
    ----------
    name : str or None
        The saver's stable name (see :func:`saver_name`); set it to tell two registered
        instances of one class apart. ``None`` names the saver by its class.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> class Text(Saver):
    ...     def can_save(self, obj): return isinstance(obj, str)
    ...     def save(self, obj, path): Path(path, "s.txt").write_text(obj)
    ...     def load(self, path): return Path(path, "s.txt").read_text()
    >>> d = tempfile.mkdtemp()
    >>> Text().save("hi", d)
    >>> Text().load(d)
    'hi'
    """

    name: str | None = None

    def can_save(self, obj: Any) -> bool:
        """Whether this saver handles ``obj``; called for every stored value, so keep it cheap.

        Parameters
        ----------
        obj : object
            The value about to be stored or dumped.

        Returns
        -------
        bool
            ``True`` to take ``obj``; the first saver that says so writes it.
        """
        raise NotImplementedError

    def save(self, obj: Any, path: str) -> None:
        """Write ``obj`` as one or more files into the existing, empty directory ``path``.

        Parameters
        ----------
        obj : object
            A value :meth:`can_save` accepted.
        path : str
            The directory to write into (files and subdirectories, any names).
        """
        raise NotImplementedError

    def load(self, path: str) -> Any:
        """Rebuild the object from the files :meth:`save` wrote into ``path``.

        Parameters
        ----------
        path : str
            A directory holding what :meth:`save` wrote; deleted once ``load`` returns.

        Returns
        -------
        object
            The rebuilt value.
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


# Documented, pickled and named as checkpoint_magic.savers.Saver, where users import it from.
Saver.__module__ = "checkpoint_magic.savers"


def class_path(obj: Any) -> str:
    """``module.QualifiedName`` of the class of ``obj``.

    Parameters
    ----------
    obj : object
        Any value.

    Returns
    -------
    str
        The dotted path of ``type(obj)``, as recorded in saver and dump metadata.
    """
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


class HookedPickler:
    """Factory of cloudpickle picklers that may externalize objects through ``persistent_id``.

    Examples
    --------
    >>> data = HookedPickler.dumps([1, "x"], lambda o: "X" if o == "x" else None)
    >>> HookedPickler.loads(data, lambda pid: pid.lower())
    [1, 'x']
    """

    @staticmethod
    def dumps(obj: Any, persistent_id: Callable[[Any], Any] | None = None) -> bytes:
        """Pickle ``obj`` with cloudpickle (protocol 5), optionally with a ``persistent_id`` hook.

        Parameters
        ----------
        obj : object
            What to pickle; classes and functions of ``__main__`` are pickled by value.
        persistent_id : callable, optional
            Called on every object met; a non-``None`` result is stored in place of the
            object (see :meth:`pickle.Pickler.persistent_id`).

        Returns
        -------
        bytes
            The pickle.
        """
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
        """Unpickle ``data``, resolving persistent ids with ``persistent_load``.

        Parameters
        ----------
        data : bytes
            A pickle written by :meth:`dumps`.
        persistent_load : callable, optional
            Turns each persistent id written by the ``persistent_id`` hook back into its object.

        Returns
        -------
        object
            The unpickled value.
        """
        if persistent_load is None:
            return pickle.loads(data)
        hook = persistent_load

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid: Any) -> Any:
                return hook(pid)

        return Unpickler(io.BytesIO(data)).load()


def write_json(path: str, name: str, data: dict[str, Any]) -> None:
    """Write ``data`` as the JSON file ``name`` in directory ``path`` (a saver's side metadata).

    Parameters
    ----------
    path : str
        The saver's directory.
    name : str
        The file name, e.g. ``"sklearn.json"``.
    data : dict
        JSON-able values; anything else is written as its ``str``.

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> write_json(d, "info.json", {"version": 1})
    >>> read_json(d, "info.json"), read_json(d, "absent.json")
    ({'version': 1}, {})
    """
    Path(path, name).write_text(json.dumps(data, sort_keys=True, default=str), encoding="utf-8")


def read_json(path: str, name: str) -> dict[str, Any]:
    """Read the JSON object :func:`write_json` wrote; ``{}`` when the file is absent.

    Parameters
    ----------
    path : str
        The saver's directory.
    name : str
        The file name.

    Returns
    -------
    dict
        The object; ``{}`` when the file is missing or its JSON value is not an object.
    """
    try:
        data = json.loads(Path(path, name).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def saver_name(saver: Any) -> str:
    """The stable name of a saver: its ``name`` attribute, else ``module.QualifiedClassName``.

    Parameters
    ----------
    saver : Saver
        Any saver object.

    Returns
    -------
    str
        The name recorded in stored entries (codec ``"saver:" + name``) and in dumps.

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
