"""``wrap``: wrap an estimator, or every step of a pipeline, in several wrappers at once."""

from __future__ import annotations

import copy
import inspect
import logging
import os
from collections.abc import Sequence
from typing import Any

from sklearn.pipeline import Pipeline

from ..exceptions import InvalidArgumentError
from .base import is_passthrough
from .checkpoint import CheckpointWrapper
from .dask import DaskWrapper, ToDaskBag
from .wrappers import SampleWrapper

__all__ = ["WRAPPERS", "wrap"]

logger = logging.getLogger(__name__)

#: The names ``wrap`` accepts in place of the wrapper classes.
WRAPPERS: dict[str, type] = {
    "sample": SampleWrapper,
    "checkpoint": CheckpointWrapper,
    "dask": DaskWrapper,
}


def _init_params(cls: type, skip_estimator: bool) -> set[str]:
    """Named ``__init__`` parameters of ``cls`` (``*args``/``**kwargs`` do not count)."""
    try:
        signature = inspect.signature(cls)  # the __init__ parameters, without self
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return set()
    names = [
        name
        for name, p in signature.parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    if skip_estimator and names:
        names = names[1:]  # the wrapped estimator, passed positionally
    return set(names)


def _resolve(base: Any) -> type:
    if isinstance(base, str):
        try:
            return WRAPPERS[base.lower()]
        except KeyError:
            raise InvalidArgumentError(
                f"Unknown wrapper {base!r}; use one of {sorted(WRAPPERS)} or a class."
            ) from None
    if isinstance(base, type):
        return base
    raise InvalidArgumentError(
        f"wrap takes wrapper names ({sorted(WRAPPERS)}) or classes, got {base!r}. Pass an "
        "estimator instance as the second argument instead."
    )


def _wrap_one(bases: list[type], estimator: Any, kwargs: dict[str, Any], used: set[str]) -> Any:
    """Apply ``bases`` in order; each class gets the kwargs its ``__init__`` names."""
    for cls in bases:
        accepted = _init_params(cls, skip_estimator=estimator is not None)
        params = {k: v for k, v in kwargs.items() if k in accepted}
        used.update(params)
        estimator = cls(**params) if estimator is None else cls(estimator, **params)
    return estimator


def wrap(bases: Sequence[Any] | Any, estimator: Any = None, **kwargs: Any) -> Any:
    """Wrap ``estimator`` in several wrappers, passing each the keyword arguments it takes.

    Parameters
    ----------
    bases
        Wrappers to apply, innermost first: the names ``"sample"``
        (:class:`~checkpoint_magic.pipelines.SampleWrapper`), ``"checkpoint"``
        (:class:`~checkpoint_magic.pipelines.CheckpointWrapper`), ``"dask"``
        (:class:`~checkpoint_magic.pipelines.DaskWrapper`), or classes. Without
        ``estimator``, the first item is the estimator class to instantiate.
    estimator
        The estimator to wrap. For a :class:`~sklearn.pipeline.Pipeline`, each step is
        wrapped (a copy of the pipeline is returned): ``features_dir`` becomes
        ``features_dir/<step name>`` and ``model_path`` becomes
        ``model_path/<step name>.pkl``; with ``"dask"``, a first step ``"ToDaskBag"``
        (:class:`~checkpoint_magic.pipelines.ToDaskBag`, which takes ``npartitions`` and
        ``partition_size``) turns the samples into a bag.
    **kwargs
        ``__init__`` parameters: every class whose ``__init__`` names a parameter gets it.
        ``progress=True/False`` goes to the wrappers that show progress bars
        (:class:`~checkpoint_magic.pipelines.CheckpointWrapper`,
        :class:`~checkpoint_magic.pipelines.DaskWrapper`) and is accepted even when
        none is among ``bases``.

    Returns
    -------
    object
        The wrapped estimator (or pipeline).

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) for a keyword argument that no class takes, or an unknown name.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> wrap(["sample", "checkpoint"], FunctionTransformer(), features_dir="/tmp/f")
    CheckpointWrapper(estimator=SampleWrapper(estimator=FunctionTransformer()),
                      features_dir='/tmp/f')
    >>> pipeline = wrap(["sample", "dask"], make_pipeline(FunctionTransformer()), npartitions=4)
    >>> [name for name, _ in pipeline.steps]
    ['ToDaskBag', 'functiontransformer']
    >>> wrap(["sample"], FunctionTransformer(), feature_dir="typo")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: wrap got keyword arguments ...['feature_dir']...
    """
    if isinstance(bases, (str, type)):
        bases = [bases]
    bases = list(bases)
    if not bases:
        raise InvalidArgumentError("wrap needs at least one wrapper (e.g. ['sample']).")
    classes = [_resolve(b) for b in bases]
    if estimator is None and isinstance(bases[0], str):
        raise InvalidArgumentError(
            f"wrap({bases!r}) has no estimator to wrap: pass one as the second argument or "
            "put its class first, e.g. wrap([MyTransformer, 'sample'], ...)."
        )
    used: set[str] = set()

    if isinstance(estimator, Pipeline):
        wrapped = copy.copy(estimator)
        steps = []
        for name, step in estimator.steps:
            if is_passthrough(step) or isinstance(step, ToDaskBag):
                steps.append((name, step))
                continue
            step_kwargs = dict(kwargs)
            if kwargs.get("features_dir") is not None:
                step_kwargs["features_dir"] = os.path.join(os.fspath(kwargs["features_dir"]), name)
            if kwargs.get("model_path") is not None:
                step_kwargs["model_path"] = os.path.join(
                    os.fspath(kwargs["model_path"]), f"{name}.pkl"
                )
            steps.append((name, _wrap_one(classes, step, step_kwargs, used)))
        if DaskWrapper in classes and not (steps and isinstance(steps[0][1], ToDaskBag)):
            to_bag = _wrap_one([ToDaskBag], None, kwargs, used)
            steps.insert(0, ("ToDaskBag", to_bag))
        wrapped.steps = steps
        result: Any = wrapped
    else:
        result = _wrap_one(classes, estimator, kwargs, used)

    unused = sorted(set(kwargs) - used - {"progress"})
    if unused:
        raise InvalidArgumentError(
            f"wrap got keyword arguments that no wrapper takes: {unused}. Check their "
            f"spelling; the classes were {[c.__name__ for c in classes]}."
        )
    return result
