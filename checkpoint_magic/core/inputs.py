"""What counts as an input beyond the arguments: data globals, files by content, mutated arguments.

Shared by ``@checkpoint`` and ``InlineCheckpoint`` (and the rules ``%%checkpoint`` follows):

- **Data globals** a function or block reads (directly or through its user helpers) are inputs
  by value, named ``global:NAME``. Modules, loggers, locks and values that cannot be
  fingerprinted are not data inputs. A global the computation itself changes while it runs
  (a memo dict, a counter) is its *state*: it is left out from then on (one INFO note), so
  that no call can miss forever.
- **Files**: a path (``str``/``os.PathLike``) argument or watched value, or a string constant
  in the checkpointed code, that names an existing file or folder counts by content, named
  ``file:PATH`` (see :mod:`checkpoint_magic.fingerprint.files`). A file the computation
  creates or changes while it runs is an *output*: it is left out from then on, and the result
  is filed under the key without it, so writing it never makes the next call miss.
- **Mutated arguments**: after a miss the arguments are fingerprinted again; those the
  computation changed are stored with the result and their state is copied back into the
  caller's objects on a hit (:func:`restore_into`), or a warning says it cannot be.

What was learned about a namespace (its state globals and output files) is kept in a small
``inputs.json`` next to its last-miss record.
"""

from __future__ import annotations

import copyreg
import json
import logging
import os
import tempfile
import threading
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..fingerprint.code import PATHS_KEY, code_inputs, is_user_code
from ..fingerprint.files import content_digest, path_candidate, signature
from ..fingerprint.values import QuietFingerprinter
from ..store.core import Store
from ..store.layout import INPUT_MEMORY

__all__ = [
    "NOT_DATA",
    "FileContent",
    "FileInputs",
    "InputMemory",
    "file_inputs",
    "global_inputs",
    "reached_globals",
    "restorable",
    "restore_into",
    "written_files",
]

logger = logging.getLogger(__name__)

#: Values that are never data inputs (they carry no data the result depends on).
NOT_DATA: tuple[type, ...] = (
    types.ModuleType,
    logging.Logger,
    logging.LoggerAdapter,
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Event,
    threading.Thread,
)
_MEMORY: dict[tuple[str, str], InputMemory] = {}
_MEMORY_LOCK = threading.Lock()


@dataclass
class InputMemory:
    """What a namespace's earlier runs taught: globals that are state, files that are outputs.

    Attributes
    ----------
    state : set of str
        Globals the computation changes while it runs (left out of its inputs).
    outputs : set of str
        Files it writes (never counted as its inputs).
    store : Store or None
        Where :meth:`learn` saves them; None keeps them in memory only.
    namespace : str
        The function, block or cell they belong to.
    """

    state: set[str] = field(default_factory=set)
    outputs: set[str] = field(default_factory=set)
    store: Store | None = None
    namespace: str = ""

    @classmethod
    def of(cls, store: Store, namespace: str) -> InputMemory:
        """The memory of ``namespace`` in ``store`` (read once per process).

        Parameters
        ----------
        store : Store
            The store whose namespace record (``state/<namespace>/inputs.json``) holds it.
        namespace : str
            The function, block or cell.

        Returns
        -------
        InputMemory
            Shared by every caller of this namespace in this process.
        """
        key = (store.location, namespace)
        with _MEMORY_LOCK:
            found = _MEMORY.get(key)
            if found is None:
                found = cls(store=store, namespace=namespace)
                try:
                    raw = store.read_record(namespace, INPUT_MEMORY)
                    data = json.loads(raw) if raw else {}
                    found.state = set(data.get("state", ()))
                    found.outputs = set(data.get("outputs", ()))
                except (OSError, ValueError, AttributeError, TypeError) as exc:
                    logger.debug("no input memory for %s (%s)", namespace, exc)
                _MEMORY[key] = found
        return found

    def learn(self, state: Iterable[str] = (), outputs: Iterable[str] = ()) -> None:
        """Add state globals and output files, and save them (best effort).

        Parameters
        ----------
        state : iterable of str
            Globals the computation changes while it runs (left out of its inputs).
        outputs : iterable of str
            Files it writes (never counted as its inputs).
        """
        self.state.update(state)
        self.outputs.update(outputs)
        if self.store is None:
            return
        body = json.dumps({"state": sorted(self.state), "outputs": sorted(self.outputs)})
        try:
            self.store.write_record(self.namespace, INPUT_MEMORY, body.encode("utf-8"))
        except OSError as exc:
            logger.debug("could not save the input memory of %s: %s", self.namespace, exc)


