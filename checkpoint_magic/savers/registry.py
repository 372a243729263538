"""The registry of savers: which saver the store offers a value to, and which one a full dump uses.

The store's codec lookup asks :func:`store_savers` (by default :class:`StripUnpicklableSaver`
and the PyTorch savers) before its own ``npy``/``pickle`` codecs; nothing here imports the
store. Full dumps pick each step's saver with :func:`saver_for`, which falls back to
:class:`NumpySaver`, :class:`PandasSaver`, :class:`SklearnSaver` and :class:`PickleSaver`:
those are not offered to the store, whose codecs are faster for these types.
"""

from __future__ import annotations

from typing import Any

from ..exceptions import InvalidArgumentError
from .base import Saver, safe_can_save, saver_name
from .builtin import NumpySaver, PandasSaver, PickleSaver, SklearnSaver, StripUnpicklableSaver
from .torch import TorchModuleSaver, TorchTensorSaver

__all__ = [
    "find_saver",
    "find_store_saver",
    "is_fallback_saver",
    "register_saver",
    "registered_savers",
    "saver_for",
    "store_savers",
    "unregister_saver",
]

_registered: list[Any] = []  # newest first; consulted by saver_for before the fallbacks
_for_store: set[str] = set()  # names of the registered savers the store consults
_FALLBACKS: tuple[Saver, ...] = (NumpySaver(), PandasSaver(), SklearnSaver(), PickleSaver())


def register_saver(saver: Any, *, store: bool = True) -> Any:
    """Register ``saver`` ahead of those registered before it (and of the built-in ones).

    Parameters
    ----------
    saver : Saver
        Any object with ``can_save(obj)``, ``save(obj, path)`` and ``load(path)``.
    store : bool, default True
        Also offer every value the store keeps to this saver (the store wraps it in a
        ``SaverCodec``). With ``False`` the saver only serves :func:`checkpoint_magic.dump`.

    Returns
    -------
    Saver
        ``saver``, unchanged. A saver with the same :func:`saver_name` is replaced.

    Raises
    ------
    InvalidArgumentError
        ``saver`` lacks one of the three methods.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from checkpoint_magic.store import Store
    >>> class Upper(Saver):
    ...     name = "doctest.Upper"
    ...     def can_save(self, obj): return isinstance(obj, str) and obj.isupper()
    ...     def save(self, obj, path): Path(path, "s.txt").write_text(obj.lower())
    ...     def load(self, path): return Path(path, "s.txt").read_text().upper()
    >>> saver = register_saver(Upper())
    >>> store = Store(tempfile.mkdtemp())
    >>> record = store.put_value("HELLO")
    >>> record["codec"], store.get_value(record)
    ('saver:doctest.Upper', 'HELLO')
    >>> unregister_saver(saver)
    >>> store.put_value("HELLO")["codec"]
    'pickle'
    """
    for method in ("can_save", "save", "load"):
        if not callable(getattr(saver, method, None)):
            raise InvalidArgumentError(
                f"a saver needs can_save(obj), save(obj, path) and load(path) methods; "
                f"{type(saver).__name__} has no {method}(); subclass checkpoint_magic.savers.Saver"
            )
    unregister_saver(saver)
    _registered.insert(0, saver)
    if store:
        _for_store.add(saver_name(saver))
    return saver


def unregister_saver(saver: Any) -> None:
    """Remove a saver (or the saver registered under the same name); no error if absent.

    Parameters
    ----------
    saver : Saver
        The saver to remove, or any saver with the same :func:`saver_name`.
    """
    name = saver_name(saver)
    _registered[:] = [s for s in _registered if s is not saver and saver_name(s) != name]
    _for_store.discard(name)


def registered_savers() -> list[Any]:
    """The registered savers, in the order they are consulted (newest first).

    Returns
    -------
    list of Saver
        A copy of the registry, store-only and dump-only savers alike; the built-in
        fallbacks of :func:`saver_for` are not in it.
    """
    return list(_registered)


