"""Small helpers of the bob.pipelines API: nested wrappers, sample sets, parameter checks."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sklearn.pipeline import Pipeline

from ..exceptions import InvalidArgumentError
from .sample import SampleSet

__all__ = [
    "check_parameter_for_validity",
    "check_parameters_for_validity",
    "flatten_samplesets",
    "is_instance_nested",
    "is_pipeline_wrapped",
]

logger = logging.getLogger(__name__)


def is_instance_nested(
    instance: Any, attribute: str, isinstance_of: type | tuple[type, ...]
) -> bool:
    """Whether ``instance``, or an object reached by following ``attribute``, is of a type.

    Parameters
    ----------
    instance
        The outer object, e.g. a wrapper.
    attribute
        The attribute holding the inner object (``"estimator"`` for wrappers).
    isinstance_of
        A type or a tuple of types.

    Returns
    -------
    bool
        True if ``instance``, or an object nested under ``attribute``, is one.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import CheckpointWrapper, SampleWrapper
    >>> w = CheckpointWrapper(SampleWrapper(FunctionTransformer()))
    >>> is_instance_nested(w, "estimator", FunctionTransformer)
    True
    """
    seen: set[int] = set()
    while instance is not None and id(instance) not in seen:
        if isinstance(instance, isinstance_of):
            return True
        seen.add(id(instance))
        instance = getattr(instance, attribute, None)
    return False


def is_pipeline_wrapped(estimator: Pipeline, wrapper: type) -> list[bool]:
    """For each step of a pipeline, whether it is (or wraps) an instance of ``wrapper``.

    Parameters
    ----------
    estimator
        A :class:`~sklearn.pipeline.Pipeline`.
    wrapper
        A wrapper class, e.g. :class:`~checkpoint_magic.pipelines.CheckpointWrapper`.

    Returns
    -------
    list of bool
        One entry per step, in order.

    Raises
    ------
    InvalidArgumentError
        If ``estimator`` is not a pipeline.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import SampleWrapper
    >>> is_pipeline_wrapped(make_pipeline(SampleWrapper(FunctionTransformer())), SampleWrapper)
    [True]
    """
    if not isinstance(estimator, Pipeline):
        raise InvalidArgumentError(
            f"is_pipeline_wrapped takes a sklearn Pipeline, got {type(estimator).__name__}; "
            "use is_instance_nested(estimator, 'estimator', wrapper) for one estimator."
        )
    return [is_instance_nested(step, "estimator", wrapper) for _, step in estimator.steps]


def flatten_samplesets(samplesets: Iterable[SampleSet]) -> list[SampleSet]:
    """Split sample sets into sets of one sample each, keyed ``"<set key>-<index>"``.

    Parameters
    ----------
    samplesets
        Sample sets with a ``key``.

    Returns
    -------
    list of SampleSet
        One set per sample, with the metadata of its original set (and a new key).

    Raises
    ------
    InvalidArgumentError
        If a set has no ``key``.

    Examples
    --------
    >>> from checkpoint_magic.pipelines import Sample, SampleSet
    >>> flat = flatten_samplesets([SampleSet([Sample(1), Sample(2)], key="s", subject=3)])
    >>> [(f.key, f.subject, f[0].data) for f in flat]
    [('s-0', 3, 1), ('s-1', 3, 2)]
    """
    flat = []
    for n, sset in enumerate(samplesets):
        set_key = getattr(sset, "key", None)
        if set_key is None:
            raise InvalidArgumentError(
                f"Sample set {n} has no key; flatten_samplesets names each new set "
                "'<key>-<index>'. Build the sets with SampleSet(samples, key=...)."
            )
        for i, sample in enumerate(sset):
            flat.append(SampleSet([sample], parent=sset, key=f"{set_key}-{i}"))
    return flat


def check_parameters_for_validity(
    parameters: Any,
    parameter_description: str,
    valid_parameters: Sequence[Any],
    default_parameters: Sequence[Any] | None = None,
) -> list[Any]:
    """Check that every value of ``parameters`` is valid; return them as a list.

    Parameters
    ----------
    parameters
        One value, a list/tuple/set of values, or ``None``/empty for the defaults.
    parameter_description
        How to name the parameter in the error message.
    valid_parameters
        The allowed values.
    default_parameters
        Returned when ``parameters`` is empty; ``None``: all ``valid_parameters``.

    Returns
    -------
    list
        The values (``default_parameters``, or all ``valid_parameters``, when empty).

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) for a value that is not allowed.

    Examples
    --------
    >>> check_parameters_for_validity("dev", "group", ["dev", "eval"])
    ['dev']
    >>> check_parameters_for_validity(None, "group", ["dev", "eval"])
    ['dev', 'eval']
    """
    if not parameters:
        parameters = default_parameters if default_parameters is not None else valid_parameters
    if not isinstance(parameters, (list, tuple, set)):
        parameters = (parameters,)
    for parameter in parameters:
        if parameter not in valid_parameters:
            raise InvalidArgumentError(  # bob.pipelines' wording, which its users match
                f"Invalid {parameter_description} '{parameter}'. Valid values are "
                f"{valid_parameters}, or lists/tuples of those"
            )
    return list(parameters)


def check_parameter_for_validity(
    parameter: Any,
    parameter_description: str,
    valid_parameters: Sequence[Any],
    default_parameter: Any = None,
) -> Any:
    """Check that ``parameter`` is one valid value; return it.

    Parameters
    ----------
    parameter
        A value, a one-element list/tuple/set, or ``None`` for ``default_parameter``.
    parameter_description
        How to name the parameter in the error message.
    valid_parameters
        The allowed values.
    default_parameter
        Returned for ``None``; without it, ``None`` is an error.

    Returns
    -------
    object
        The value.

    Raises
    ------
    InvalidArgumentError
        (a ``ValueError``) for ``None`` without default, several values, or a value that
        is not allowed.

    Examples
    --------
    >>> check_parameter_for_validity(["eval"], "group", ["dev", "eval"])
    'eval'
    >>> check_parameter_for_validity(None, "group", ["dev", "eval"], "dev")
    'dev'
    """
    if parameter is None:
        if default_parameter is None:  # bob.pipelines' wording, which its users match
            raise InvalidArgumentError(
                f"The {parameter_description} has to be one of {valid_parameters}, it might "
                "not be 'None'."
            )
        parameter = default_parameter
    if isinstance(parameter, (list, tuple, set)):
        if len(parameter) != 1:
            raise InvalidArgumentError(
                f"The {parameter_description} has to be one of {valid_parameters}, it might "
                f"not be more than one ({parameter} was given)."
            )
        parameter = next(iter(parameter))
    if parameter not in valid_parameters:
        raise InvalidArgumentError(
            f"The given {parameter_description} '{parameter}' is not allowed. Please choose "
            f"one of {valid_parameters}."
        )
    return parameter
