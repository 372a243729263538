"""Scikit-learn plumbing shared by the pipeline wrappers: tags, fitted state, ``requires_fit``.

Every wrapper stores the estimator it wraps as ``estimator`` (a parameter, never modified)
and, once fitted, a fitted copy as ``estimator_``. Methods use ``estimator_`` when it exists
and ``estimator`` otherwise, so an estimator that was fitted before being wrapped (or that
needs no fitting) can be used without calling ``fit`` on the wrapper. Wrappers report the
``requires_fit`` tag of what they wrap, so scikit-learn (and :func:`estimator_requires_fit`)
sees through them.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import sys
from collections.abc import Callable
from typing import Any

from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.validation import check_is_fitted

__all__ = [
    "BaseWrapper",
    "bob_tags",
    "clone_estimator",
    "estimator_has",
    "estimator_requires_fit",
    "getattr_nested",
    "is_passthrough",
    "is_wrapped",
    "unwrap",
]

logger = logging.getLogger(__name__)

try:  # scikit-learn >= 1.6
    from sklearn.utils import get_tags as _get_tags
except ImportError:  # pragma: no cover - older scikit-learn
    _get_tags = None

#: True when scikit-learn uses ``__sklearn_tags__`` (>= 1.6), False for ``_more_tags``.
NEW_STYLE_TAGS = _get_tags is not None


def is_passthrough(estimator: Any) -> bool:
    """Whether a pipeline step is ``None``, ``"passthrough"`` or ``"drop"``.

    Parameters
    ----------
    estimator : object
        A pipeline step.

    Returns
    -------
    bool
        True for the placeholders scikit-learn skips.

    Examples
    --------
    >>> is_passthrough("passthrough"), is_passthrough(None), is_passthrough(len)
    (True, True, False)
    """
    return estimator is None or (
        isinstance(estimator, str) and estimator in ("passthrough", "drop")
    )


def _requires_fit_tag(estimator: Any) -> bool:
    """The ``requires_fit`` tag of a (non-wrapper) estimator; True when it has no tags."""
    if _get_tags is not None:
        try:
            return bool(_get_tags(estimator).requires_fit)
        except AttributeError:  # an object with ``fit`` but without sklearn's tag machinery
            return True
    try:  # pragma: no cover - scikit-learn < 1.6
        return bool(estimator._get_tags().get("requires_fit", True))
    except AttributeError:  # pragma: no cover
        return True


def estimator_requires_fit(estimator: Any) -> bool:
    """Tell whether ``estimator`` needs ``fit`` before it can transform.

    Wrappers (:class:`~checkpoint_magic.pipelines.SampleWrapper`,
    :class:`~checkpoint_magic.pipelines.CheckpointWrapper`,
    :class:`~checkpoint_magic.pipelines.DaskWrapper`) are seen through; a
    :class:`~sklearn.pipeline.Pipeline` requires fit when any of its steps does;
    a ``FunctionTransformer`` never does (on every scikit-learn version: before 1.6 its
    tag said otherwise); otherwise the estimator's ``requires_fit`` tag decides
    (:class:`~checkpoint_magic.pipelines.ToDaskBag` needs no fit). An object without
    ``fit`` needs no fit.

    Parameters
    ----------
    estimator
        An estimator, a wrapper, a pipeline, ``None`` or ``"passthrough"``.

    Returns
    -------
    bool
        True if ``fit`` must run before ``transform``.

    Examples
    --------
    >>> from sklearn.decomposition import PCA
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import SampleWrapper
    >>> estimator_requires_fit(SampleWrapper(FunctionTransformer()))
    False
    >>> estimator_requires_fit(make_pipeline(FunctionTransformer(), SampleWrapper(PCA())))
    True
    """
    if is_passthrough(estimator):
        return False
    if isinstance(estimator, BaseWrapper):
        return estimator_requires_fit(estimator.estimator)
    if isinstance(estimator, Pipeline):
        return any(estimator_requires_fit(step) for _, step in estimator.steps)
    if not hasattr(estimator, "fit"):
        return False
    if isinstance(estimator, FunctionTransformer):
        # Stateless: its fit learns nothing the transform needs. scikit-learn < 1.6 tags it
        # requires_fit=True, which would save a useless model and gather a Dask bag.
        return False
    declared = _more_tags(estimator).get("requires_fit")
    if isinstance(declared, bool):  # bob.pipelines style, ignored by scikit-learn >= 1.6
        return declared
    return _requires_fit_tag(estimator)


def bob_tags(estimator: Any) -> dict[str, Any]:
    """The ``bob_*`` tags an estimator declares in ``_more_tags()`` (bob.pipelines' way).

    Wrappers are seen through: the tags of the innermost estimator are returned.

    Parameters
    ----------
    estimator
        Any estimator.

    Returns
    -------
    dict
        Only the keys starting with ``bob_``; empty when there are none.

    Examples
    --------
    >>> from sklearn.base import BaseEstimator
    >>> class Annotator(BaseEstimator):
    ...     def _more_tags(self):
    ...         return {"bob_output": "annotations", "requires_fit": False}
    >>> bob_tags(Annotator())
    {'bob_output': 'annotations'}
    """
    while isinstance(estimator, BaseWrapper):
        estimator = estimator.estimator
    tags = _more_tags(estimator)
    return {k: v for k, v in tags.items() if isinstance(k, str) and k.startswith("bob_")}


def _more_tags(estimator: Any) -> dict[str, Any]:
    """The tags user classes declare in ``_more_tags()`` (not sklearn's own classes)."""
    if isinstance(estimator, (BaseWrapper, type)):
        return {}
    # merged along the class hierarchy, base classes first, as scikit-learn < 1.6 did
    tags: dict[str, Any] = {}
    for klass in reversed(type(estimator).__mro__):
        more_tags = klass.__dict__.get("_more_tags")
        if more_tags is None or (getattr(klass, "__module__", "") or "").startswith("sklearn"):
            continue
        try:
            found = more_tags(estimator)
        except (AttributeError, TypeError):  # needs the old sklearn machinery
            continue
        if isinstance(found, dict):
            tags.update(found)
    return tags


def getattr_nested(estimator: Any, attr: str) -> Any:
    """``attr`` of the first of ``estimator`` and the estimators it wraps that has it.

    Parameters
    ----------
    estimator
        A wrapper (or any object; its ``estimator`` attribute is followed).
    attr
        The attribute name.

    Returns
    -------
    object or None
        The value, or ``None`` when no level has it. The fitted copy (``estimator_``) of a
        wrapper is looked at before the estimator it was cloned from.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import CheckpointWrapper, SampleWrapper
    >>> getattr_nested(CheckpointWrapper(SampleWrapper(FunctionTransformer())), "func") is None
    True
    >>> getattr_nested(CheckpointWrapper(SampleWrapper(FunctionTransformer()), "f"), "features_dir")
    'f'
    """
    seen = 0
    while estimator is not None and seen < 100:
        if hasattr(estimator, attr):
            return getattr(estimator, attr)
        inner = estimator.__dict__.get("estimator_") if hasattr(estimator, "__dict__") else None
        estimator = inner if inner is not None else getattr(estimator, "estimator", None)
        seen += 1
    return None


def is_wrapped(estimator: Any, wrapper: type) -> bool:
    """Return True if ``estimator`` is, or wraps at any depth, an instance of ``wrapper``.

    Parameters
    ----------
    estimator : object
        An estimator, wrapped or not.
    wrapper : type
        A wrapper class, such as :class:`~checkpoint_magic.pipelines.SampleWrapper`.

    Returns
    -------
    bool
        Whether ``wrapper`` appears in the chain of wrappers.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import CheckpointWrapper, SampleWrapper
    >>> is_wrapped(CheckpointWrapper(SampleWrapper(FunctionTransformer())), SampleWrapper)
    True
    """
    while True:
        if isinstance(estimator, wrapper):
            return True
        if not isinstance(estimator, BaseWrapper):
            return False
        estimator = estimator.estimator


def unwrap(estimator: Any) -> Any:
    """Return the innermost estimator under any number of wrappers (fitted copy preferred).

    Parameters
    ----------
    estimator : object
        An estimator, wrapped or not.

    Returns
    -------
    object
        The innermost estimator: at each level the fitted ``estimator_`` if it exists,
        otherwise ``estimator``. ``estimator`` itself when it is not a wrapper.

    Examples
    --------
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import CheckpointWrapper, SampleWrapper
    >>> unwrap(CheckpointWrapper(SampleWrapper(FunctionTransformer())))
    FunctionTransformer()
    """
    while isinstance(estimator, BaseWrapper):
        estimator = estimator._fitted_estimator()
    return estimator


def clone_estimator(estimator: Any) -> Any:
    """``sklearn.base.clone`` for estimators, a deep copy for other objects with ``fit``.

    Parameters
    ----------
    estimator
        The estimator to copy (unfitted).

    Returns
    -------
    object
        An unfitted copy: ``sklearn.base.clone`` of an estimator, else a deep copy.
    """
    if hasattr(estimator, "get_params") and not isinstance(estimator, type):
        return clone(estimator)
    return copy.deepcopy(estimator)


def _estimator_is_fitted(estimator: Any) -> bool:
    if is_passthrough(estimator) or not hasattr(estimator, "fit"):
        return True
    try:
        check_is_fitted(estimator)
    except NotFittedError:
        return False
    except (TypeError, AttributeError):  # not an sklearn estimator: cannot tell, assume usable
        return True
    return True


def estimator_has(attr: str) -> Callable[[Any], bool]:
    """``available_if`` check: the (fitted or unfitted) wrapped estimator has ``attr``.

    Parameters
    ----------
    attr
        The method name.

    Returns
    -------
    callable
        ``check(wrapper) -> bool``.
    """

    def check(self: Any) -> bool:
        return hasattr(self._fitted_estimator(), attr)

    return check


class BaseWrapper(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[call-arg]
    """Base class of the wrappers: the wrapped ``estimator``, its fitted copy and its tags.

    Subclasses take the wrapped estimator as their first ``__init__`` parameter, named
    ``estimator``, store every parameter unchanged and put what ``fit`` learns in
    ``estimator_``.
    """

    estimator: Any

    def __init_subclass__(cls, auto_wrap_output_keys: Any = None, **kwargs: Any) -> None:
        # Outputs are samples or bags, not arrays: no ``set_output`` wrapping (it would
        # also hide the ``available_if`` of ``transform``).
        super().__init_subclass__(auto_wrap_output_keys=auto_wrap_output_keys, **kwargs)

    def _fitted_estimator(self) -> Any:
        """The fitted copy (``estimator_``) if ``fit`` was called, else ``estimator``."""
        return self.__dict__.get("estimator_", self.estimator)

    def __sklearn_is_fitted__(self) -> bool:
        if "estimator_" in self.__dict__:
            return True
        return _estimator_is_fitted(self.estimator)

    if NEW_STYLE_TAGS:

        def __sklearn_tags__(self) -> Any:
            tags = super().__sklearn_tags__()
            tags.requires_fit = estimator_requires_fit(self.estimator)
            return tags

    else:  # pragma: no cover - scikit-learn < 1.6

        def _more_tags(self) -> dict[str, Any]:
            return {"requires_fit": estimator_requires_fit(self.estimator)}

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """Fit to ``X`` then transform ``X`` (``y`` is passed to ``fit`` only when given).

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples.
        y : array-like, default=None
            Targets, passed to ``fit`` when not ``None``.
        **fit_params : dict
            Passed to ``fit``.

        Returns
        -------
        list of Sample or SampleSet
            ``self.fit(X, ...).transform(X)``.
        """
        if y is None:
            return self.fit(X, **fit_params).transform(X)
        return self.fit(X, y, **fit_params).transform(X)


def rebind_main_classes(obj: Any, _seen: set[int] | None = None, _depth: int = 0) -> Any:
    """Give objects of by-value copies of ``__main__`` classes their live class back.

    A model pickled from a script or notebook carries the classes defined there *by value*
    (cloudpickle), so loading it makes new class objects, whose code no longer reads as the
    class the script defines: every file it then produces would look made by another
    configuration. The caller has checked that the model was made by the live class's code
    (its producer record), so the copy and the live class are the same code.

    Parameters
    ----------
    obj : object
        A loaded model (walked through its attributes, lists, tuples and dicts).

    Returns
    -------
    object
        ``obj``, changed in place.

    Examples
    --------
    >>> rebind_main_classes([1, {"a": 2}])
    [1, {'a': 2}]
    """
    seen = set() if _seen is None else _seen
    if id(obj) in seen or _depth > 50:
        return obj
    seen.add(id(obj))
    if isinstance(obj, (list, tuple)):
        for item in obj:
            rebind_main_classes(item, seen, _depth + 1)
        return obj
    if isinstance(obj, dict):
        for item in obj.values():
            rebind_main_classes(item, seen, _depth + 1)
        return obj
    cls = type(obj)
    if cls.__module__ == "__main__":
        live = getattr(sys.modules.get("__main__"), cls.__qualname__, None)
        if isinstance(live, type) and live is not cls and live.__qualname__ == cls.__qualname__:
            # A layout the live class cannot take (TypeError): the copy stays, files recompute.
            with contextlib.suppress(TypeError):
                obj.__class__ = live
    for value in getattr(obj, "__dict__", {}).values():
        rebind_main_classes(value, seen, _depth + 1)
    return obj
