"""Dask support: ``ToDaskBag`` turns samples into a ``dask.bag``; ``DaskWrapper`` runs on it.

``DaskWrapper.transform`` maps the wrapped estimator over the partitions of a bag and
returns a new (lazy) bag; ``fit`` gathers the bag and fits a copy of the estimator in one
task. Everything runs on the active Dask scheduler: the local one, or a
``dask.distributed`` cluster once a ``Client`` exists. Dask is imported only when these
methods run, so ``checkpoint_magic.pipelines`` works without it (install the ``dask``
extra: ``pip install checkpoint_magic[dask]``).
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline
from sklearn.utils.metaestimators import available_if

from ..exceptions import InvalidArgumentError
from ..ui.progress import compute_with_progress
from .base import (
    NEW_STYLE_TAGS,
    BaseWrapper,
    bob_tags,
    clone_estimator,
    estimator_has,
    estimator_requires_fit,
    unwrap,
)

__all__ = ["DaskWrapper", "FitArrays", "ToDaskBag", "dask_tags"]

logger = logging.getLogger(__name__)


def _import_dask() -> Any:
    """Import ``dask`` and ``dask.bag``, or say how to install them."""
    try:
        import dask
        import dask.bag
    except ImportError as exc:
        raise ImportError(
            "DaskWrapper and ToDaskBag need Dask: pip install 'checkpoint_magic[dask]' "
            "(or pip install 'dask[distributed]')."
        ) from exc
    return dask


def _import_dask_bag() -> Any:
    return _import_dask().bag


def _partition_size(n: int, npartitions: int | None, partition_size: int | None) -> int:
    """Items per partition, chosen as ``dask.bag.from_sequence`` does."""
    if npartitions is not None and partition_size is not None:
        raise InvalidArgumentError("Give npartitions or partition_size, not both.")
    for name, value in (("npartitions", npartitions), ("partition_size", partition_size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}.")
    if partition_size is not None:
        return partition_size
    if npartitions is not None:
        return max(1, math.ceil(n / npartitions))
    return 1 if n <= 100 else max(1, math.ceil(math.sqrt(n) / math.sqrt(100)))


def _to_bag(X: Any, npartitions: int | None = None, partition_size: int | None = None) -> Any:
    """``X`` if it is a bag, else a bag made of the sequence ``X``.

    Unlike ``dask.bag.from_sequence``, the bag is named by a random token instead of a
    hash of every item: tokenizing arbitrary samples pickles each one twice, which cost
    more than the rest of a checkpointed pass.
    """
    bag = _import_dask_bag()
    if isinstance(X, bag.Bag):
        return X
    items = X if isinstance(X, list) else list(X)
    size = _partition_size(len(items), npartitions, partition_size)
    name = f"to-dask-bag-{uuid.uuid4().hex}"
    parts = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
    return bag.Bag({(name, i): part for i, part in enumerate(parts)}, name, len(parts))


def _apply_to_partition(partition: Any, estimator: Any, method_name: str) -> list[Any]:
    """Task body: call ``estimator.<method_name>`` once on one partition."""
    items = partition if isinstance(partition, list) else list(partition)
    if not items:
        return []
    result = getattr(estimator, method_name)(items)
    return result if isinstance(result, list) else list(result)


def _column(partition: Any, attribute: str) -> list[Any]:
    return [getattr(s, attribute) for s in partition]


def _head(values: list[Any]) -> list[tuple[int, Any]]:
    return [(len(values), values[0] if values else None)]


def _stack(values: list[Any], ndim: int) -> Any:
    import numpy as np

    if not values:
        return np.empty((0,) if ndim == 1 else (0, 0))
    return np.stack([np.asarray(v) for v in values]) if ndim == 2 else np.asarray(values)


def bag_to_array(bag: Any, attribute: str, ndim: int = 2) -> Any:
    """One attribute of the samples of a bag as a ``dask.array``, one chunk per partition.

    Parameters
    ----------
    bag
        A ``dask.bag`` of samples.
    attribute
        The attribute stacked (``"data"``, ``"target"``...).
    ndim
        2 for features (one row per sample), 1 for targets (one value per sample).

    Returns
    -------
    dask.array.Array
        The values stacked along the first axis, one chunk per partition of ``bag``.

    Raises
    ------
    InvalidArgumentError
        When ``bag`` holds no sample.
    """
    import dask
    import dask.array as da
    import numpy as np

    columns = bag.map_partitions(_column, attribute)
    # one pass for the shapes: the length of each partition and its first value
    heads = columns.map_partitions(_head).compute()
    lengths = [n for n, _ in heads]
    first = next((value for n, value in heads if n), None)
    if first is None:
        raise InvalidArgumentError("Cannot fit on an empty bag of samples.")
    sample = np.asarray(first)
    shape = sample.shape if ndim == 2 else ()
    chunks = [
        da.from_delayed(dask.delayed(_stack)(part, ndim), shape=(n, *shape), dtype=sample.dtype)
        for part, n in zip(columns.to_delayed(), lengths, strict=True)
        if n
    ]
    return da.concatenate(chunks)


class FitArrays:
    """What ``DaskWrapper`` passes down to a ``SampleWrapper.fit`` that takes dask arrays.

    The ``SampleWrapper`` calls :meth:`build` with its input attribute and fit extra
    arguments and fits its estimator on the result (``fit(X, **kwargs)``), so that a
    :class:`~checkpoint_magic.pipelines.CheckpointWrapper` in between still loads or
    saves the model.

    Parameters
    ----------
    bag
        The ``dask.bag`` of samples to fit on.
    """

    def __init__(self, bag: Any) -> None:
        self.bag = bag

    def build(
        self, input_attribute: str, extra: list[tuple[str, str]]
    ) -> tuple[Any, dict[str, Any]]:
        """Return ``X`` (2-D dask array) and the keyword arguments (1-D dask arrays).

        Parameters
        ----------
        input_attribute
            The attribute stacked into ``X``.
        extra
            ``(argument, attribute)`` pairs; each becomes a 1-D dask array.

        Returns
        -------
        tuple
            ``(X, kwargs)``.
        """
        X = bag_to_array(self.bag, input_attribute, ndim=2)
        kwargs = {arg: bag_to_array(self.bag, attr, ndim=1) for arg, attr in extra}
        return X, kwargs

    def __len__(self) -> int:
        return int(self.bag.count().compute())


def dask_tags(estimator: Any) -> dict[tuple[str, ...], dict[str, int]]:
    """Collect the Dask resource tags of every ``DaskWrapper`` in an estimator or pipeline.

    bob.pipelines users passed this to ``compute(resources=...)``; current
    ``dask.distributed`` applies ``resources=`` to *every* task of a compute (a mapping
    by key would never be satisfied), so the wrappers annotate their tasks themselves
    when the graph is built. Use this to see which tasks are tagged; do not pass it to
    ``compute``.

    Parameters
    ----------
    estimator
        A wrapper or a :class:`~sklearn.pipeline.Pipeline`.

    Returns
    -------
    dict
        ``{task keys: {resource: 1}}`` for the graphs built so far.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> dask_tags(make_pipeline(FunctionTransformer()))
    {}
    """
    tags: dict[tuple[str, ...], dict[str, int]] = {}
    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            tags.update(dask_tags(step))
        return tags
    seen = 0
    while estimator is not None and seen < 100:
        tags.update(getattr(estimator, "resource_tags_", None) or {})
        inner = estimator.__dict__.get("estimator_") if hasattr(estimator, "__dict__") else None
        if isinstance(inner, (BaseWrapper, Pipeline)):
            tags.update(dask_tags(inner))
        estimator = getattr(estimator, "estimator", None)
        seen += 1
    return tags


def _fit_estimator(estimator: Any, X: Any, y: Any, fit_params: dict[str, Any]) -> Any:
    """Task body: fit a copy of ``estimator`` on all the items of the bag."""
    fitted = clone_estimator(estimator)
    returned = fitted.fit(X, **fit_params) if y is None else fitted.fit(X, y, **fit_params)
    return fitted if returned is None else returned


class DaskWrapper(BaseWrapper):
    """Run an estimator over the partitions of a ``dask.bag``, on the active scheduler.

    ``transform`` (and ``predict``, ...) returns a lazy bag: each partition becomes one
    batched call of the wrapped estimator. Call ``.compute()`` on the result to run it, on
    the local scheduler or on a ``dask.distributed`` cluster if a ``Client`` is active.
    ``fit`` computes the bag, fits a copy of the estimator in one task on the scheduler
    (a worker of the cluster) and brings the fitted estimator back as ``estimator_``.

    Parameters
    ----------
    estimator : estimator object
        The estimator to run, usually a
        :class:`~checkpoint_magic.pipelines.CheckpointWrapper` or
        :class:`~checkpoint_magic.pipelines.SampleWrapper`. It (and what it references)
        must be picklable with cloudpickle, and importable by the workers.
    fit_tag, transform_tag : str, default=None
        A Dask resource name (e.g. ``"GPU"``) that the task of ``fit``, and the tasks of
        ``transform`` (and ``predict``, ...), require: they are annotated
        (``dask.annotate(resources={tag: 1})``) when the graph is built, so a
        ``dask.distributed`` scheduler runs them only on workers started with that
        resource (``dask worker --resources GPU=1``); the local scheduler ignores it.
        The tagged task keys are also recorded in ``resource_tags_`` (see
        :func:`dask_tags`).
    fit_supports_dask_array : bool, default=None
        Fit the estimator inside the ``SampleWrapper`` on ``dask.array`` objects, built
        from the bag without gathering it (for dask-ml estimators), instead of one
        task on a list of samples. ``None``: the estimator's
        ``bob_fit_supports_dask_array`` tag, else ``False``. Only ``fit_extra_arguments``
        reach ``fit`` then (each as a 1-D dask array).
    progress : bool, default=None
        Show a progress bar while ``fit`` computes its input (see
        :func:`~checkpoint_magic.ui.progress_bar`). For ``transform``, whose
        result is lazy, compute with
        :func:`~checkpoint_magic.pipelines.compute_with_progress`.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted copy of ``estimator``, set by :meth:`fit` when fitting is needed.
    resource_tags_ : dict
        ``{task keys: {resource: 1}}`` of the graphs built with a tag.

    Notes
    -----
    A plain list given to ``transform`` is turned into a bag with dask's default
    partitioning; use :class:`ToDaskBag` (or ``wrap`` on a pipeline) to choose it.
    ``fit_transform`` persists its input bag first (``bag.persist()``), so the steps
    before it in a pipeline run once during ``Pipeline.fit``, not once per later step.

    Examples
    --------
    >>> import dask, numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import DaskWrapper, Sample, SampleWrapper, ToDaskBag
    >>> samples = [Sample(np.full(2, float(i)), key=str(i)) for i in range(4)]
    >>> bag = ToDaskBag(npartitions=2).transform(samples)
    >>> wrapper = DaskWrapper(SampleWrapper(FunctionTransformer(np.square)))
    >>> result = wrapper.transform(bag)           # lazy
    >>> with dask.config.set(scheduler="sync"):
    ...     result.compute()[3]
    Sample(data=array([9., 9.]), key='3')
    """

    def __init__(
        self,
        estimator: Any,
        fit_tag: str | None = None,
        transform_tag: str | None = None,
        fit_supports_dask_array: bool | None = None,
        progress: bool | None = None,
    ) -> None:
        self.estimator = estimator
        self.fit_tag = fit_tag
        self.transform_tag = transform_tag
        self.fit_supports_dask_array = fit_supports_dask_array
        self.progress = progress

    def _tag(self, keys: tuple[Any, ...], tag: str) -> None:
        tags = self.__dict__.setdefault("resource_tags_", {})
        tags[keys] = {tag: 1}

    def _map(self, method_name: str, X: Any) -> Any:
        dask = _import_dask()

        bag = _to_bag(X)
        estimator = dask.delayed(self._fitted_estimator(), traverse=False)
        logger.debug("%s.%s over %d partitions", type(self).__name__, method_name, bag.npartitions)
        if not self.transform_tag:
            return bag.map_partitions(_apply_to_partition, estimator, method_name)
        with dask.annotate(resources={self.transform_tag: 1}):
            result = bag.map_partitions(_apply_to_partition, estimator, method_name)
        self._tag(tuple(result.__dask_keys__()), self.transform_tag)
        return result

    def _supports_dask_array(self) -> bool:
        if self.fit_supports_dask_array is not None:
            return bool(self.fit_supports_dask_array)
        return bool(bob_tags(self.estimator).get("bob_fit_supports_dask_array", False))

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> DaskWrapper:
        """Fit a copy of the estimator on all the items of ``X`` in one task.

        Skipped when the estimator requires no fitting (a fitted copy from an earlier
        ``fit`` is dropped all the same). Runs on the active scheduler and
        returns when the fitted estimator is back (``estimator_``).

        Parameters
        ----------
        X
            A ``dask.bag`` (or a sequence) of samples.
        y
            Optional targets (a bag or a sequence), passed to the estimator when given.
        **fit_params
            Passed to the estimator's ``fit``.

        Returns
        -------
        DaskWrapper
            ``self``.

        Raises
        ------
        InvalidArgumentError
            When the estimator fits on dask arrays (``fit_supports_dask_array``) and ``y`` or
            other fit arguments are given: they come from the samples then.
        """
        self.__dict__.pop("estimator_", None)  # never keep the fit of an earlier estimator
        if not estimator_requires_fit(self.estimator):
            return self
        dask = _import_dask()
        if self._supports_dask_array():
            if y is not None or fit_params:
                raise InvalidArgumentError(
                    "With fit_supports_dask_array, fit takes its arguments from the samples: "
                    "pass y and the other fit arguments through the SampleWrapper's "
                    "fit_extra_arguments, e.g. [('y', 'target')]."
                )
            self.estimator_ = _fit_estimator(self.estimator, FitArrays(X), None, {})
            return self
        if self.fit_tag:
            with dask.annotate(resources={self.fit_tag: 1}):
                task = dask.delayed(_fit_estimator, pure=False)(self.estimator, X, y, fit_params)
            self._tag((task.key,), self.fit_tag)
        else:
            task = dask.delayed(_fit_estimator, pure=False)(self.estimator, X, y, fit_params)
        desc = f"fit {type(unwrap(self.estimator)).__name__}"
        self.estimator_ = compute_with_progress(task, self.progress, desc)  # keeps the tag
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit on ``X`` (persisted first, so it is computed once) and return its transform.

        Parameters
        ----------
        X : dask.bag.Bag or list of Sample
            The samples.
        y : array-like, default=None
            Targets, passed to ``fit``.
        **fit_params : dict
            Passed to ``fit``.

        Returns
        -------
        dask.bag.Bag
            A lazy bag of the transformed samples.
        """
        if estimator_requires_fit(self.estimator) and X is not None:
            X = _to_bag(X).persist()
        self.fit(X, y, **fit_params)  # also drops the fit of an earlier estimator
        return self.transform(X)

    @available_if(estimator_has("transform"))
    def transform(self, X: Any) -> Any:
        """Return a lazy bag of ``estimator.transform`` applied partition by partition.

        Parameters
        ----------
        X : dask.bag.Bag or list of Sample
            The samples (a list is turned into a bag first).

        Returns
        -------
        dask.bag.Bag
            The results, computed when the bag is.
        """
        return self._map("transform", X)

    @available_if(estimator_has("predict"))
    def predict(self, X: Any) -> Any:
        """Return a lazy bag of ``estimator.predict`` applied partition by partition.

        Parameters
        ----------
        X : dask.bag.Bag or list of Sample
            The samples (a list is turned into a bag first).

        Returns
        -------
        dask.bag.Bag
            The results, computed when the bag is.
        """
        return self._map("predict", X)

    @available_if(estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        """Return a lazy bag of ``estimator.predict_proba`` applied partition by partition.

        Parameters
        ----------
        X : dask.bag.Bag or list of Sample
            The samples (a list is turned into a bag first).

        Returns
        -------
        dask.bag.Bag
            The results, computed when the bag is.
        """
        return self._map("predict_proba", X)

    @available_if(estimator_has("decision_function"))
    def decision_function(self, X: Any) -> Any:
        """Return a lazy bag of ``estimator.decision_function`` applied partition by partition.

        Parameters
        ----------
        X : dask.bag.Bag or list of Sample
            The samples (a list is turned into a bag first).

        Returns
        -------
        dask.bag.Bag
            The results, computed when the bag is.
        """
        return self._map("decision_function", X)


class ToDaskBag(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Turn a sequence of samples into a ``dask.bag`` (needs no fitting).

    Parameters
    ----------
    npartitions : int, default=None
        Number of partitions (each one a batched call of the next steps); dask's default
        when ``None`` and ``partition_size`` is ``None``.
    partition_size : int, default=None
        Number of samples per partition, instead of ``npartitions``.

    Examples
    --------
    >>> from checkpoint_magic.pipelines import Sample, ToDaskBag
    >>> bag = ToDaskBag(npartitions=2).transform([Sample(i) for i in range(5)])
    >>> bag.npartitions, len(bag.compute(scheduler="sync"))
    (2, 5)
    """

    def __init__(self, npartitions: int | None = None, partition_size: int | None = None) -> None:
        self.npartitions = npartitions
        self.partition_size = partition_size

    def fit(self, X: Any, y: Any = None) -> ToDaskBag:
        """Do nothing (no fitting needed); return ``self``.

        Parameters
        ----------
        X : object
            Ignored.
        y : object, default=None
            Ignored.

        Returns
        -------
        ToDaskBag
            ``self``.
        """
        return self

    def transform(self, X: Any) -> Any:
        """Return ``X`` as a ``dask.bag`` (a bag is returned unchanged).

        Parameters
        ----------
        X : sequence of Sample or dask.bag.Bag
            The samples.

        Returns
        -------
        dask.bag.Bag
            The samples, split into ``npartitions`` partitions (or partitions of
            ``partition_size`` samples).
        """
        return _to_bag(X, self.npartitions, self.partition_size)

    def __sklearn_is_fitted__(self) -> bool:
        return True

    if NEW_STYLE_TAGS:

        def __sklearn_tags__(self) -> Any:
            tags = super().__sklearn_tags__()
            tags.requires_fit = False
            return tags

    else:  # pragma: no cover - scikit-learn < 1.6

        def _more_tags(self) -> dict[str, Any]:
            return {"requires_fit": False}
