"""Per-step keying and pointer records of step runs: code fingerprints, output fingerprints, latest-output pointers.

:mod:`checkpoint_magic.steps` keys step *k* by the code of steps 1..*k*
(:func:`_member_fp`, each method detached from its class by :func:`_detached`), the
class's other members (:func:`_context_fp`) and the fingerprints of the earlier steps'
stored outputs (:func:`_record_fp`); :class:`_Plan` holds one step's key. A small pointer
per step (``state/<namespace>/latest-output.json``) names the entry of its latest output,
for ``start_from`` and ``load_outputs``; the functions here read and write those pointers
and the entries they name.
"""

from __future__ import annotations

import json
import logging
import time
import types
import weakref
from dataclasses import dataclass
from typing import Any

import xxhash

from ..checkpointer import Checkpointer
from ..exceptions import CorruptEntryWarning, FingerprintError, SignatureError, warn_user
from ..store.core import CorruptBlobError, CorruptManifestError, Store
from ..store.layout import LATEST_OUTPUT

# Log under the public module's name: these records belong to the step runs' log.
logger = logging.getLogger("checkpoint_magic.steps")

KIND = "step"


# --------------------------------------------------------------------------- code fingerprints

_DETACHED: dict[int, tuple[weakref.ref[types.FunctionType], types.FunctionType]] = {}


def _detached(fn: types.FunctionType) -> types.FunctionType:
    """A copy of a method's function that does not name its class.

    :func:`~checkpoint_magic.fingerprint.code.code_fingerprint` includes the class a method is
    defined in (all its members), so every step's fingerprint would change whenever any
    step changed. The copy has the same code, globals, defaults and closure, and a
    ``__qualname__`` without the class, so only its own code and the user code it calls count.
    """
    hit = _DETACHED.get(id(fn))
    if hit is not None and hit[0]() is fn:
        copy = hit[1]
        if (
            copy.__code__ is fn.__code__
            and copy.__defaults__ is fn.__defaults__
            and copy.__kwdefaults__ is fn.__kwdefaults__
        ):
            return copy
    copy = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    copy.__kwdefaults__ = fn.__kwdefaults__
    copy.__qualname__ = fn.__name__
    copy.__module__ = fn.__module__
    if hit is None:
        weakref.finalize(fn, _DETACHED.pop, id(fn), None).atexit = False
    _DETACHED[id(fn)] = (weakref.ref(fn), copy)
    return copy


def member_fp(value: Any) -> str | None:
    """Fingerprint of one class member: functions by their own code, data by value."""
    from ..fingerprint.code import code_fingerprint
    from ..fingerprint.values import fingerprint

    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    if isinstance(value, property):
        return "|".join(str(member_fp(f)) for f in (value.fget, value.fset, value.fdel))
    if value is None:
        return "none"
    if type(value) is types.FunctionType:
        return code_fingerprint(_detached(value))
    if callable(value):
        return code_fingerprint(value)
    return fingerprint(value)


def hex_digest(*items: str) -> str:
    h = xxhash.xxh3_128()
    for item in items:
        data = item.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def context_fp(cls: type, stop: type) -> str:
    """Fingerprint of the non-step members of the user classes between ``cls`` and ``stop`` (StepCheckpoint)."""
    from ..fingerprint.code import is_user_code

    members: dict[str, Any] = {}
    for klass in cls.__mro__:
        if klass is stop or not is_user_code(klass):
            continue  # installed bases count through the package version of their module, not here
        for attr, value in vars(klass).items():
            if attr.startswith("__") or attr.startswith("step_") or attr in members:
                continue
            members[attr] = value
    pieces = []
    for attr in sorted(members):
        try:
            desc = member_fp(members[attr])
        except FingerprintError as exc:
            logger.debug(
                "%s.%s cannot be fingerprinted (%s); only its type counts", cls.__name__, attr, exc
            )
            desc = "type:" + type(members[attr]).__qualname__
        pieces.append(f"{attr}={desc}")
    return hex_digest("members", *pieces)


def record_fp(record: dict[str, Any]) -> str:
    """Fingerprint of a stored output: its codec, meta and blob digests (or inline bytes)."""
    return xxhash.xxh3_128_hexdigest(
        json.dumps(record, sort_keys=True, default=str).encode("utf-8")
    )


