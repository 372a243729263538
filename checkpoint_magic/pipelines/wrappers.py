"""``SampleWrapper``: run a scikit-learn estimator on samples, keeping their metadata.

The wrapped estimator never sees samples: it receives ``[s.data for s in samples]`` (or
another ``input_attribute``) plus one list per ``(argument, attribute)`` pair of
``transform_extra_arguments`` / ``fit_extra_arguments``, in one call, and its results are put
back into new samples that keep the metadata of the input samples.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sklearn.utils.metaestimators import available_if

from ..exceptions import InvalidArgumentError
from .base import BaseWrapper, bob_tags, clone_estimator, estimator_has, estimator_requires_fit
from .dask import FitArrays
from .sample import Constant, DelayedSample, Sample, SampleSet, is_sample, is_sample_set

__all__ = ["SampleWrapper"]

logger = logging.getLogger(__name__)


class UnexpectedTargetError(InvalidArgumentError, TypeError):
    """``y`` was given to ``SampleWrapper.fit``; targets travel as sample metadata.

    Also a ``TypeError`` (an unexpected argument), as in bob.pipelines.
    """


def _check_pairs(pairs: Any, name: str) -> list[tuple[str, str]]:
    if pairs is None:
        return []
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise InvalidArgumentError(
            f"{name} must be a list of (argument, attribute) pairs such as "
            f"[('sample_specific_offsets', 'offset')], got {pairs!r}."
        )
    checked = []
    for pair in pairs:
        if (
            isinstance(pair, (str, bytes))
            or not isinstance(pair, Sequence)
            or len(pair) != 2
            or not all(isinstance(p, str) for p in pair)
        ):
            raise InvalidArgumentError(
                f"Each item of {name} must be an (argument, attribute) pair of strings, "
                f"got {pair!r}."
            )
        checked.append((pair[0], pair[1]))
    return checked


def _attribute(sample: Any, attribute: str, index: int) -> Any:
    try:
        return getattr(sample, attribute)
    except AttributeError:
        key = sample.__dict__.get("key", None)
        where = f"sample {index}" + (f" (key={key!r})" if key is not None else "")
        raise InvalidArgumentError(
            f"{where} has no attribute {attribute!r}, which the SampleWrapper was asked to "
            "pass to the estimator. Set it when building the samples, e.g. "
            f"Sample(data, {attribute}=...)."
        ) from None


def _check_samples(samples: Sequence[Any], who: str) -> bool:
    """Validate a batch; return True if it is a batch of sample sets, False for samples."""
    first = samples[0]
    sets = is_sample_set(first)
    for i, s in enumerate(samples):
        if sets and not is_sample_set(s):
            raise InvalidArgumentError(
                f"{who} got a mix of SampleSets and other objects (item {i} is "
                f"{type(s).__name__}); pass either samples or sample sets."
            )
        if not sets and not is_sample(s):
            raise InvalidArgumentError(
                f"{who} expects Sample objects, but item {i} is a {type(s).__name__}. Wrap "
                "your data first, e.g. samples = [Sample(x, key=str(i)) for i, x in "
                "enumerate(X)]."
            )
    return sets


def _split_failed(samples: Sequence[Any], attribute: str) -> tuple[list[int], list[int]]:
    """Indices of the samples whose ``attribute`` is set, and of those where it is ``None``.

    A sample whose attribute is missing counts as valid (the error comes later, naming it).
    """
    valid: list[int] = []
    failed: list[int] = []
    for i, s in enumerate(samples):
        (failed if getattr(s, attribute, 0) is None else valid).append(i)
    return valid, failed


def _len(result: Any, who: str) -> int:
    try:
        return len(result)
    except TypeError:
        raise InvalidArgumentError(
            f"{who} returned {type(result).__name__}, not one result per sample."
        ) from None


class SampleWrapper(BaseWrapper):
    """Wrap a scikit-learn estimator so that it takes and returns samples.

    ``transform(samples)`` calls the estimator once with ``[s.data for s in samples]`` and,
    for every ``(argument, attribute)`` pair of ``transform_extra_arguments``, the keyword
    argument ``argument=[getattr(s, attribute) for s in samples]``. Each result becomes a new
    :class:`~checkpoint_magic.pipelines.Sample` that keeps the metadata of its input sample.
    Sample sets are transformed one call per set, and returned as sample sets.

    Parameters
    ----------
    estimator : estimator object
        The scikit-learn estimator (or any object with the methods used).
    transform_extra_arguments : list of (str, str) tuples, default=None
        ``[(argument, attribute), ...]`` passed to ``transform`` (and ``predict``, ...).
        ``None``: the estimator's ``bob_transform_extra_input`` tag, else none.
    fit_extra_arguments : list of (str, str) tuples, default=None
        ``[(argument, attribute), ...]`` passed to ``fit``, e.g. ``[("y", "target")]``.
        ``fit`` receives nothing else: targets travel as sample metadata. ``None``: the
        estimator's ``bob_fit_extra_input`` tag, else none.
    output_attribute : str, default=None
        Attribute that receives the results. ``"data"``: new samples are returned, with
        the results as data and the metadata of the inputs. Another name: the results
        are set as that attribute *on the input samples*, which are returned (as in
        bob.pipelines), so the data is kept.
        ``None``: the estimator's ``bob_output`` tag, else ``"data"``.
    input_attribute : str, default=None
        Attribute of the input samples given to the estimator as ``X``. ``None``: the
        estimator's ``bob_input`` tag, else ``"data"``.

    Attributes
    ----------
    estimator_ : estimator object
        The fitted copy of ``estimator``, set by :meth:`fit` when the estimator requires
        fitting. Without it, ``estimator`` itself is used (it may be already fitted).

    Notes
    -----
    **Tags.** For compatibility with bob.pipelines, an estimator may declare its defaults
    for the four arguments above in ``_more_tags()`` under the names ``bob_input``,
    ``bob_output``, ``bob_transform_extra_input`` and ``bob_fit_extra_input``; an
    argument given to the wrapper (not ``None``) wins over the tag. They are read when
    the wrapper runs, so the parameters keep the values given to ``__init__``.

    **Failed samples.** An estimator may return ``None`` for a sample it cannot process;
    the new sample then has ``None`` as its ``output_attribute``. The next
    ``SampleWrapper`` leaves samples whose input is ``None`` out of the estimator's call
    (and out of ``fit``) and returns them with ``None``, in their place, so the list (or
    the sample set) keeps one sample per input. A
    :class:`~checkpoint_magic.pipelines.CheckpointWrapper` does not save them.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.base import BaseEstimator, TransformerMixin
    >>> from checkpoint_magic.pipelines import Sample, SampleWrapper
    >>> class AddOffset(TransformerMixin, BaseEstimator):
    ...     def fit(self, X):
    ...         return self
    ...     def transform(self, X, offsets):
    ...         return np.array(X) + np.array(offsets)[:, None]
    >>> samples = [Sample(np.zeros(2), offset=i, key=str(i)) for i in range(2)]
    >>> wrapper = SampleWrapper(AddOffset(), [("offsets", "offset")])
    >>> wrapper.fit_transform(samples)[1]
    Sample(data=array([1., 1.]), offset=1, key='1')
    """

    def __init__(
        self,
        estimator: Any,
        transform_extra_arguments: Sequence[tuple[str, str]] | None = None,
        fit_extra_arguments: Sequence[tuple[str, str]] | None = None,
        output_attribute: str | None = None,
        input_attribute: str | None = None,
    ) -> None:
        self.estimator = estimator
        self.transform_extra_arguments = transform_extra_arguments
        self.fit_extra_arguments = fit_extra_arguments
        self.output_attribute = output_attribute
        self.input_attribute = input_attribute

    # ---------------------------------------------------------------- helpers

    def _setting(self, name: str, tag: str, default: Any) -> Any:
        """An ``__init__`` argument, else the estimator's bob tag, else ``default``."""
        value = getattr(self, name)
        if value is not None:
            return value
        return bob_tags(self.estimator).get(tag, default)

    def _input_attribute(self) -> str:
        return str(self._setting("input_attribute", "bob_input", "data"))

    def _output_attribute(self) -> str:
        return str(self._setting("output_attribute", "bob_output", "data"))

    def _inputs(
        self, samples: Sequence[Any], pairs: list[tuple[str, str]], sets: bool
    ) -> tuple[list[Any], dict[str, list[Any]]]:
        """``X`` and the extra keyword arguments for one call (nested lists for sets)."""

        def column(batch: Sequence[Any], attribute: str) -> list[Any]:
            return [_attribute(s, attribute, i) for i, s in enumerate(batch)]

        input_attribute = self._input_attribute()
        if sets:
            X = [column(list(sset), input_attribute) for sset in samples]
            kwargs = {arg: [column(list(sset), attr) for sset in samples] for arg, attr in pairs}
        else:
            X = column(samples, input_attribute)
            kwargs = {arg: column(samples, attr) for arg, attr in pairs}
        return X, kwargs

    def _new_sample(self, sample: Any, result: Any, output_attribute: str) -> Any:
        if output_attribute == "data":
            if isinstance(sample, DelayedSample) and sample.delayed_attributes:
                # keep the parent's delayed metadata delayed
                return DelayedSample(Constant(result), parent=sample)
            return Sample(result, parent=sample)
        # Another attribute: set on the input sample itself, which is returned, as
        # bob.pipelines does (code built on it reads the attribute from the inputs).
        setattr(sample, output_attribute, result)
        return sample

    def _apply(self, method_name: str, samples: Any) -> Any:
        samples = samples if isinstance(samples, list) else list(samples)
        if not samples:
            return []
        who = f"{type(self).__name__}.{method_name}"
        if _check_samples(samples, who):
            return [
                SampleSet(self._apply(method_name, list(sset)), parent=sset) for sset in samples
            ]
        pairs = _check_pairs(
            self._setting("transform_extra_arguments", "bob_transform_extra_input", None),
            "transform_extra_arguments",
        )
        output_attribute = self._output_attribute()
        # failed samples (None input, from an earlier step) are left out of the call
        valid, failed = _split_failed(samples, self._input_attribute())
        results: list[Any] = [None] * len(samples)
        if valid:
            batch = [samples[i] for i in valid] if failed else samples
            X, kwargs = self._inputs(batch, pairs, sets=False)
            method = getattr(self._fitted_estimator(), method_name)
            logger.debug("%s on %d samples (%d failed left out)", who, len(batch), len(failed))
            computed = method(X, **kwargs)
            n = _len(computed, f"{type(self._fitted_estimator()).__name__}.{method_name}")
            if n != len(batch):
                raise InvalidArgumentError(
                    f"{type(self._fitted_estimator()).__name__}.{method_name} returned {n} "
                    f"results for {len(batch)} samples; it must return one result per sample."
                )
            for i, r in zip(valid, computed, strict=True):
                results[i] = r
        return [
            self._new_sample(s, r, output_attribute) for s, r in zip(samples, results, strict=True)
        ]

    # ---------------------------------------------------------------- API

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> SampleWrapper:
        """Fit a copy of the estimator on the samples (skipped if it needs no fitting).

        A fitted copy from an earlier ``fit`` is dropped first, even when the (possibly
        replaced) estimator needs no fitting.

        The estimator receives ``[s.<input_attribute> for s in X]`` and the
        ``fit_extra_arguments`` (nested lists, one per set, for sample sets), plus
        ``fit_params``. It never receives ``y``.

        Parameters
        ----------
        X
            Samples or sample sets.
        y
            Must be ``None``: pass targets as metadata through ``fit_extra_arguments``.
        **fit_params
            Extra keyword arguments given to the estimator's ``fit`` as they are.

        Returns
        -------
        SampleWrapper
            ``self``.

        Raises
        ------
        UnexpectedTargetError
            When ``y`` is given: targets travel in the samples' metadata.
        InvalidArgumentError
            When ``X`` holds no sample.
        """
        self.__dict__.pop("estimator_", None)  # never keep the fit of an earlier estimator
        if y is not None:
            raise UnexpectedTargetError(
                "SampleWrapper.fit does not take `y`: put the targets in the samples' "
                "metadata (e.g. Sample(x, target=t)) and pass "
                "fit_extra_arguments=[('y', 'target')] to the SampleWrapper."
            )
        if not estimator_requires_fit(self.estimator):
            logger.debug("%s: the estimator requires no fit; not fitting", type(self).__name__)
            return self
        pairs = _check_pairs(
            self._setting("fit_extra_arguments", "bob_fit_extra_input", None),
            "fit_extra_arguments",
        )
        if isinstance(X, FitArrays):  # from DaskWrapper(fit_supports_dask_array=True)
            data, kwargs = X.build(self._input_attribute(), pairs)
            estimator = clone_estimator(self.estimator)
            fitted = estimator.fit(data, **kwargs, **fit_params)
            self.estimator_ = estimator if fitted is None else fitted
            return self
        samples = X if isinstance(X, list) else list(X)
        if not samples:
            raise InvalidArgumentError("SampleWrapper.fit got no samples to fit on.")
        sets = _check_samples(samples, "SampleWrapper.fit")
        if not sets:  # failed samples (None input) are not fitted on
            valid, failed = _split_failed(samples, self._input_attribute())
            if failed:
                samples = [samples[i] for i in valid]
        data, kwargs = self._inputs(samples, pairs, sets)
        estimator = clone_estimator(self.estimator)
        fitted = estimator.fit(data, **kwargs, **fit_params)
        self.estimator_ = estimator if fitted is None else fitted
        return self

    @available_if(estimator_has("transform"))
    def transform(self, X: Any) -> Any:
        """Transform samples (or sample sets) in one call; return new samples.

        Parameters
        ----------
        X
            Samples or sample sets.

        Returns
        -------
        list
            New samples (or sample sets) in the same order, with the results in
            ``output_attribute`` and the metadata of the input samples.
        """
        return self._apply("transform", X)

    @available_if(estimator_has("predict"))
    def predict(self, X: Any) -> Any:
        """``predict`` on samples; the predictions become the new samples' data.

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples (or sample sets).

        Returns
        -------
        list of Sample or SampleSet
            New samples in the same order, with the predictions in ``output_attribute`` and the
            metadata of the input samples.
        """
        return self._apply("predict", X)

    @available_if(estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        """``predict_proba`` on samples; the probabilities become the new samples' data.

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples (or sample sets).

        Returns
        -------
        list of Sample or SampleSet
            New samples in the same order, with the probabilities in ``output_attribute`` and the
            metadata of the input samples.
        """
        return self._apply("predict_proba", X)

    @available_if(estimator_has("decision_function"))
    def decision_function(self, X: Any) -> Any:
        """``decision_function`` on samples; the scores become the new samples' data.

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples (or sample sets).

        Returns
        -------
        list of Sample or SampleSet
            New samples in the same order, with the scores in ``output_attribute`` and the
            metadata of the input samples.
        """
        return self._apply("decision_function", X)
