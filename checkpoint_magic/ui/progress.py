"""Progress bars for long sample-wise runs (``tqdm.auto``: a widget in Jupyter).

:func:`progress_bar` is the one place that decides whether a bar is shown:

1. an explicit ``progress=True`` / ``False`` (the parameter of ``wrap`` and the wrappers);
2. otherwise the environment variable ``CHECKPOINT_MAGIC_PROGRESS`` (``1`` on, ``0`` off);
3. otherwise automatically: in a Jupyter kernel or when standard error is a terminal,
   and then only for runs that last more than :data:`AUTO_DELAY` seconds (tqdm's
   ``delay``); never when the output is not a terminal (logs, CI).

It is public and small so that other front ends (the step runner) can use it as well.
:func:`compute_with_progress` computes a Dask collection with a bar over its tasks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["AUTO_DELAY", "ENV_VAR", "compute_with_progress", "progress_bar", "progress_enabled"]

logger = logging.getLogger(__name__)

#: Environment variable that forces bars on (``1``) or off (``0``).
ENV_VAR = "CHECKPOINT_MAGIC_PROGRESS"
#: In automatic mode, a bar appears only after this many seconds.
AUTO_DELAY = 2.0


class _NoBar:
    """What :func:`progress_bar` yields when no bar is shown: the same methods, doing nothing."""

    n = 0

    def update(self, n: int = 1) -> None:
        """Do nothing."""

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        """Do nothing."""

    def close(self) -> None:
        """Do nothing."""


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ip = shell.get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def progress_enabled(progress: bool | None = None) -> tuple[bool, float]:
    """Decide whether to show a bar, and after how many seconds.

    Parameters
    ----------
    progress
        ``True`` or ``False`` to decide; ``None`` for the environment variable, then
        the automatic choice.

    Returns
    -------
    tuple of (bool, float)
        Whether a bar may be shown, and tqdm's ``delay`` (0 when forced on).

    Examples
    --------
    >>> progress_enabled(True), progress_enabled(False)
    ((True, 0.0), (False, 0.0))
    """
    if progress is not None:
        return bool(progress), 0.0
    forced = os.environ.get(ENV_VAR, "").strip().lower()
    if forced in ("1", "true", "yes", "on"):
        return True, 0.0
    if forced in ("0", "false", "no", "off"):
        return False, 0.0
    if _in_notebook():
        return True, AUTO_DELAY
    stream = sys.stderr
    try:
        return bool(stream is not None and stream.isatty()), AUTO_DELAY
    except (AttributeError, ValueError):  # closed or unusual streams
        return False, 0.0


@contextmanager
def progress_bar(
    total: int | None, desc: str, progress: bool | None = None, unit: str = "sample"
) -> Iterator[Any]:
    """A tqdm bar (or a do-nothing stand-in) for a run of ``total`` steps.

    Parameters
    ----------
    total
        Number of steps (``None`` if unknown).
    desc
        What runs, shown left of the bar.
    progress
        See :func:`progress_enabled`.
    unit
        Name of one step.

    Yields
    ------
    object
        Something with ``update(n)``, ``set_postfix_str(s)`` and ``close()``.

    Examples
    --------
    >>> with progress_bar(3, "demo", progress=False) as bar:
    ...     bar.update(3)
    """
    show, delay = progress_enabled(progress)
    if not show or total == 0:
        yield _NoBar()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        logger.debug("tqdm is not installed; no progress bar")
        yield _NoBar()
        return
    bar = tqdm(total=total, desc=desc, unit=unit, delay=delay, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


def _annotated(collection: Any) -> bool:
    graph = collection.__dask_graph__()
    layers = getattr(graph, "layers", None) or {}
    return any(getattr(layer, "annotations", None) for layer in layers.values())


def compute_with_progress(collection: Any, progress: bool | None = None, desc: str = "") -> Any:
    """Compute a Dask collection (a bag, a delayed value) with a bar over its tasks.

    With a ``dask.distributed`` client active the bar follows the futures as they finish;
    otherwise a local-scheduler callback counts the finished tasks. A graph with
    annotated layers (the resource tags of
    :class:`~checkpoint_magic.pipelines.DaskWrapper`) is computed without low-level
    optimization, which would drop the annotations.

    Parameters
    ----------
    collection
        Anything with ``.compute()`` built by Dask.
    progress
        See :func:`progress_enabled`.
    desc
        What runs, shown left of the bar.

    Returns
    -------
    object
        What ``collection.compute()`` returns.
    """
    options = {"optimize_graph": False} if _annotated(collection) else {}
    show, _ = progress_enabled(progress)
    if not show:
        return collection.compute(**options)

    try:
        from distributed import get_client
    except ImportError:  # pragma: no cover - distributed is optional
        client = None
    else:
        try:
            client = get_client()
        except ValueError:  # no client: the local scheduler
            client = None
    if client is not None:
        from distributed import as_completed, futures_of

        persisted = client.persist(collection, **options)
        futures = futures_of(persisted)
        with progress_bar(len(futures), desc or "dask", progress, unit="partition") as bar:
            for _ in as_completed(futures):
                bar.update(1)
        return persisted.compute()
    from dask.callbacks import Callback

    with progress_bar(None, desc or "dask", progress, unit="task") as bar:

        class _Count(Callback):
            def _start_state(self, dsk: Any, state: Any) -> None:
                bar.total = len(dsk)  # the tasks that run, after optimization

            def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
                bar.update(1)

            def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
                if not errored and bar.total is not None and bar.n < bar.total:
                    bar.update(bar.total - bar.n)  # tasks some schedulers do not report

        with _Count():
            return collection.compute(**options)