@dataclass
class Plan:
    """How step ``name`` is keyed in this run."""

    name: str
    checkpointer: Checkpointer
    code_fp: str
    input_fps: dict[str, str]
    parts: dict[str, str]

    @property
    def key(self) -> str:
        return self.checkpointer.key(self.code_fp, self.input_fps)


# --------------------------------------------------------------------------- latest-output pointers and entries


def _read_pointer(store: Store, namespace: str) -> Any:
    raw = store.read_record(namespace, LATEST_OUTPUT)
    return json.loads(raw).get("key") if raw is not None else None


def write_pointer(store: Store, namespace: str, key: str) -> None:
    body = json.dumps({"namespace": namespace, "key": key, "time": time.time()})
    try:
        store.write_record(namespace, LATEST_OUTPUT, body.encode("utf-8"))
    except OSError as exc:  # the output is stored; only start_from/load_outputs lose track of it
        logger.warning("could not record the latest output of %s: %s", namespace, exc)


def point_latest(store: Store, namespace: str, key: str) -> None:
    """Point the pointer of ``namespace`` at ``key`` unless it already does."""
    try:
        if _read_pointer(store, namespace) == key:
            return
    except (OSError, ValueError, AttributeError, RecursionError):
        pass
    write_pointer(store, namespace, key)


def latest_manifest(store: Store, namespace: str, step: str) -> dict[str, Any] | None:
    """The manifest of the latest output of ``step``: the pointer's, else the newest entry."""
    try:
        key = _read_pointer(store, namespace)
    except (OSError, ValueError, AttributeError, RecursionError):
        key = None
    if isinstance(key, str):
        manifest = read_manifest(store, namespace, key)
        if manifest is not None:
            return manifest
    newest = None
    # Entry by entry, so that one refused (unsigned) or damaged entry skips only itself.
    for _, entry_key in store.iter_entry_keys(namespace):
        manifest = read_manifest(store, namespace, entry_key, scanning=True)
        if manifest is None:
            continue
        if (
            manifest.get("kind") == KIND
            and step in manifest.get("outputs", {})
            and (newest is None or manifest.get("created", 0) > newest.get("created", 0))
        ):
            newest = manifest
    return newest


def read_manifest(
    store: Store, namespace: str, key: str, *, scanning: bool = False
) -> dict[str, Any] | None:
    """The manifest of entry ``key``, or ``None``: absent, damaged (warned) or refused.

    An entry refused because signing is required and it is unsigned (or wrongly signed)
    is no output: an INFO line, and the step is recomputed (and stored signed). A damaged
    manifest is a :class:`~checkpoint_magic.exceptions.CorruptEntryWarning`, or a WARNING
    log line while ``scanning`` the entries of a namespace.
    """
    try:
        return store.read_entry(namespace, key)
    except SignatureError as exc:
        logger.info("checkpoint %s: %s; treated as no stored output", namespace, exc)
    except CorruptManifestError as exc:
        if scanning:
            logger.warning("checkpoint %s: %s", namespace, exc)
        else:
            warn_user(f"checkpoint {namespace}: {exc}; recomputing", CorruptEntryWarning)
    return None


def entry_exists(store: Store, namespace: str, key: str) -> bool:
    """Whether a manifest file exists for ``key`` (readable or not)."""
    return store.entry_exists(namespace, key)


def load_value(
    store: Store, namespace: str, step: str, manifest: dict[str, Any]
) -> tuple[bool, Any]:
    """``(True, value)`` for a readable stored output, ``(False, None)`` otherwise."""
    try:
        value = store.get_value(manifest["outputs"][step])
    except CorruptBlobError as exc:
        store.delete_entry(namespace, str(manifest.get("key")))
        warn_user(
            f"checkpoint {namespace}: {exc}; the entry is dropped and recomputed",
            CorruptEntryWarning,
        )
        return False, None
    except Exception as exc:  # unpickling runs arbitrary code: a failure is a miss, never a crash
        warn_user(
            f"checkpoint {namespace}: the stored output could not be loaded "
            f"({type(exc).__name__}: {exc}); recomputing",
            CorruptEntryWarning,
        )
        return False, None
    store.record_use(namespace, str(manifest.get("key")))
    return True, value