def global_inputs(
    values: Mapping[str, Any], memory: InputMemory, skip: Iterable[str] = ()
) -> dict[str, str]:
    """Return ``global:LABEL -> fingerprint`` of the data globals among ``values`` (label -> value).

    The data globals read by code a global holds (``PIPE = FunctionTransformer(helper)``,
    ``helper`` reading ``CONFIG``) are added, transitively. State globals (``memory.state``),
    names in ``skip`` (a label such as ``module.NAME``, or the bare ``NAME``), modules,
    loggers, locks and values that cannot be fingerprinted (logged at DEBUG) are left out; a
    value with a part that cannot (``CFG.lock``) counts, that part by its type.

    Parameters
    ----------
    values : Mapping of str to object
        The data globals the code reads, by label.
    memory : InputMemory
        What earlier runs of the namespace taught.
    skip : Iterable of str, default ()
        Labels or bare names to leave out.

    Returns
    -------
    dict of str to str
        ``global:LABEL`` to fingerprint.

    Examples
    --------
    >>> sorted(global_inputs({"A": [1], "m.B": 2, "C": 3}, InputMemory(), skip=["B"]))
    ['global:A', 'global:C']
    """
    out = {}
    skipped = set(skip)
    pending = list(values.items())
    labels = set(values)
    for label, value in pending:  # grows: the globals read by code a global holds
        if label in memory.state or isinstance(value, NOT_DATA):
            continue
        if label in skipped or label.rpartition(".")[2] in skipped:
            continue
        quiet = QuietFingerprinter()  # same digest as Fingerprinter, but no warning
        digest = quiet.fingerprint(value, name=label)
        if quiet.problems:
            if any(path == label for path, _, _ in quiet.problems):
                logger.debug("global %s cannot be fingerprinted: not an input", label)
                continue
            # A part of it cannot (CFG.lock): that part counts by its type, the rest by value.
            logger.debug("global %s: %s count by their type", label, quiet.problems)
        out["global:" + label] = digest
        if quiet.memo:  # BOX = Box(helper), helper reading CONFIG: CONFIG is an input too
            held = reached_globals(x for x, _ in quiet.memo.values())
            held.pop(PATHS_KEY, None)
            pending.extend((k, v) for k, v in held.items() if k not in labels)
            labels.update(held)
    return out


#: What a value walk may meet as code (see :func:`reached_globals`).
_CODE_TYPES = (types.FunctionType, types.MethodType, type)


def reached_globals(reached: Iterable[Any]) -> dict[str, Any]:
    r"""Return the data globals read by the user code met while fingerprinting the inputs.

    A function passed as an argument (``f(helper, x)``), a method or the class of an object
    passed in (``f(model)`` calling ``model.run()``) count by their code inside the input's
    fingerprint; the data globals *they* read (``CONFIG``) are inputs too, as if the
    checkpointed code read them itself.

    Parameters
    ----------
    reached : Iterable of object
        The values memoised while the inputs were walked (see
        :meth:`~checkpoint_magic.core.checkpointer.Checkpointer.fingerprint_inputs`);
        anything that is not a user function, method or class is skipped.

    Returns
    -------
    dict of str to object
        Label (``NAME``, ``module.NAME``) to current value, as ``code_inputs`` gives them
        (the path-shaped constants of that code under ``PATHS_KEY``).

    Raises
    ------
    FingerprintError
        When the code of one of them cannot be fingerprinted.

    Examples
    --------
    >>> ns = {"CONFIG": [2]}
    >>> exec("def helper(x):\n    return x * CONFIG[0]\n", ns)
    >>> reached_globals([ns["helper"], 3, "text"])
    {'CONFIG': [2]}
    """
    out: dict[str, Any] = {}
    paths: dict[str, None] = {}
    for value in reached:
        if isinstance(value, _CODE_TYPES) and is_user_code(value):
            data = code_inputs(value, checked=True)[1]  # the walk just fingerprinted it
            paths.update(dict.fromkeys(data.pop(PATHS_KEY, ())))
            out.update(data)
    if paths:
        out[PATHS_KEY] = tuple(paths)
    return out


