"""Sample containers: data travelling through a pipeline together with its metadata.

:class:`Sample` and :class:`SampleSet` hold their data; :class:`DelayedSample` and
:class:`DelayedSampleSet` load it only when it is read, so large datasets stay small.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableSequence
from typing import Any

import numpy as np

from ..exceptions import InvalidArgumentError

__all__ = [
    "Constant",
    "DelayedSample",
    "DelayedSampleSet",
    "DelayedSampleSetCached",
    "Sample",
    "SampleSet",
    "is_sample",
    "is_sample_set",
    "sample_metadata",
]

logger = logging.getLogger(__name__)

#: Attribute names that hold the payload, never copied from a parent as metadata.
SAMPLE_DATA_ATTRS = ("data", "samples")


def _metadata_names(obj: Any) -> list[str]:
    """Public metadata attribute names of a sample or sample set, in insertion order.

    Delayed attributes of a :class:`DelayedSample` come last; nothing is loaded.
    """
    names = [k for k in vars(obj) if not k.startswith("_") and k not in SAMPLE_DATA_ATTRS]
    delayed = obj.__dict__.get("_delayed_attributes") or {}
    names.extend(k for k in delayed if k not in names)
    return names


def sample_metadata(obj: Any) -> dict[str, Any]:
    """Return the metadata of a sample or sample set as a dict (delayed attributes are loaded).

    Parameters
    ----------
    obj
        A :class:`Sample`, :class:`DelayedSample`, :class:`SampleSet` or
        :class:`DelayedSampleSet`.

    Returns
    -------
    dict
        Every public attribute except the payload (``data`` / ``samples``).

    Examples
    --------
    >>> sample_metadata(Sample(1, key="a", subject=3))
    {'key': 'a', 'subject': 3}
    """
    return {name: getattr(obj, name) for name in _metadata_names(obj)}


def _check_reserved(kwargs: Mapping[str, Any]) -> None:
    for name in kwargs:
        if name in SAMPLE_DATA_ATTRS:
            raise InvalidArgumentError(
                f"{name!r} cannot be given as metadata: it is the payload of a sample or "
                "sample set. Pass the payload as the first argument instead."
            )


def _copy_attributes(target: Any, parent: Any, kwargs: Mapping[str, Any]) -> None:
    """Copy the metadata of ``parent`` to ``target``, then set ``kwargs`` on it.

    Delayed attributes of a :class:`DelayedSample` parent are loaded (``target`` is not
    delayed); :class:`DelayedSample` itself keeps them delayed (see its ``__init__``).
    """
    _check_reserved(kwargs)
    if parent is not None:
        for name in _metadata_names(parent):
            # an overridden attribute keeps the parent's position (and is not loaded)
            setattr(target, name, kwargs[name] if name in kwargs else getattr(parent, name))
    for name, value in kwargs.items():
        setattr(target, name, value)


def _values_equal(a: Any, b: Any) -> bool:
    """Equality that works for numpy arrays (shape, dtype kind and values) and containers."""
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return bool(np.array_equal(np.asarray(a), np.asarray(b)))
        except (TypeError, ValueError):
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(_values_equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_values_equal(a[k], b[k]) for k in a)
    result = a == b
    if isinstance(result, np.ndarray):
        return bool(result.all())
    return bool(result)


class _SampleBase:
    """Shared repr and equality of samples and sample sets."""

    #: Name of the payload attribute (``data`` for samples, ``samples`` for sets).
    _payload = "data"

    def _repr_items(self) -> list[str]:
        items = [f"{self._payload}={getattr(self, self._payload)!r}"]
        items.extend(f"{k}={v!r}" for k, v in vars(self).items() if _is_metadata(k))
        return items

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_items())})"

    def __eq__(self, other: object) -> bool:
        # Samples compare by payload and metadata, whether delayed or not (a
        # DelayedSample equals the Sample it was saved from).
        if not isinstance(other, _SampleBase) or self._payload != other._payload:
            return NotImplemented
        if sorted(_metadata_names(self)) != sorted(_metadata_names(other)):
            return False
        if not all(
            _values_equal(getattr(self, k), getattr(other, k)) for k in _metadata_names(self)
        ):
            return False
        return _values_equal(_payload_value(self), _payload_value(other))

    __hash__ = None  # type: ignore[assignment]  # mutable containers


def _payload_value(obj: _SampleBase) -> Any:
    value = getattr(obj, obj._payload)
    if obj._payload == "samples":
        return list(value)
    return value


def _is_metadata(name: str) -> bool:
    return not name.startswith("_") and name not in SAMPLE_DATA_ATTRS


class Sample(_SampleBase):
    """One piece of data with metadata.

    Parameters
    ----------
    data
        The payload (``sample.data``): an array, a list, any object.
    parent
        A sample (or sample set) whose metadata is copied first (``data`` and ``samples``
        are never copied); keyword arguments then override it.
    **metadata
        Metadata attributes, e.g. ``key="0"`` (the key names the sample's checkpoint file).

    Examples
    --------
    >>> import numpy as np
    >>> s = Sample(np.zeros(2), offset=np.array([0]), key="0")
    >>> s
    Sample(data=array([0., 0.]), offset=array([0]), key='0')
    >>> Sample(np.ones(2), parent=s, key="1")
    Sample(data=array([1., 1.]), offset=array([0]), key='1')
    """

    def __init__(self, data: Any, parent: Any = None, **metadata: Any) -> None:
        self.data = data
        _copy_attributes(self, parent, metadata)


class DelayedSample(_SampleBase):
    """A sample whose data (and optionally some metadata) is loaded only when read.

    Nothing is loaded when the sample is built, printed, copied or pickled: ``load`` (and the
    callables of ``delayed_attributes``) are called each time the attribute is read; the
    value is not kept, so a large dataset of delayed samples stays small in memory.

    Parameters
    ----------
    load
        Callable with no argument that returns the data.
    parent
        A sample whose metadata is copied first. The delayed attributes of a
        :class:`DelayedSample` parent stay delayed.
    delayed_attributes
        ``{name: callable}``: attributes computed (loaded) on each access.
    **metadata
        Plain metadata attributes; they override the parent's attributes (delayed or
        not). A name may not be both here and in ``delayed_attributes``.

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) if a name is given both as plain metadata and in
        ``delayed_attributes``, or ``load`` is not callable.

    Examples
    --------
    >>> calls = []
    >>> def load():
    ...     calls.append(1)
    ...     return [1, 2, 3]
    >>> s = DelayedSample(load, key="a", delayed_attributes={"annotations": lambda: "eyes"})
    >>> s, len(calls)
    (DelayedSample(key='a', delayed_attributes=['annotations']), 0)
    >>> s.data, s.annotations, len(calls)
    ([1, 2, 3], 'eyes', 1)
    """

    def __init__(
        self,
        load: Callable[[], Any],
        parent: Any = None,
        delayed_attributes: Mapping[str, Callable[[], Any]] | None = None,
        **metadata: Any,
    ) -> None:
        if not callable(load):
            raise InvalidArgumentError(
                f"DelayedSample needs a callable `load` that returns the data, got {load!r}."
            )
        _check_reserved(metadata)
        if delayed_attributes is not None:
            _check_reserved(delayed_attributes)
            both = sorted(set(delayed_attributes) & set(metadata))
            if both:
                raise InvalidArgumentError(
                    f"{both} given both as plain metadata and in delayed_attributes; an "
                    "attribute is either loaded on access or stored, not both. Keep one of "
                    "the two."
                )
        object.__setattr__(self, "_load", load)
        delayed: dict[str, Callable[[], Any]] = {}
        if parent is not None:
            parent_delayed = parent.__dict__.get("_delayed_attributes") or {}
            for name in _metadata_names(parent):
                if name in parent_delayed:
                    delayed[name] = parent_delayed[name]
                else:
                    object.__setattr__(self, name, getattr(parent, name))
        for name, func in (delayed_attributes or {}).items():
            self.__dict__.pop(name, None)
            delayed[name] = func
        for name, value in metadata.items():
            delayed.pop(name, None)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_delayed_attributes", delayed or None)

    @classmethod
    def from_sample(cls, sample: Any, **metadata: Any) -> DelayedSample:
        """A delayed copy of ``sample``; the data of a delayed sample is not loaded.

        Parameters
        ----------
        sample
            A :class:`Sample` (its data is kept in memory) or a :class:`DelayedSample`
            (its ``load`` and delayed attributes are reused, nothing is loaded).
        **metadata
            Metadata to set or override.

        Returns
        -------
        DelayedSample
            A new delayed sample: the metadata of ``sample``, updated with ``metadata``.

        Examples
        --------
        >>> d = DelayedSample.from_sample(Sample(1, key="a"), subject="s1")
        >>> d, d.data
        (DelayedSample(key='a', subject='s1'), 1)
        """
        load = sample.load if isinstance(sample, DelayedSample) else Constant(sample.data)
        return cls(load, parent=sample, **metadata)

    @property
    def data(self) -> Any:
        """The payload, loaded by calling ``load`` (on every access)."""
        return self._load()

    @property
    def load(self) -> Callable[[], Any]:
        """The callable that loads the data."""
        return self._load

    @property
    def delayed_attributes(self) -> dict[str, Callable[[], Any]]:
        """The ``{name: callable}`` of the attributes loaded on access (a copy)."""
        return dict(self.__dict__.get("_delayed_attributes") or {})

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails. Use __dict__ directly: during unpickling
        # the instance has no attributes yet, and recursion must not happen.
        delayed = self.__dict__.get("_delayed_attributes")
        if delayed and name in delayed:
            return delayed[name]()
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "data":
            raise AttributeError(
                "The data of a DelayedSample comes from its `load` callable; build a "
                "Sample(new_data, parent=delayed_sample) instead."
            )
        delayed = self.__dict__.get("_delayed_attributes")
        if delayed and name in delayed:
            # Setting a delayed attribute replaces it with a plain value. Copy the dict:
            # copies of this sample share it.
            remaining = {k: v for k, v in delayed.items() if k != name}
            object.__setattr__(self, "_delayed_attributes", remaining or None)
        object.__setattr__(self, name, value)

    def _repr_items(self) -> list[str]:
        items = [f"{k}={v!r}" for k, v in vars(self).items() if _is_metadata(k)]
        delayed = self.__dict__.get("_delayed_attributes")
        if delayed:
            items.append(f"delayed_attributes={sorted(delayed)!r}")
        return items


class SampleSet(_SampleBase, MutableSequence):
    """A mutable sequence of samples with its own metadata.

    Parameters
    ----------
    samples
        The samples (kept as given when it is a list, otherwise copied into a list).
    parent
        A sample set (or sample) whose metadata is copied first.
    **metadata
        Metadata of the set, e.g. ``key="subject-1"``.

    Examples
    --------
    >>> sset = SampleSet([Sample(1, key="a")], key="set-1")
    >>> sset.append(Sample(2, key="b"))
    >>> [s.data for s in sset], sset.key
    ([1, 2], 'set-1')
    """

    _payload = "samples"

    def __init__(self, samples: Iterable[Any], parent: Any = None, **metadata: Any) -> None:
        self.samples = samples if isinstance(samples, list) else list(samples)
        _copy_attributes(self, parent, metadata)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: Any) -> Any:
        return self.samples[item]

    def __setitem__(self, item: Any, value: Any) -> None:
        self.samples[item] = value

    def __delitem__(self, item: Any) -> None:
        del self.samples[item]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.samples)

    def insert(self, index: int, value: Any) -> None:
        """Insert a sample before ``index``.

        Parameters
        ----------
        index : int
            Position of the new sample, as in :meth:`list.insert`.
        value : Sample
            The sample to insert.
        """
        self.samples.insert(index, value)


class DelayedSampleSet(SampleSet):
    """A sample set whose samples are loaded only when read.

    ``load`` is called on each access to ``samples`` (and to the sequence methods), so
    nothing stays in memory. Modifying the set (``append``, ``del``, ...) loads the samples
    once and keeps the modified list from then on.

    Parameters
    ----------
    load
        Callable with no argument returning the list of samples.
    parent
        A sample set whose metadata is copied first.
    **metadata
        Metadata of the set.

    Raises
    ------
    InvalidArgumentError
        When ``load`` is not callable.

    Examples
    --------
    >>> dset = DelayedSampleSet(lambda: [Sample(1), Sample(2)], key="set-1")
    >>> dset
    DelayedSampleSet(key='set-1')
    >>> len(dset), dset[1].data
    (2, 2)
    """

    def __init__(self, load: Callable[[], Any], parent: Any = None, **metadata: Any) -> None:
        if not callable(load):
            raise InvalidArgumentError(
                f"DelayedSampleSet needs a callable `load` returning samples, got {load!r}."
            )
        self._load = load
        self._materialized: list[Any] | None = None
        _copy_attributes(self, parent, metadata)

    @property
    def samples(self) -> list[Any]:  # type: ignore[override]
        """The samples, loaded by calling ``load`` (unless the set was modified)."""
        if self._materialized is not None:
            return self._materialized
        loaded = self._load()
        return loaded if isinstance(loaded, list) else list(loaded)

    def _mutable(self) -> list[Any]:
        if self._materialized is None:
            self._materialized = self.samples
        return self._materialized

    def __setitem__(self, item: Any, value: Any) -> None:
        self._mutable()[item] = value

    def __delitem__(self, item: Any) -> None:
        del self._mutable()[item]

    def insert(self, index: int, value: Any) -> None:
        """Insert a sample before ``index`` (loads the samples once and keeps them).

        Parameters
        ----------
        index : int
            Position of the new sample, as in :meth:`list.insert`.
        value : Sample
            The sample to insert.
        """
        self._mutable().insert(index, value)

    def _repr_items(self) -> list[str]:
        return [f"{k}={v!r}" for k, v in vars(self).items() if _is_metadata(k)]


class DelayedSampleSetCached(DelayedSampleSet):
    """A :class:`DelayedSampleSet` that keeps its samples after the first load.

    Parameters
    ----------
    load
        Callable with no argument returning the list of samples; called once.
    parent
        A sample set whose metadata is copied first.
    **metadata
        Metadata of the set.

    Examples
    --------
    >>> calls = []
    >>> dset = DelayedSampleSetCached(lambda: calls.append(1) or [Sample(1)], key="s")
    >>> len(dset), dset[0].data, len(calls)
    (1, 1, 1)
    """

    @property
    def samples(self) -> list[Any]:  # type: ignore[override]
        """The samples, loaded on first access and kept."""
        if self._materialized is None:
            loaded = self._load()
            self._materialized = loaded if isinstance(loaded, list) else list(loaded)
        return self._materialized


def is_sample(obj: Any) -> bool:
    """Return True for a :class:`Sample` or :class:`DelayedSample`.

    Parameters
    ----------
    obj : object
        Any object.

    Returns
    -------
    bool
        Whether ``obj`` is a single (possibly delayed) sample.

    Examples
    --------
    >>> is_sample(Sample(1)), is_sample(SampleSet([])), is_sample(1)
    (True, False, False)
    """
    return isinstance(obj, (Sample, DelayedSample))


def is_sample_set(obj: Any) -> bool:
    """Return True for a :class:`SampleSet` (delayed or not).

    Parameters
    ----------
    obj : object
        Any object.

    Returns
    -------
    bool
        Whether ``obj`` is a sample set.

    Examples
    --------
    >>> is_sample_set(SampleSet([])), is_sample_set(Sample(1))
    (True, False)
    """
    return isinstance(obj, SampleSet)


class Constant:
    """A picklable callable returning a value it holds (the ``load`` of an in-memory result).

    Parameters
    ----------
    value
        What the call returns.

    Examples
    --------
    >>> Constant(3)()
    3
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __call__(self) -> Any:
        return self.value

    def __getstate__(self) -> tuple[Any]:
        return (self.value,)  # a tuple: a bare None state would skip __setstate__

    def __setstate__(self, state: tuple[Any]) -> None:
        (self.value,) = state

    def __repr__(self) -> str:
        return f"Constant({self.value!r})"
