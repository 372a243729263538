"""Lifecycle of the steps of a full dump: ``setup()`` on first use, ``teardown()`` before dumping.

:mod:`checkpoint_magic.savers.dump` loads a step that has a ``setup()`` method with its
first-use methods (:data:`FIRST_USE_METHODS`) shadowed on the instance by
:class:`_SetupOnFirstUse`; the first call removes the shadows, runs ``setup()`` and then
the method. A step torn down (``teardown()``) is shadowed again, so it sets itself up on
its next use. :func:`setup_pending` is public through :mod:`checkpoint_magic.savers.dump`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["FIRST_USE_METHODS", "setup_pending"]

# Log under the public module's name: these records belong to the dumps' log.
logger = logging.getLogger("checkpoint_magic.savers.dump")

#: Methods that count as the first use of a loaded step (the ones Pipeline & co. call).
FIRST_USE_METHODS = (
    "fit",
    "partial_fit",
    "fit_transform",
    "fit_predict",
    "transform",
    "inverse_transform",
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "score",
    "score_samples",
    "handle_fit",
    "handle_transform",
    "handle_fit_transform",
)
_hook_lock = threading.RLock()


class _SetupOnFirstUse:
    """Stands in for one method of a loaded step; its first call runs the step's ``setup()``."""

    __slots__ = ("method", "step")

    def __init__(self, step: Any, method: str):
        self.step = step
        self.method = method

    def __repr__(self) -> str:
        return f"<{type(self.step).__name__}.{self.method}: setup() runs on the first call>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        step = self.step
        with _hook_lock:
            if remove_hooks(step):
                logger.debug("setting up %s on first use (%s)", type(step).__name__, self.method)
                try:
                    step.setup()
                except BaseException:
                    install_hooks(step)
                    raise
        return getattr(step, self.method)(*args, **kwargs)


def _has_method(obj: Any, name: str) -> bool:
    if not callable(getattr(type(obj), name, None)):
        return False
    try:
        return hasattr(obj, name)  # sklearn's available_if checks run here
    except Exception:  # a failing availability check means: not available
        return False


def install_hooks(step: Any) -> bool:
    """Shadow the step's first-use methods so that ``setup()`` runs on the first call.

    Parameters
    ----------
    step : object
        A step with a ``setup()`` method; the shadows go into its instance ``__dict__``.

    Returns
    -------
    bool
        ``False`` when there is nothing to intercept (no ``__dict__`` or none of
        :data:`FIRST_USE_METHODS`); the caller then runs ``setup()`` itself.
    """
    state = getattr(step, "__dict__", None)
    if not isinstance(state, dict):
        return False
    names = [
        m
        for m in FIRST_USE_METHODS
        if isinstance(state.get(m), _SetupOnFirstUse) or _has_method(step, m)
    ]
    for name in names:
        if not isinstance(state.get(name), _SetupOnFirstUse):
            state[name] = _SetupOnFirstUse(step, name)
    return bool(names)


def setup_on_first_use(step: Any) -> None:
    """Have ``step.setup()`` run on its first use, or run it now if that use cannot be intercepted.

    Parameters
    ----------
    step : object
        A freshly loaded step with a ``setup()`` method.
    """
    if not install_hooks(step):
        step.setup()


def remove_hooks(step: Any) -> bool:
    """Remove pending first-use hooks, without running ``setup()``.

    Parameters
    ----------
    step : object
        Any step.

    Returns
    -------
    bool
        Whether there were hooks, i.e. ``setup()`` was still pending.
    """
    state = getattr(step, "__dict__", None)
    if not isinstance(state, dict):
        return False
    names = [k for k, v in state.items() if isinstance(v, _SetupOnFirstUse)]
    for name in names:
        del state[name]
    return bool(names)


def setup_pending(step: Any) -> bool:
    """Whether ``step`` was loaded (or torn down) and its ``setup()`` has not run since.

    Parameters
    ----------
    step : object
        Any object; one without first-use hooks is not pending.

    Returns
    -------
    bool
        ``True`` while the first-use hooks are installed.

    Examples
    --------
    >>> class S:
    ...     def setup(self): self.ready = True
    ...     def transform(self, x): return x
    >>> s = S(); setup_on_first_use(s); setup_pending(s)
    True
    >>> s.transform(1), s.ready, setup_pending(s)
    (1, True, False)
    """
    state = getattr(step, "__dict__", None)
    return isinstance(state, dict) and any(isinstance(v, _SetupOnFirstUse) for v in state.values())


def teardown_step(step: Any) -> None:
    """Tear a set-up step down; it sets itself up again on its next use.

    Parameters
    ----------
    step : object
        Any step; one whose setup is pending or that has no ``teardown()`` is left alone.
    """
    if setup_pending(step) or not callable(getattr(type(step), "teardown", None)):
        return
    step.teardown()
    if callable(getattr(type(step), "setup", None)):
        install_hooks(step)
