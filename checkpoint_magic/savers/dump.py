"""Full dumps: a fitted pipeline (any estimator tree) saved as a directory, one saver per step.

:func:`dump` walks the tree (pipeline, union and column members, estimator parameters and
fitted attributes that are estimators) and saves each step into its own directory through
:func:`~checkpoint_magic.savers.saver_for`; a container is pickled with references to its
steps, and an inner object that a non-generic saver claims becomes a step too::

    model/
      checkpoint_magic_dump.json   format, versions, the root and every step: type, saver, label
      steps/000-Pipeline/estimator.pkl
      steps/001-scale-StandardScaler/estimator.pkl
      savers/<step>.pkl            a saver that is not built in, pickled by value

Setup on first use and teardown of the steps: :mod:`checkpoint_magic.savers.lifecycle`.

Examples
--------
>>> import tempfile, numpy as np
>>> from sklearn.pipeline import Pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from sklearn.linear_model import LinearRegression
>>> X, y = np.arange(8.0).reshape(4, 2), np.arange(4.0)
>>> pipe = Pipeline([("scale", StandardScaler()), ("model", LinearRegression())]).fit(X, y)
>>> path = dump(pipe, tempfile.mkdtemp() + "/model")
>>> np.allclose(load(path).predict(X), pipe.predict(X))
True
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import re
import shutil
import sys
import time
import types
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..exceptions import CheckpointError, InvalidArgumentError, StoreFormatError
from .base import class_path, saver_name
from .builtin import PickleSaver, StripUnpicklableSaver
from .lifecycle import (
    FIRST_USE_METHODS,
    install_hooks,
    remove_hooks,
    setup_on_first_use,
    setup_pending,
    teardown_step,
)
from .registry import find_saver, is_fallback_saver, saver_for

__all__ = [
    "DUMP_FORMAT",
    "FIRST_USE_METHODS",
    "INDEX_NAME",
    "dump",
    "load",
    "loaded",
    "setup_pending",
    "teardown",
]

logger = logging.getLogger(__name__)

DUMP_FORMAT = 1
INDEX_NAME = "checkpoint_magic_dump.json"

_PLAIN = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    tuple,
    list,
    dict,
    set,
    frozenset,
    np.ndarray,
    np.generic,
    np.dtype,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.ModuleType,
    types.MethodType,
)


# --------------------------------------------------------------------------- the tree


def _is_step(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return False
    cls = type(value)
    return any(callable(getattr(cls, m, None)) for m in ("fit", "transform", "predict", "setup"))


def _structural_children(obj: Any) -> list[tuple[str, Any]]:
    """The steps directly inside ``obj``: pipeline steps, union/column members, estimator params."""
    state = getattr(obj, "__dict__", None)
    if not isinstance(state, dict):
        return []
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def add(label: str, child: Any) -> None:
        if _is_step(child) and id(child) not in seen and child is not obj:
            seen.add(id(child))
            found.append((label, child))

    for attr in ("steps", "transformer_list", "transformers", "transformers_"):
        items = state.get(attr)
        if isinstance(items, list):
            for item in items:
                if isinstance(item, tuple) and len(item) >= 2 and isinstance(item[0], str):
                    add(item[0], item[1])
    if callable(getattr(type(obj), "get_params", None)):
        try:
            params = obj.get_params(deep=False)
        except Exception as exc:  # a half-built estimator: its parameters are pickled with it
            logger.debug("get_params failed on %s: %s", type(obj).__name__, exc)
            params = {}
        for name, value in params.items():
            add(name, value)
    for name, value in state.items():
        if name.endswith("_") and not name.startswith("_"):
            add(name, value)
    return found


def _walk_steps(obj: Any) -> Iterator[Any]:
    seen: set[int] = set()
    todo = [obj]
    while todo:
        step = todo.pop()
        if id(step) in seen:
            continue
        seen.add(id(step))
        yield step
        todo.extend(child for _, child in reversed(_structural_children(step)))


def teardown(obj: Any) -> None:
    """Call ``teardown()`` on ``obj`` and every step inside it that is set up.

    Steps that have a ``setup()`` set themselves up again on their next use.

    Parameters
    ----------
    obj : object
        A step or a tree of steps (as walked by :func:`dump`); steps without
        ``teardown()`` and steps not set up yet are left alone.

    Examples
    --------
    >>> class Conn:
    ...     def setup(self): self.open = True
    ...     def teardown(self): self.open = False
    ...     def transform(self, x): return x
    >>> c = Conn(); c.setup(); teardown(c); c.open
    False
    >>> c.transform(1), c.open
    (1, True)
    """
    for step in _walk_steps(obj):
        teardown_step(step)


# --------------------------------------------------------------------------- dump


def _label(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)[:60] or "_"


class _Dumper:
    def __init__(self, root: Path, teardown: bool):
        self.root = root
        self.teardown = teardown
        self.nodes: dict[str, dict[str, Any]] = {}
        self.refs: dict[int, str] = {}
        self.active: set[int] = set()
        self.alive: list[Any] = []  # keeps ids unique while dumping

    def node(self, obj: Any, label: str) -> str:
        ref = self.refs.get(id(obj))
        if ref is not None:
            if id(obj) in self.active:
                raise CheckpointError(
                    f"{type(obj).__name__} ({ref}) is referenced from one of its own steps; a dump cannot "
                    "hold such a cycle: drop the back-reference in the step (rebuild it in setup())"
                )
            return ref
        name = type(obj).__name__
        ref = f"{len(self.nodes):03d}-{_label(label if label == name else f'{label}-{name}')}"
        self.refs[id(obj)] = ref
        self.alive.append(obj)
        self.active.add(id(obj))
        self.nodes[ref] = {}  # reserve the number
        pending = remove_hooks(obj)  # a loaded step never used: save it as it was loaded
        torn = False
        if self.teardown and not pending and callable(getattr(type(obj), "teardown", None)):
            obj.teardown()
            torn = True
        try:
            self.nodes[ref] = self._save(obj, ref, label)
        finally:
            self.active.discard(id(obj))
            if pending or (torn and callable(getattr(type(obj), "setup", None))):
                install_hooks(obj)
        return ref

    def _save(self, obj: Any, ref: str, label: str) -> dict[str, Any]:
        saver = saver_for(obj)
        directory = self.root / "steps" / ref
        directory.mkdir(parents=True)
        info: dict[str, Any] = {
            "label": label,
            "type": class_path(obj),
            "saver": saver_name(saver),
        }
        if isinstance(saver, PickleSaver):
            children = {id(child): child_label for child_label, child in _structural_children(obj)}
            saver.save(obj, str(directory), persistent_id=self._persistent_id(obj, children))
            info["hooked"] = True
        else:
            saver.save(obj, str(directory))
        if not type(saver).__module__.startswith("checkpoint_magic."):
            import cloudpickle

            (self.root / "savers").mkdir(exist_ok=True)
            (self.root / "savers" / f"{ref}.pkl").write_bytes(cloudpickle.dumps(saver))
            info["saver_pickle"] = f"savers/{ref}.pkl"
        logger.debug("dumped %s (%s) with %s", ref, info["type"], info["saver"])
        return info

    def _persistent_id(self, owner: Any, children: dict[int, str]) -> Any:
        def persistent_id(obj: Any) -> Any:
            if obj is owner or isinstance(obj, _PLAIN):
                return None
            label = children.get(id(obj))
            if label is not None:
                return ("step", self.node(obj, label))
            if id(obj) in self.refs:  # a step already saved elsewhere in the tree: keep it shared
                return ("step", self.node(obj, ""))
            if not is_fallback_saver(saver_for(obj)):
                return ("step", self.node(obj, type(obj).__name__))
            return None

        return persistent_id


def _resolve_modules(modules: Iterable[Any]) -> list[types.ModuleType]:
    resolved = []
    for module in modules:
        if isinstance(module, str):
            if module not in sys.modules:
                raise InvalidArgumentError(
                    f"by_value names {module!r}, which is not imported; import it first"
                )
            module = sys.modules[module]
        if not isinstance(module, types.ModuleType):
            raise InvalidArgumentError(
                f"by_value takes modules or module names, not {type(module).__name__}"
            )
        resolved.append(module)
    return resolved


@contextlib.contextmanager
def _pickled_by_value(modules: list[types.ModuleType]) -> Iterator[None]:
    import cloudpickle

    added = [m for m in modules if m.__name__ not in cloudpickle.list_registry_pickle_by_value()]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in added:
            cloudpickle.unregister_pickle_by_value(module)


# Kept here, not folded into store.backends.local.atomic_write: that one replaces a file,
# this one swaps a whole directory, and savers sit below the store (import-linter layers).
def _publish(tmp: Path, path: Path) -> None:
    """Move the finished dump ``tmp`` to ``path``, replacing an earlier dump there.

    The new dump is complete in ``tmp`` (same directory) before this runs. A new ``path``
    appears with one rename, atomically. An earlier dump is replaced with two renames
    (the old one aside, the new one in), since POSIX cannot swap two directories in one
    step: between them, a reader finds no dump at ``path`` (:func:`load` says it is not a
    dump), never a mix of the two. If the second rename fails the old dump is put back.
    """
    if not path.exists():
        os.replace(tmp, path)
        return
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()
        os.replace(tmp, path)
        return
    if not (path / INDEX_NAME).is_file():
        raise InvalidArgumentError(
            f"{path} exists and is not a checkpoint_magic dump; choose another path or remove it"
        )
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
    os.replace(path, old)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def dump(
    obj: Any,
    path: str | os.PathLike[str],
    *,
    teardown: bool = True,
    by_value: Iterable[types.ModuleType | str] = (),
) -> Path:
    """Save ``obj`` (a fitted pipeline, any estimator tree or object) as the directory ``path``.

    Parameters
    ----------
    obj : Any
        What to save; every step in it goes through its saver.
    path : str or os.PathLike
        The dump directory; an earlier dump there is replaced (the new dump is written
        aside first, then renamed in: a concurrent :func:`load` sees the old or the new
        dump, or briefly none), any other non-empty directory is refused.
    teardown : bool, default True
        Call each step's ``teardown()`` before saving it; the step sets itself up again
        (``setup()``) on its next use.
    by_value : iterable of modules or module names
        Modules whose classes and functions are pickled by value (as ``__main__``'s and a
        notebook's always are), for a dump that must load where these modules are not
        installed; other importable classes are pickled by reference.

    Returns
    -------
    pathlib.Path
        The dump directory, absolute.

    Raises
    ------
    InvalidArgumentError
        ``path`` is a file or a directory that is neither empty nor a dump, or
        ``by_value`` names a module that is not imported.
    CheckpointError
        A step refers back to a step that contains it (a cycle a dump cannot hold).

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.preprocessing import StandardScaler
    >>> path = dump(StandardScaler().fit([[0.0], [2.0]]), tempfile.mkdtemp() + "/scaler")
    >>> sorted(p.name for p in path.iterdir())
    ['checkpoint_magic_dump.json', 'steps']
    """
    path = Path(os.path.abspath(os.fspath(path)))
    if path.exists() and not path.is_dir():
        raise InvalidArgumentError(f"{path} is a file; dump() writes a directory")
    modules = _resolve_modules(by_value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    tmp.mkdir()
    try:
        dumper = _Dumper(tmp, teardown)
        with _pickled_by_value(modules):
            root = dumper.node(obj, type(obj).__name__)
        index = {
            "format": DUMP_FORMAT,
            "checkpoint_magic": __version__,
            "python": platform.python_version(),
            "created": time.time(),
            "root": root,
            "nodes": dumper.nodes,
        }
        (tmp / INDEX_NAME).write_text(json.dumps(index, indent=1, sort_keys=True), encoding="utf-8")
        _publish(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("dumped %s (%d steps) to %s", type(obj).__name__, len(dumper.nodes), path)
    return path


# --------------------------------------------------------------------------- load


class _Loader:
    def __init__(self, root: Path, nodes: dict[str, dict[str, Any]]):
        self.root = root
        self.nodes = nodes
        self.loaded: dict[str, Any] = {}
        self.active: set[str] = set()

    def node(self, ref: str) -> Any:
        if ref in self.loaded:
            return self.loaded[ref]
        info = self.nodes.get(ref)
        if info is None or ref in self.active:
            raise StoreFormatError(
                f"the dump {self.root} is damaged: step {ref!r} is missing or cyclic"
            )
        self.active.add(ref)
        saver = self._saver(ref, info)
        directory = self.root / "steps" / ref
        if not directory.is_dir():
            raise StoreFormatError(f"the dump {self.root} is damaged: {directory} is missing")
        try:
            if info.get("hooked"):
                kwargs: dict[str, Any] = {"persistent_load": self._persistent_load}
                if isinstance(saver, StripUnpicklableSaver):
                    kwargs["setup"] = False  # setup() runs on first use instead
                obj = saver.load(str(directory), **kwargs)
            else:
                obj = saver.load(str(directory))
        except FileNotFoundError as exc:
            raise StoreFormatError(
                f"the dump {self.root} is damaged: a file of step {ref} is missing ({exc})"
            ) from exc
        self.active.discard(ref)
        self.loaded[ref] = obj
        if callable(getattr(type(obj), "setup", None)):
            setup_on_first_use(obj)
        return obj

    def _persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == "step"):
            raise StoreFormatError(f"the dump {self.root} refers to an unknown object {pid!r}")
        return self.node(pid[1])

    def _saver(self, ref: str, info: dict[str, Any]) -> Any:
        saver = find_saver(info["saver"])
        if saver is not None:
            return saver
        pickled = info.get("saver_pickle")
        if pickled:
            import pickle

            try:
                return pickle.loads((self.root / _plain_name(pickled, self.root)).read_bytes())
            except FileNotFoundError:
                raise StoreFormatError(
                    f"the dump {self.root} is damaged: the saver of step {ref} ({pickled}) is missing"
                ) from None
        raise CheckpointError(
            f"step {ref} was saved by {info['saver']}, which is not available here; "
            "import the module that defines it and register it with register_saver()"
        )


def _plain_name(name: Any, root: Path) -> str:
    """``name`` if it is a relative path inside the dump (no ``..``), else the dump is damaged."""
    parts = Path(name).parts if isinstance(name, str) else ()
    if not parts or Path(name).is_absolute() or ".." in parts:
        raise StoreFormatError(f"the dump {root} is damaged: {name!r} is not a file of the dump")
    return str(name)


def _read_index(root: Path) -> tuple[str, dict[str, dict[str, Any]]]:
    """The root step and the steps of a dump's index, checked; ``StoreFormatError`` if damaged."""
    try:
        text = (root / INDEX_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidArgumentError(
            f"{root} is not a checkpoint_magic dump (no {INDEX_NAME})"
        ) from None
    damaged = f"the dump {root} is damaged: its {INDEX_NAME}"
    try:
        index = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or a UnicodeDecodeError from read_text
        raise StoreFormatError(f"{damaged} is not valid JSON ({exc})") from None
    fmt = index.get("format") if isinstance(index, dict) else None
    if not isinstance(fmt, int) or fmt > DUMP_FORMAT:
        raise StoreFormatError(
            f"the dump {root} has format {fmt!r}; this checkpoint_magic reads format {DUMP_FORMAT}: upgrade it"
        )
    nodes, top = index.get("nodes"), index.get("root")
    if not isinstance(nodes, dict) or not isinstance(top, str):
        raise StoreFormatError(f"{damaged} has no 'root' step or no 'nodes' table")
    for ref, info in nodes.items():
        if not (isinstance(info, dict) and isinstance(info.get("saver"), str)):
            raise StoreFormatError(f"{damaged} has no saver for step {ref!r}")
        _plain_name(ref, root)
    return top, nodes


def _load(path: str | os.PathLike[str]) -> tuple[Any, list[Any]]:
    root = Path(os.fspath(path))
    top, nodes = _read_index(root)
    loader = _Loader(root, nodes)
    obj = loader.node(top)
    return obj, list(loader.loaded.values())


def load(path: str | os.PathLike[str]) -> Any:
    """Load what :func:`dump` saved in ``path``; steps with ``setup()`` set up on first use.

    A loaded step with a ``setup()`` method runs it the first time one of
    :data:`FIRST_USE_METHODS` is called on it (at once if it has none of them).

    Parameters
    ----------
    path : str or os.PathLike
        A directory :func:`dump` wrote.

    Returns
    -------
    object
        The rebuilt object, steps shared as they were when dumped.

    Raises
    ------
    InvalidArgumentError
        ``path`` is not a dump.
    StoreFormatError
        The dump was written by a newer checkpoint_magic, or is damaged.
    CheckpointError
        A step's saver is neither built in, registered, nor pickled in the dump.

    Examples
    --------
    >>> import tempfile
    >>> path = dump({"weights": [1.0, 2.0]}, tempfile.mkdtemp() + "/d")
    >>> load(path)
    {'weights': [1.0, 2.0]}
    """
    return _load(path)[0]


@contextlib.contextmanager
def loaded(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Load a dump for the duration of a ``with`` block, then tear every set-up step down.

    Parameters
    ----------
    path : str or os.PathLike
        A directory :func:`dump` wrote.

    Yields
    ------
    object
        The loaded object, as :func:`load` returns it.

    Raises
    ------
    InvalidArgumentError, StoreFormatError, CheckpointError
        As for :func:`load`.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.preprocessing import StandardScaler
    >>> path = dump(StandardScaler().fit([[0.0], [2.0]]), tempfile.mkdtemp() + "/scaler")
    >>> with loaded(path) as scaler:
    ...     scaler.transform([[4.0]])
    array([[3.]])
    """
    obj, steps = _load(path)
    try:
        yield obj
    finally:
        for step in steps:
            teardown_step(step)