def file_inputs(
    candidates: Mapping[str, Any], memory: InputMemory
) -> tuple[dict[str, str], dict[str, tuple[int, int, int, int] | None]]:
    """Return ``file:LABEL -> content digest`` of the candidates naming existing files or folders.

    A folder that holds the working folder, the temporary folder or the store
    (``Path(__file__).parent``, ``"/tmp"``) is left out: it holds the store, which every miss
    changes, or what every process writes.

    Also returns every path-like candidate's signature (None: absent), to tell after a run
    which files the computation wrote. Output files (``memory.outputs``) are left out.

    Parameters
    ----------
    candidates : Mapping of str to object
        Label (the path as written) to value (a path, or anything else, which is skipped).
    memory : InputMemory
        What earlier runs of the namespace taught.

    Returns
    -------
    fps : dict of str to str
        ``file:LABEL`` to content digest, for the paths that exist.
    sigs : dict of str to (tuple of four int, or None)
        Absolute path to its signature before the run (None: absent).

    Examples
    --------
    >>> file_inputs({"surely/missing.csv": "surely/missing.csv", "n": 3}, InputMemory())[0]
    {}
    """
    fps: dict[str, str] = {}
    sigs: dict[str, tuple[int, int, int, int] | None] = {}
    around: list[str] | None = None
    for label, value in candidates.items():
        path = path_candidate(value)
        if path is None or path in memory.outputs:
            continue
        sigs[path] = signature(path)
        if sigs[path] is not None:
            if around is None:
                around = _work_folders(memory)
            prefix = path.rstrip(os.sep) + os.sep
            if any(p == path or p.startswith(prefix) for p in around):
                # ROOT = Path(__file__).parent: it holds the store, which every miss
                # changes, and all the project holds (.git, .venv...): never an input.
                logger.debug("%s holds the working folder or the store: not an input", path)
                continue
            digest = content_digest(path)
            if digest is not None:
                fps["file:" + label] = digest
    return fps, sigs


def _work_folders(memory: InputMemory) -> list[str]:
    """The working folder, the temporary folder (scratch space every process writes) and the
    local store: a folder holding any of them is too broad to be an input."""
    found = [os.getcwd(), tempfile.gettempdir()]
    if memory.store is not None and memory.store.is_local:
        found.append(os.path.abspath(memory.store.location))
    return found


def written_files(sigs: Mapping[str, tuple[int, int, int, int] | None]) -> set[str]:
    """Return the paths among ``sigs`` whose signature changed since (created, written or deleted).

    Parameters
    ----------
    sigs : Mapping of str to (tuple of four int, or None)
        Absolute path to its signature before the run, as :func:`file_inputs` returns.

    Returns
    -------
    set of str
        The paths written, created or deleted since.

    Examples
    --------
    >>> written_files({"surely/missing.csv": None})
    set()
    """
    return {path for path, before in sigs.items() if signature(path) != before}


@dataclass(frozen=True)
class FileContent:
    """A file or folder as an input value: only its content digest enters a fingerprint.

    Attributes
    ----------
    digest : str
        The content digest of the file or folder (see
        :func:`checkpoint_magic.fingerprint.files.content_digest`).
    """

    digest: str


