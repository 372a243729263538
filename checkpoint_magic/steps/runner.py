"""Step runs: a class of ``step_1 ... step_N`` methods whose outputs are stored and resumed.

Each ``(name, version, step)`` is its own store namespace (``"{name}@v{version}:step_3"``);
step keys and the latest-output pointers come from :mod:`checkpoint_magic.steps.records`.
Resuming loads the outputs of reused steps only when a later step needs them (a full hit
loads just the last output), yet records every reused step as used, so ``gc`` evicts whole
runs rather than their first steps.

Examples
--------
>>> import tempfile
>>> class Demo(StepCheckpoint):
...     def step_1(self, outputs):
...         return [1, 2, 3]
...     def step_2(self, outputs):
...         return sum(outputs["step_1"])
>>> folder = tempfile.mkdtemp()
>>> Demo(name="demo", checkpoint_folder=folder, version=1).run()
6
>>> again = Demo(name="demo", checkpoint_folder=folder, version=1)
>>> again.run(), again.last_run.reused
(6, ['step_1', 'step_2'])
>>> again.load_outputs()
{'step_1': [1, 2, 3], 'step_2': 6}
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core.checkpointer import Checkpointer
from ..exceptions import InvalidArgumentError
from ..store.core import Store, get_store
from ..ui.progress import progress_bar
from .records import (
    KIND,
    Plan,
    context_fp,
    entry_exists,
    hex_digest,
    latest_manifest,
    load_value,
    member_fp,
    point_latest,
    read_manifest,
    record_fp,
    write_pointer,
)

__all__ = ["Checkpoint", "RunSummary", "StepCheckpoint", "step_names"]

logger = logging.getLogger(__name__)

_STEP = re.compile(r"step_(\d+)")
_OWN_ATTRS = frozenset({"name", "checkpoint_folder", "version", "last_run"})


@dataclass
class RunSummary:
    """What the last :meth:`StepCheckpoint.run` did, step names in order.

    Parameters
    ----------
    reused : list of str
        Steps taken from the store because nothing they depend on changed.
    loaded : list of str
        Steps taken as stored because they come before ``start_from``.
    recomputed : list of str
        Steps before ``start_from`` that had no stored output, so ran.
    ran : list of str
        Steps executed (and stored), ``recomputed`` ones included.
    """

    reused: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    recomputed: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)


def step_names(cls: type) -> list[str]:
    """The step methods of ``cls`` in the order they run (numeric, not alphabetical).

    Parameters
    ----------
    cls : type
        A class with ``step_<number>`` methods (usually a :class:`StepCheckpoint` subclass).

    Returns
    -------
    list of str
        The step names, by step number; gaps are allowed.

    Raises
    ------
    InvalidArgumentError
        A ``step_*`` attribute that is not ``step_<number>`` or not a method, two names for
        one number, or no step at all.

    Examples
    --------
    >>> class P(StepCheckpoint):
    ...     def step_10(self, outputs): pass
    ...     def step_9(self, outputs): pass
    ...     def step_1(self, outputs): pass
    >>> step_names(P)
    ['step_1', 'step_9', 'step_10']
    """
    found: dict[int, str] = {}
    for attr in dir(cls):
        if not attr.startswith("step_"):
            continue
        match = _STEP.fullmatch(attr)
        if match is None:
            raise InvalidArgumentError(
                f"{cls.__name__}.{attr}: step methods are named step_<number> (step_1, step_2, ...); "
                f"rename {attr!r} (a helper can be called _{attr})"
            )
        if not callable(getattr(cls, attr)):
            raise InvalidArgumentError(
                f"{cls.__name__}.{attr} must be a method step_N(self, outputs)"
            )
        number = int(match.group(1))
        if number in found:
            raise InvalidArgumentError(
                f"{cls.__name__} has two steps numbered {number}: {found[number]} and {attr}; keep one"
            )
        found[number] = attr
    if not found:
        raise InvalidArgumentError(
            f"{cls.__name__} defines no steps: add methods step_1(self, outputs), step_2(self, outputs), ..."
        )
    return [found[n] for n in sorted(found)]


def _step_number(name: str) -> int:
    return int(name[len("step_") :])


# --------------------------------------------------------------------------- the runner


class StepCheckpoint:
    """Base class of step runs: subclass it and write ``step_1(self, outputs)``, ``step_2``...

    Parameters
    ----------
    name : str
        Names the run in the store (dslib used it as the file prefix).
    checkpoint_folder : str, os.PathLike or Store, optional
        The store directory; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``.
    version : int or str, default 1
        Each version has its own outputs; a new version starts from scratch.

    Attributes
    ----------
    last_run : RunSummary or None
        Which steps the last :meth:`run` reused, loaded, recomputed and ran.

    Raises
    ------
    InvalidArgumentError
        An empty ``name``, a ``version`` that is neither an int nor a non-empty string, or
        badly named steps (see :func:`step_names`).

    Notes
    -----
    Step *k*'s key covers the code of steps 1..*k* (each method's own normalized code and
    the user functions it calls), the code and values of the class's other members, the
    instance's public attributes (a new hyperparameter set in ``__init__`` reruns the
    steps; attributes starting with ``_`` do not count) and the stored outputs of the
    earlier steps. So editing ``step_7`` reruns steps 7 to *N*, and going back to older
    code is a hit again. A reused step is not run: steps must pass results through their
    return values, not through attributes set on ``self``.
    """

    def __init__(
        self,
        name: str,
        checkpoint_folder: str | os.PathLike[str] | Store | None = None,
        version: int | str = 1,
    ):
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError(f"name must be a non-empty string, not {name!r}")
        if isinstance(version, bool) or not isinstance(version, (int, str)) or version == "":
            raise InvalidArgumentError(
                f"version must be an int or a non-empty string, not {version!r}"
            )
        self.name = name
        self.checkpoint_folder = checkpoint_folder
        self.version = version
        self.last_run: RunSummary | None = None
        step_names(type(self))  # fail early on badly named steps

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, checkpoint_folder={self.checkpoint_folder!r}, "
            f"version={self.version!r})"
        )

    # -- names and store ---------------------------------------------------------------
    def namespace(self, step: str) -> str:
        """The store namespace of one step's outputs: ``"{name}@v{version}:{step}"``.

        Parameters
        ----------
        step : str
            A step name, e.g. ``"step_3"``.

        Returns
        -------
        str
            The namespace; different versions never share one.

        Examples
        --------
        >>> class Run(StepCheckpoint):
        ...     def step_1(self, outputs): ...
        >>> Run(name="train", version=2).namespace("step_1")
        'train@v2:step_1'
        """
        return f"{self.name}@v{self.version}:{step}"

    @property
    def store(self) -> Store:
        """The store the outputs live in (resolved when used)."""
        return get_store(self.checkpoint_folder)

    def _checkpointer(self, store: Store, step: str) -> Checkpointer:
        return Checkpointer(kind=KIND, namespace=self.namespace(step), store=store)

    def load_outputs(self) -> dict[str, Any]:
        """The latest stored output of every step, by step name (steps never stored are absent).

        "Latest" is what the step's pointer names (the output of the last run, whatever
        code produced it); an output that cannot be loaded is left out with a
        :class:`~checkpoint_magic.exceptions.CorruptEntryWarning`.

        Returns
        -------
        dict of str to object
            The outputs, in step order.

        Examples
        --------
        >>> import tempfile
        >>> class One(StepCheckpoint):
        ...     def step_1(self, outputs):
        ...         return "a"
        >>> run = One(name="one", checkpoint_folder=tempfile.mkdtemp())
        >>> run.load_outputs()
        {}
        >>> run.run()
        'a'
        >>> run.load_outputs()
        {'step_1': 'a'}
        """
        store = self.store
        outputs: dict[str, Any] = {}
        for step in step_names(type(self)):
            manifest = latest_manifest(store, self.namespace(step), step)
            if manifest is None:
                logger.info("%s: nothing stored", self.namespace(step))
                continue
            ok, value = load_value(store, self.namespace(step), step, manifest)
            if ok:
                outputs[step] = value
        return outputs

    # -- keys ----------------------------------------------------------------------------
    def _instance_fp(self) -> str:
        from ..fingerprint.values import fingerprint

        state = {
            k: v for k, v in vars(self).items() if k not in _OWN_ATTRS and not k.startswith("_")
        }
        return fingerprint(state, name=f"{type(self).__name__} attributes")

    def _plans(self, store: Store, steps: list[str]) -> Callable[[int, dict[str, str]], Plan]:
        """Return ``plan(i, output_fps)``: the checkpointer, code and inputs of step ``i``."""
        cls = type(self)
        module = cls.__module__
        base = [
            hex_digest(
                "steps", str(self.version), context_fp(cls, StepCheckpoint), self._instance_fp()
            )
        ]
        own: list[str] = []
        for step in steps:
            fn = getattr(cls, step)
            fn = getattr(fn, "__func__", fn)
            own.append(member_fp(fn) or "none")

        def plan(i: int, output_fps: dict[str, str]) -> Plan:
            code_fp = hex_digest(*base, *(f"{steps[j]}={own[j]}" for j in range(i + 1)))
            inputs = {steps[j]: output_fps[steps[j]] for j in range(i)}
            parts = {f"{module}.{cls.__qualname__}.{steps[j]}": own[j] for j in range(i + 1)}
            parts[f"{module}.{cls.__qualname__}.<members>"] = base[0]
            return Plan(steps[i], self._checkpointer(store, steps[i]), code_fp, inputs, parts)

        return plan

    # -- running ------------------------------------------------------------------------
    def _execute(
        self, store: Store, plan: Plan, outputs: dict[str, Any], output_fps: dict[str, str]
    ) -> None:
        """Run one step, store its output and point the step's pointer at it."""
        step = plan.name
        output_fps.pop(step, None)
        logger.info("%s v%s: running %s", self.name, self.version, step)
        start = time.perf_counter()
        value = getattr(self, step)(outputs)
        duration = time.perf_counter() - start
        outputs[step] = value
        cp = plan.checkpointer
        meta = {
            "step": step,
            "number": _step_number(step),
            "run": self.name,
            "version": str(self.version),
            "class": f"{type(self).__module__}.{type(self).__qualname__}",
        }
        if not cp.save(
            plan.code_fp,
            plan.input_fps,
            {step: value},
            duration=duration,
            meta=meta,
            code_parts=plan.parts,
        ):
            return  # StoreWriteWarning already given; later steps run uncached
        manifest = read_manifest(store, cp.namespace, plan.key)
        if manifest is None:
            return
        output_fps[step] = record_fp(manifest["outputs"][step])
        write_pointer(store, self.namespace(step), plan.key)

    def run(self, start_from: int | None = None, *, progress: bool | None = None) -> Any:
        """Run the steps in numeric order, reusing stored outputs; return the last step's output.

        Parameters
        ----------
        start_from : int, optional
            Without it, resume from the first step whose code (or any earlier step's code
            or output) changed. With it, load the latest stored outputs of the steps
            numbered below ``start_from`` (recomputing any that is missing) and run the
            others unconditionally, storing them.
        progress : bool, optional
            Show a progress bar over the steps that run (``tqdm.auto``). By default it is shown
            in a notebook or a terminal once the run lasts a while; ``CHECKPOINT_MAGIC_PROGRESS``
            (``0``/``1``) forces it. See :func:`checkpoint_magic.ui.progress.progress_bar`.

        Returns
        -------
        object
            The output of the last step. :attr:`last_run` says what was reused and run.

        Raises
        ------
        InvalidArgumentError
            ``start_from`` is not an int, or not between the first and the last step's numbers.

        Examples
        --------
        >>> import tempfile
        >>> class Two(StepCheckpoint):
        ...     def step_1(self, outputs):
        ...         return 2
        ...     def step_2(self, outputs):
        ...         return outputs["step_1"] * 10
        >>> run = Two(name="two", checkpoint_folder=tempfile.mkdtemp())
        >>> run.run(), run.run(start_from=2)
        (20, 20)
        >>> run.last_run
        RunSummary(reused=[], loaded=['step_1'], recomputed=[], ran=['step_2'])
        """
        steps = step_names(type(self))
        if start_from is not None:
            if isinstance(start_from, bool) or not isinstance(start_from, int):
                raise InvalidArgumentError(
                    f"start_from must be a step number (an int), not {start_from!r}"
                )
            first, last = _step_number(steps[0]), _step_number(steps[-1])
            if not first <= start_from <= last:
                where = "after the last step" if start_from > last else "before the first step"
                raise InvalidArgumentError(
                    f"start_from={start_from} is {where}: give a step number from {first} to "
                    f"{last} (the steps are {', '.join(steps)})"
                )
        store = self.store
        self.last_run = summary = RunSummary()
        plan = self._plans(store, steps)
        outputs: dict[str, Any] = {}
        output_fps: dict[str, str] = {}
        with progress_bar(len(steps), f"{self.name} v{self.version}", progress, unit="step") as bar:
            if start_from is None:
                self._resume(store, steps, plan, outputs, output_fps, summary, bar)
            else:
                self._start_from(store, steps, start_from, plan, outputs, output_fps, summary, bar)
            bar.update(len(steps) - bar.n)
        logger.info(
            "%s v%s: reused %s, loaded %s, recomputed %s, ran %s",
            self.name,
            self.version,
            summary.reused or "nothing",
            summary.loaded or "nothing",
            summary.recomputed or "nothing",
            summary.ran or "nothing",
        )
        return outputs[steps[-1]]

    def _start_from(
        self,
        store: Store,
        steps: list[str],
        start_from: int,
        plan: Callable[..., Plan],
        outputs: dict[str, Any],
        output_fps: dict[str, str],
        summary: RunSummary,
        bar: Any,
    ) -> None:
        uncached = False
        for i, step in enumerate(steps):
            if _step_number(step) < start_from:
                manifest = latest_manifest(store, self.namespace(step), step)
                if manifest is not None:
                    ok, value = load_value(store, self.namespace(step), step, manifest)
                    if ok:
                        outputs[step] = value
                        output_fps[step] = record_fp(manifest["outputs"][step])
                        summary.loaded.append(step)
                        logger.debug("%s: loaded the stored output", self.namespace(step))
                        continue
                logger.info(
                    "%s v%s: no stored output of %s; recomputing it", self.name, self.version, step
                )
                summary.recomputed.append(step)
            else:
                summary.ran.append(step)
            uncached = self._run_one(store, i, step, plan, outputs, output_fps, uncached)
            bar.update(1)

    def _run_one(
        self,
        store: Store,
        i: int,
        step: str,
        plan: Callable[..., Plan],
        outputs: dict[str, Any],
        output_fps: dict[str, str],
        uncached: bool,
    ) -> bool:
        """Run step ``i``, stored if its inputs are known; say whether later steps are uncached."""
        if not uncached and all(s in output_fps for s in outputs):
            self._execute(store, plan(i, output_fps), outputs, output_fps)
            return step not in output_fps
        if not uncached:
            logger.warning(
                "%s v%s: an earlier output could not be stored; %s and the steps after it "
                "run uncached",
                self.name,
                self.version,
                step,
            )
        logger.info("%s v%s: running %s (uncached)", self.name, self.version, step)
        outputs[step] = getattr(self, step)(outputs)
        return True

    def _resume(
        self,
        store: Store,
        steps: list[str],
        plan: Callable[..., Plan],
        outputs: dict[str, Any],
        output_fps: dict[str, str],
        summary: RunSummary,
        bar: Any,
    ) -> None:
        pending: list[
            tuple[int, Plan, dict[str, Any]]
        ] = []  # hits whose outputs are not loaded yet
        uncached = False
        i = 0
        while True:
            restart: int | None
            if i >= len(steps):
                if not pending:
                    return
                last_i, _, last_manifest = pending[-1]
                ok, value = load_value(
                    store, self.namespace(steps[last_i]), steps[last_i], last_manifest
                )
                if ok:  # every remaining step was a hit: only the last output is needed
                    outputs[steps[last_i]] = value
                    summary.reused.extend(p.name for _, p, _ in pending)
                    for _, p, _ in pending:
                        point_latest(store, self.namespace(p.name), p.key)
                    for _, p, _ in pending[:-1]:  # used, though not loaded: keep them from gc
                        store.record_use(self.namespace(p.name), p.key)
                    return
                restart = self._materialize(
                    store, pending, outputs, output_fps, summary, force_last=True
                )
                pending = []
                if restart is None:
                    return
                self._forget(steps, restart, output_fps)
                i = restart
                continue
            step = steps[i]
            if not uncached:
                p = plan(i, output_fps)
                manifest = read_manifest(store, p.checkpointer.namespace, p.key)
                if manifest is not None and step in manifest.get("outputs", {}):
                    output_fps[step] = record_fp(manifest["outputs"][step])
                    pending.append((i, p, manifest))
                    i += 1
                    continue
                restart = self._materialize(store, pending, outputs, output_fps, summary)
                pending = []
                if restart is not None:
                    self._forget(steps, restart, output_fps)
                    i = restart
                    continue
                if not entry_exists(store, p.checkpointer.namespace, p.key):
                    p.checkpointer.load(p.code_fp, p.input_fps, code_parts=p.parts)  # logs why
            summary.ran.append(step)
            uncached = self._run_one(store, i, step, plan, outputs, output_fps, uncached)
            bar.update(1)
            i += 1

    @staticmethod
    def _forget(steps: list[str], start: int, output_fps: dict[str, str]) -> None:
        for step in steps[start:]:
            output_fps.pop(step, None)

    def _materialize(
        self,
        store: Store,
        pending: list[tuple[int, Plan, dict[str, Any]]],
        outputs: dict[str, Any],
        output_fps: dict[str, str],
        summary: RunSummary,
        force_last: bool = False,
    ) -> int | None:
        """Load the outputs of ``pending`` hits; an unreadable one is recomputed.

        Returns the index to resume planning from when a recomputed output differs from the
        stored one (the keys planned after it are then stale), else ``None``.
        """
        for n, (i, p, manifest) in enumerate(pending):
            step = p.name
            is_last = force_last and n == len(pending) - 1
            ok, value = (
                (False, None)
                if is_last
                else load_value(store, self.namespace(step), step, manifest)
            )
            if ok:
                outputs[step] = value
                summary.reused.append(step)
                point_latest(store, self.namespace(p.name), p.key)
                continue
            recorded = output_fps.get(step)
            summary.ran.append(step)
            self._execute(store, p, outputs, output_fps)
            if output_fps.get(step) != recorded and n < len(pending) - 1:
                return i + 1
        return None


#: dslib's name for the base class.
Checkpoint = StepCheckpoint
