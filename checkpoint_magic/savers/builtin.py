"""The shipped savers: pickle (cloudpickle), scikit-learn, numpy, pandas, strip-and-rebuild.

The last one strips what does not pickle and rebuilds it with ``setup()``.

Which saver serves which value is decided by :mod:`checkpoint_magic.savers.registry`.

Examples
--------
>>> import tempfile, queue
>>> from checkpoint_magic.store import Store
>>> class Worker:
...     def __init__(self):
...         self.done = 3
...         self.setup()
...     def setup(self):
...         self.jobs = queue.Queue()     # a lock inside: cannot be pickled
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(Worker())
>>> record["codec"]
'saver:checkpoint_magic.savers.StripUnpicklableSaver'
>>> restored = store.get_value(record)
>>> restored.done, type(restored.jobs).__name__
(3, 'Queue')
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..exceptions import CheckpointError
from .base import HookedPickler, Saver, class_path, read_json, write_json
from .torch import TorchModuleSaver, TorchTensorSaver

__all__ = [
    "NumpySaver",
    "PandasSaver",
    "PickleSaver",
    "Saver",
    "SklearnSaver",
    "StripUnpicklableSaver",
    "strip_unpicklable",
]

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- built-in savers


class PickleSaver(Saver):
    """Any object through cloudpickle (one file, ``object.pkl``); the last-resort saver.

    Classes and functions defined in ``__main__`` or a notebook are pickled by value, so the
    file loads in a process that does not have their source. ``save``/``load`` also accept
    ``persistent_id``/``persistent_load`` hooks (used by :mod:`checkpoint_magic.savers.dump` to
    store the steps of a pipeline separately).

    Examples
    --------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> PickleSaver().save(lambda x: x + 1, d)
    >>> PickleSaver().load(d)(1)
    2
    """

    filename = "object.pkl"

    def can_save(self, obj: Any) -> bool:
        """Accept everything: the last resort.

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            Always ``True``.
        """
        return True

    def save(
        self, obj: Any, path: str, *, persistent_id: Callable[[Any], Any] | None = None
    ) -> None:
        """Write ``obj`` with cloudpickle as ``path/<filename>``.

        Parameters
        ----------
        obj : object
            What to save.
        path : str
            The directory to write into.
        persistent_id : callable, optional
            Pickling hook that stores some inner objects by reference
            (see :meth:`HookedPickler.dumps`).
        """
        Path(path, self.filename).write_bytes(HookedPickler.dumps(obj, persistent_id))

    def load(self, path: str, *, persistent_load: Callable[[Any], Any] | None = None) -> Any:
        """Unpickle what :meth:`save` wrote into ``path``.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.
        persistent_load : callable, optional
            Resolves the references the ``persistent_id`` hook wrote.

        Returns
        -------
        object
            The unpickled value.
        """
        return HookedPickler.loads(Path(path, self.filename).read_bytes(), persistent_load)


class SklearnSaver(PickleSaver):
    """A scikit-learn estimator through cloudpickle, with the scikit-learn version recorded.

    Loading under another scikit-learn version logs a WARNING (scikit-learn itself also
    warns); the estimator is still returned.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.preprocessing import StandardScaler
    >>> d = tempfile.mkdtemp()
    >>> SklearnSaver().save(StandardScaler().fit([[0.0], [2.0]]), d)
    >>> SklearnSaver().load(d).mean_
    array([1.])
    """

    filename = "estimator.pkl"

    def can_save(self, obj: Any) -> bool:
        """Whether ``obj`` is a scikit-learn estimator instance (sklearn not imported: no).

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            ``True`` for instances of ``sklearn.base.BaseEstimator``.
        """
        if "sklearn" not in sys.modules or isinstance(obj, type):
            return False
        from sklearn.base import BaseEstimator

        return isinstance(obj, BaseEstimator)

    def save(
        self, obj: Any, path: str, *, persistent_id: Callable[[Any], Any] | None = None
    ) -> None:
        """Pickle the estimator and record the scikit-learn version in ``sklearn.json``.

        Parameters
        ----------
        obj : sklearn.base.BaseEstimator
            The estimator.
        path : str
            The directory to write into.
        persistent_id : callable, optional
            As for :meth:`PickleSaver.save`.
        """
        import sklearn

        super().save(obj, path, persistent_id=persistent_id)
        write_json(path, "sklearn.json", {"sklearn": sklearn.__version__, "class": class_path(obj)})

    def load(self, path: str, *, persistent_load: Callable[[Any], Any] | None = None) -> Any:
        """Unpickle the estimator; log a WARNING if it was saved under another scikit-learn.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.
        persistent_load : callable, optional
            As for :meth:`PickleSaver.load`.

        Returns
        -------
        sklearn.base.BaseEstimator
            The estimator.
        """
        import sklearn

        saved = read_json(path, "sklearn.json").get("sklearn")
        if saved and saved != sklearn.__version__:
            logger.warning(
                "estimator saved with scikit-learn %s is loaded with %s", saved, sklearn.__version__
            )
        return super().load(path, persistent_load=persistent_load)


class NumpySaver(Saver):
    """A numpy array (not object dtype) as ``array.npy``, readable with ``np.load``.

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> d = tempfile.mkdtemp()
    >>> NumpySaver().save(np.arange(3), d)
    >>> NumpySaver().load(d)
    array([0, 1, 2])
    """

    def can_save(self, obj: Any) -> bool:
        """Whether ``obj`` is exactly a ``numpy.ndarray`` without object dtype.

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            ``True`` for plain arrays (no subclass, no object dtype).
        """
        return type(obj) is np.ndarray and not obj.dtype.hasobject

    def save(self, obj: np.ndarray, path: str) -> None:
        """Write ``obj`` as ``path/array.npy`` (no pickle).

        Parameters
        ----------
        obj : numpy.ndarray
            The array.
        path : str
            The directory to write into.
        """
        np.save(os.path.join(path, "array.npy"), obj, allow_pickle=False)

    def load(self, path: str) -> np.ndarray:
        """Read ``path/array.npy`` into memory.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.

        Returns
        -------
        numpy.ndarray
            The array.
        """
        array: np.ndarray = np.load(os.path.join(path, "array.npy"), allow_pickle=False)
        return array


class PandasSaver(Saver):
    """A pandas DataFrame or Series with ``to_pickle`` (exact dtypes, index and object columns).

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> d = tempfile.mkdtemp()
    >>> PandasSaver().save(pd.Series([1, 2], name="n"), d)
    >>> PandasSaver().load(d).tolist()
    [1, 2]
    """

    def can_save(self, obj: Any) -> bool:
        """Whether ``obj`` is a pandas DataFrame or Series (pandas not imported: no).

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            ``True`` for DataFrames and Series, subclasses included.
        """
        pd = sys.modules.get("pandas")
        return pd is not None and isinstance(obj, (pd.DataFrame, pd.Series))

    def save(self, obj: Any, path: str) -> None:
        """Write ``obj`` with ``to_pickle`` as ``path/frame.pkl``.

        Parameters
        ----------
        obj : pandas.DataFrame or pandas.Series
            The frame or series.
        path : str
            The directory to write into.
        """
        obj.to_pickle(os.path.join(path, "frame.pkl"), protocol=5)

    def load(self, path: str) -> Any:
        """Read ``path/frame.pkl`` with ``pandas.read_pickle``.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.

        Returns
        -------
        pandas.DataFrame or pandas.Series
            The frame or series.
        """
        import pandas as pd

        return pd.read_pickle(os.path.join(path, "frame.pkl"))


_ALWAYS_PICKLABLE = (type(None), bool, int, float, complex, str, bytes)


def _pickles(value: Any, persistent_id: Callable[[Any], Any] | None) -> bool:
    if isinstance(value, _ALWAYS_PICKLABLE) or (
        type(value) is np.ndarray and not value.dtype.hasobject
    ):
        return True
    try:
        HookedPickler.dumps(value, persistent_id)
    # A CheckpointError comes from a persistent_id hook (a dump's own error), not from
    # pickling; pickling itself fails in many ways (TypeError, RuntimeError, PicklingError...).
    except CheckpointError:
        raise
    except Exception as exc:
        logger.debug(
            "attribute of type %s does not pickle (%s: %s)",
            type(value).__name__,
            type(exc).__name__,
            exc,
        )
        return False
    return True


def strip_unpicklable(
    obj: Any, persistent_id: Callable[[Any], Any] | None = None
) -> tuple[bytes, list[str]]:
    """Pickle ``obj``, or else a shallow copy with its unpicklable attributes set to ``None``.

    ``obj`` itself is never modified. An ``is_initialized`` attribute (Neuraxle's convention)
    is set to ``False`` in the copy when something was dropped.

    Parameters
    ----------
    obj : object
        What to pickle (with cloudpickle).
    persistent_id : callable, optional
        Pickling hook passed on to :meth:`HookedPickler.dumps`; a
        :class:`~checkpoint_magic.exceptions.CheckpointError` it raises propagates.

    Returns
    -------
    payload : bytes
        The pickle of ``obj`` or of its stripped copy.
    dropped : list of str
        The names of the attributes stored as ``None``, sorted; empty when ``obj`` pickled.

    Raises
    ------
    TypeError
        ``obj`` does not pickle and has no ``__dict__`` to strip.

    Examples
    --------
    >>> import threading
    >>> class Holder:
    ...     def __init__(self):
    ...         self.n, self.lock = 1, threading.Lock()
    >>> payload, dropped = strip_unpicklable(Holder())
    >>> dropped
    ['lock']
    """
    try:
        return HookedPickler.dumps(obj, persistent_id), []
    except CheckpointError:
        raise
    except Exception as exc:  # retry attribute by attribute below
        first_error = exc
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        raise TypeError(
            f"cannot pickle the {type(obj).__name__} and it has no attributes to strip: {first_error}"
        )
    dropped = sorted(name for name, value in state.items() if not _pickles(value, persistent_id))
    try:
        clone = copy.copy(obj)
    except Exception:  # a custom __reduce__ may refuse: rebuild from the attributes
        clone = object.__new__(type(obj))
        clone.__dict__.update(state)
    clone.__dict__.update(dict.fromkeys(dropped))
    if dropped and "is_initialized" in clone.__dict__:
        clone.__dict__["is_initialized"] = False
    logger.debug("%s: attributes %s do not pickle; stored as None", type(obj).__name__, dropped)
    return HookedPickler.dumps(clone, persistent_id), dropped


class StripUnpicklableSaver(PickleSaver):
    """Objects with a ``setup()`` method: drop what does not pickle, let ``setup()`` rebuild it.

    ``save`` pickles the object (cloudpickle); if that fails, every attribute that does not
    pickle (a ``multiprocessing.Queue``, a lock, an open file or connection...) is stored as
    ``None`` (the object itself is not modified) and the names are recorded. ``load``
    unpickles the object and, when something was dropped, calls its ``setup()`` to rebuild
    it (``setup=False`` leaves that to the caller: :mod:`checkpoint_magic.savers.dump` calls it on
    first use). Write ``setup()`` so that it creates what is ``None`` or missing.

    Parameters
    ----------
    call_setup : bool, default True
        Whether :meth:`load` calls ``setup()`` after dropping attributes.

    Examples
    --------
    >>> import tempfile, threading
    >>> class Step:
    ...     def __init__(self):
    ...         self.lock = None
    ...     def setup(self):
    ...         self.lock = threading.Lock()
    ...         return self
    >>> step = Step().setup()
    >>> d = tempfile.mkdtemp()
    >>> StripUnpicklableSaver().save(step, d)
    >>> type(step.lock).__name__, type(StripUnpicklableSaver().load(d).lock).__name__
    ('lock', 'lock')
    """

    def __init__(self, call_setup: bool = True):
        self.call_setup = call_setup

    def __repr__(self) -> str:
        return f"StripUnpicklableSaver(call_setup={self.call_setup!r})"

    def can_save(self, obj: Any) -> bool:
        """Whether ``obj`` is an instance whose class has a ``setup()`` method.

        Parameters
        ----------
        obj : object
            Any value.

        Returns
        -------
        bool
            ``True`` when ``type(obj).setup`` is callable (classes themselves: no).
        """
        return not isinstance(obj, type) and callable(getattr(type(obj), "setup", None))

    def save(
        self, obj: Any, path: str, *, persistent_id: Callable[[Any], Any] | None = None
    ) -> None:
        """Pickle ``obj`` without what does not pickle; record the dropped names.

        Parameters
        ----------
        obj : object
            An object with a ``setup()`` method.
        path : str
            The directory to write into (``object.pkl`` and ``stripped.json``).
        persistent_id : callable, optional
            As for :meth:`PickleSaver.save`.

        Raises
        ------
        TypeError
            ``obj`` does not pickle and has no ``__dict__`` to strip.
        """
        payload, dropped = strip_unpicklable(obj, persistent_id)
        Path(path, self.filename).write_bytes(payload)
        write_json(path, "stripped.json", {"stripped": dropped, "class": class_path(obj)})

    def load(
        self,
        path: str,
        *,
        persistent_load: Callable[[Any], Any] | None = None,
        setup: bool | None = None,
    ) -> Any:
        """Unpickle the object; call its ``setup()`` if attributes were dropped.

        Parameters
        ----------
        path : str
            The directory :meth:`save` wrote.
        persistent_load : callable, optional
            As for :meth:`PickleSaver.load`.
        setup : bool, optional
            Whether to call ``setup()`` after dropping attributes; default ``call_setup``.

        Returns
        -------
        object
            The object, set up again when something was dropped (and ``setup`` allows).
        """
        obj = super().load(path, persistent_load=persistent_load)
        dropped = read_json(path, "stripped.json").get("stripped") or []
        if dropped and (self.call_setup if setup is None else setup):
            logger.debug("%s: rebuilding %s with setup()", type(obj).__name__, dropped)
            obj.setup()
        return obj


# The public names of the built-in savers are stable: ``saver_name`` (stored in entries and dumps)
# and pickling see them as ``checkpoint_magic.savers.<Class>``, where they are re-exported.
for _cls in (
    PickleSaver,
    SklearnSaver,
    NumpySaver,
    PandasSaver,
    StripUnpicklableSaver,
    Saver,
    TorchModuleSaver,
    TorchTensorSaver,
):
    _cls.__module__ = "checkpoint_magic.savers"
del _cls