class FileInputs:
    """The files a computation names, as input values, and how to forget the ones it writes.

    Parameters
    ----------
    candidates : mapping
        Label (the path as written) -> value (a path, or anything else, which is skipped).
    memory : InputMemory
        What earlier runs of the namespace taught (its output files are left out).

    Examples
    --------
    >>> files = FileInputs({"surely/missing.csv": "surely/missing.csv"}, InputMemory())
    >>> files.values
    {}
    """

    def __init__(self, candidates: Mapping[str, Any], memory: InputMemory):
        self.memory = memory
        fps, self.sigs = file_inputs(candidates, memory)
        self.values = {label: FileContent(digest) for label, digest in fps.items()}
        self.labels = {}
        for label, value in candidates.items():
            path = path_candidate(value)
            if path is not None:
                self.labels[path] = "file:" + label

    def forget_written(self, input_fps: dict[str, str]) -> None:
        """After a run: files it created or changed are outputs; drop them from ``input_fps``.

        They are also remembered as outputs of the namespace (see :meth:`InputMemory.learn`).

        Parameters
        ----------
        input_fps : dict of str to str
            The input fingerprints of the run, by name; modified in place.
        """
        written = written_files(self.sigs)
        if written:
            for path in written:
                input_fps.pop(self.labels.get(path, ""), None)
            self.memory.learn(outputs=written)


# -------------------------------------------------------------------------- mutated arguments
def restorable(obj: Any) -> bool:
    """Whether a stored state can be copied back into ``obj`` in place (see :func:`restore_into`).

    Parameters
    ----------
    obj : object
        A mutated argument.

    Returns
    -------
    bool
        True for lists, dicts, sets, bytearrays, writeable arrays and objects with state.

    Examples
    --------
    >>> restorable([1]), restorable((1,))
    (True, False)
    """
    import numpy as np

    if isinstance(obj, (list, dict, set, bytearray, np.ndarray)):
        return not isinstance(obj, np.ndarray) or obj.flags.writeable
    if isinstance(obj, (tuple, frozenset, str, bytes, int, float, complex, type(None))):
        return False
    return (
        hasattr(obj, "__dict__")
        or bool(copyreg._slotnames(type(obj)))  # type: ignore[attr-defined]
        or hasattr(type(obj), "__setstate__")
    )


def restore_into(target: Any, stored: Any) -> bool:
    """Copy the state of ``stored`` into ``target`` in place; False if that is impossible.

    Lists, dicts, sets and bytearrays are refilled; an ndarray is assigned element-wise
    (same shape and dtype); any other object gets the stored ``__dict__`` (a DataFrame, an
    estimator) or ``__setstate__`` of the stored state.

    Parameters
    ----------
    target : object
        The caller's object, changed in place.
    stored : object
        The stored state, of the same type.

    Returns
    -------
    bool
        Whether ``target`` now has the state of ``stored``.

    Examples
    --------
    >>> a = [1]
    >>> restore_into(a, [1, 2]), a
    (True, [1, 2])
    """
    import numpy as np

    if type(target) is not type(stored):
        return False
    if isinstance(target, list):
        target[:] = stored
    elif isinstance(target, (dict, set)):
        target.clear()
        target.update(stored)
    elif isinstance(target, bytearray):
        target[:] = stored
    elif isinstance(target, np.ndarray):
        if target.shape != stored.shape or target.dtype != stored.dtype:
            return False
        target[...] = stored
    elif hasattr(type(target), "__setstate__") and hasattr(stored, "__getstate__"):
        target.__setstate__(stored.__getstate__())
    elif hasattr(target, "__dict__") or copyreg._slotnames(type(target)):  # type: ignore[attr-defined]
        if hasattr(target, "__dict__"):
            target.__dict__.clear()
            target.__dict__.update(stored.__dict__)
        for name in copyreg._slotnames(type(target)):  # type: ignore[attr-defined]
            if hasattr(stored, name):
                setattr(target, name, getattr(stored, name))
            elif hasattr(target, name):
                delattr(target, name)
    else:
        return False
    return True