def store_savers() -> list[Any]:
    """The registered savers the store offers values to, newest first.

    Returns
    -------
    list of Saver
        The savers registered with ``store=True``.

    Examples
    --------
    >>> [type(s).__name__ for s in store_savers()][-1]
    'StripUnpicklableSaver'
    """
    return [s for s in _registered if saver_name(s) in _for_store]


def find_store_saver(name: str) -> Any | None:
    """The saver registered for the store under :func:`saver_name` ``name``, or ``None``.

    Parameters
    ----------
    name : str
        A saver name as recorded in a stored entry (``"saver:" + name`` is its codec).

    Returns
    -------
    Saver or None
        The saver, or ``None`` when none of that name is registered with ``store=True``.

    Examples
    --------
    >>> find_store_saver("checkpoint_magic.savers.StripUnpicklableSaver")
    StripUnpicklableSaver(call_setup=True)
    """
    name = _LEGACY_NAMES.get(name, name)
    for saver in _registered:
        if saver_name(saver) == name and name in _for_store:
            return saver
    return None


def saver_for(obj: Any) -> Any:
    """The saver :func:`checkpoint_magic.dump` uses for ``obj``: registered savers, then built-ins.

    Parameters
    ----------
    obj : object
        A step of the tree being dumped (or any object inside one).

    Returns
    -------
    Saver
        The first registered saver whose ``can_save`` accepts ``obj``, else the first of
        :class:`NumpySaver`, :class:`PandasSaver`, :class:`SklearnSaver`, :class:`PickleSaver`.

    Examples
    --------
    >>> import numpy as np
    >>> type(saver_for(np.zeros(2))).__name__, type(saver_for({"a": 1})).__name__
    ('NumpySaver', 'PickleSaver')
    """
    for saver in _registered:
        if safe_can_save(saver, obj):
            return saver
    for saver in _FALLBACKS:
        if saver.can_save(obj):
            return saver
    raise AssertionError("PickleSaver accepts everything")  # pragma: no cover


# Names that entries written before the savers moved into this package may carry.
_LEGACY_NAMES = {
    "checkpoint_magic.savers.torch.TorchModuleSaver": "checkpoint_magic.savers.TorchModuleSaver",
    "checkpoint_magic.savers.torch.TorchTensorSaver": "checkpoint_magic.savers.TorchTensorSaver",
}


def find_saver(name: str) -> Any | None:
    """The registered or built-in saver whose :func:`saver_name` is ``name``, or ``None``.

    Parameters
    ----------
    name : str
        A saver name as recorded in a dump's index (names from before the savers moved
        into this package are accepted too).

    Returns
    -------
    Saver or None
        The saver, or ``None`` when no saver of that name is known in this process.

    Examples
    --------
    >>> find_saver("checkpoint_magic.savers.NumpySaver")
    NumpySaver()
    >>> find_saver("no.such.Saver") is None
    True
    """
    name = _LEGACY_NAMES.get(name, name)
    for saver in (*_registered, *_FALLBACKS):
        if saver_name(saver) == name:
            return saver
    return None


def is_fallback_saver(saver: Any) -> bool:
    """Whether ``saver`` is one of the generic built-in savers (numpy, pandas, sklearn, pickle).

    Parameters
    ----------
    saver : Saver
        A saver, typically one :func:`saver_for` returned.

    Returns
    -------
    bool
        ``True`` only for the built-in fallback instances themselves.

    Examples
    --------
    >>> is_fallback_saver(saver_for(1)), is_fallback_saver(StripUnpicklableSaver())
    (True, False)
    """
    return any(saver is s for s in _FALLBACKS)


def _register_defaults() -> None:
    for saver in (StripUnpicklableSaver(), TorchModuleSaver(), TorchTensorSaver()):
        if not any(saver_name(s) == saver_name(saver) for s in _registered):
            register_saver(saver)


_register_defaults()
