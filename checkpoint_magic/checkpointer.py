"""The core every front end shares: key = H(scheme, kind, namespace, code, inputs); load or commit.

A front end (decorator, ``InlineCheckpoint``, ``%%checkpoint``, step runner) owns a
:class:`Checkpointer` for one *namespace* (a function's qualified name, a block's or a
cell's name). It fingerprints the inputs, asks :meth:`Checkpointer.load` for an entry
and, on a miss, runs the code and hands the produced values to :meth:`Checkpointer.save`.

Failure policy (DESIGN.md): a corrupt or unreadable entry is a miss with one
:class:`~checkpoint_magic.exceptions.CorruptEntryWarning`; a failed save is one
:class:`~checkpoint_magic.exceptions.StoreWriteWarning` and the computed values are
still returned by the caller; a store of a newer format raises
:class:`~checkpoint_magic.exceptions.StoreFormatError` before anything runs. A fault that
will not go away by itself (permission denied, a read-only file system, a store path that
is a file, a folder replaced by a link, a location holding something else) is warned about
once per store and process; the calls run uncached meanwhile, and use the store again as
soon as it works.

Examples
--------
>>> import tempfile
>>> cp = Checkpointer("function", "doc.square", store=tempfile.mkdtemp())
>>> inputs = cp.fingerprint_inputs({"x": 3})
>>> cp.load("code-v1", inputs) is None
True
>>> cp.save("code-v1", inputs, {"return": 9}, duration=0.5)
True
>>> cp.load("code-v1", inputs).outputs
{'return': 9}
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import xxhash

from . import config
from ._version import __version__
from .exceptions import (
    CorruptEntryWarning,
    SignatureError,
    StoreFormatError,
    StoreWriteWarning,
    warn_user,
)
from .fingerprint.values import HASH_SCHEME_VERSION, Fingerprinter
from .store.budget import enforce_budget
from .store.core import (
    CorruptBlobError,
    CorruptManifestError,
    ForeignStoreError,
    Store,
    get_store,
)

__all__ = ["Checkpointer", "LoadResult", "fault_kind", "make_key"]

logger = logging.getLogger(__name__)

#: Faults that persist until someone fixes them, by errno: warned about once per store.
_PERSISTENT = {
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "a folder where a file should be",
    errno.ELOOP: "a link the store did not create",
}
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def fault_kind(exc: BaseException) -> str | None:
    """The kind of a persistent store fault (warned about once per store), ``None`` for others.

    Examples
    --------
    >>> fault_kind(PermissionError(13, "Permission denied")), fault_kind(OSError(28, "full"))
    ('permission denied', None)
    """
    if isinstance(exc, ForeignStoreError):
        return "not a checkpoint store"
    return _PERSISTENT.get(getattr(exc, "errno", None) or -1)


def _warn_fault(store: Store, exc: BaseException, doing: str, category: type[Warning]) -> None:
    """Warn about a store fault; a persistent one only the first time for this store in this process."""
    kind = fault_kind(exc)
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if kind is None:
        warn_user(f"{doing} ({text})", category)
        return
    with _warned_lock:
        first = (store.location, kind) not in _warned
        _warned.add((store.location, kind))
    if not first:
        logger.debug("%s (%s; warned before)", doing, text)
        return
    warn_user(
        f"{doing} ({text}). The checkpoint store {store.location} has a lasting fault "
        f"({kind}): what it cannot do is skipped, and computations run uncached, until it is "
        "fixed (check its permissions and links, or point store=... / CHECKPOINT_MAGIC_DIR "
        "elsewhere); this warning is shown once per process",
        category,
    )


def make_key(kind: str, namespace: str, code_fp: str, input_fps: Mapping[str, str]) -> str:
    """The entry key: xxh3-128 over the scheme version, kind, namespace, code and inputs.

    Input order does not matter; input names do.

    Examples
    --------
    >>> make_key("function", "m.f", "c", {"a": "1", "b": "2"}) == make_key("function", "m.f", "c", {"b": "2", "a": "1"})
    True
    >>> make_key("function", "m.f", "c", {"a": "1"}) == make_key("function", "m.f", "c", {"b": "1"})
    False
    """
    h = xxhash.xxh3_128()
    h.update(
        f"checkpoint_magic-key\0{HASH_SCHEME_VERSION}\0{kind}\0{namespace}\0{code_fp}\0".encode()
    )
    for name in sorted(input_fps):
        h.update(f"{len(name)}:{name}={input_fps[name]}\0".encode())
    return h.hexdigest()


@dataclass
class LoadResult:
    """A hit: the stored ``outputs`` by name, plus when and how long the first run took."""

    key: str
    outputs: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    duration: float = 0.0


class Checkpointer:
    """Look up and commit the entries of one namespace.

    Parameters
    ----------
    kind : str
        What is cached: ``"function"``, ``"block"``, ``"cell"``, ``"step"``...; part of the key.
    namespace : str
        The name entries are grouped under (e.g. ``"mymodule.fit_model"``); part of the key.
    store : Store, path or None
        Where entries live; default ``$CHECKPOINT_MAGIC_DIR`` or ``./.Lutil-checkpoint``,
        resolved when first used.
    """

    def __init__(
        self, kind: str, namespace: str, store: Store | str | os.PathLike[str] | None = None
    ):
        self.kind = kind
        self.namespace = namespace
        self._store_arg = store
        self._store: Store | None = store if isinstance(store, Store) else None
        #: Why the last lookup of this checkpointer missed although entries existed (set when
        #: INFO logging is enabled; otherwise ``explain.last_miss`` computes it on demand).
        self.last_miss_reason: str | None = None

    def __repr__(self) -> str:
        return f"Checkpointer({self.kind!r}, {self.namespace!r}, store={self._store_arg!r})"

    @property
    def store(self) -> Store:
        """The store, resolved on first use (so ``CHECKPOINT_MAGIC_DIR`` set later still counts)."""
        if self._store is None:
            if self._store_arg is None:
                return get_store(None)  # re-resolved each time: the env var or cwd may change
            self._store = get_store(self._store_arg)
        return self._store

    def fingerprint_inputs(self, values: Mapping[str, Any]) -> dict[str, str]:
        """Fingerprint every input by name; a value seen under two names is hashed once."""
        fp = Fingerprinter()
        return {name: fp.fingerprint(value, name=name) for name, value in values.items()}

    def key(self, code_fp: str, input_fps: Mapping[str, str]) -> str:
        """The key of the entry for this code and these inputs."""
        return make_key(self.kind, self.namespace, code_fp, input_fps)

    def contains(self, code_fp: str, input_fps: Mapping[str, str]) -> bool:
        """Whether a readable manifest exists for this code and these inputs (blobs not read)."""
        try:
            return self.store.read_entry(self.namespace, self.key(code_fp, input_fps)) is not None
        except (CorruptManifestError, SignatureError, ForeignStoreError, OSError):
            return False

    def load(
        self,
        code_fp: str,
        input_fps: Mapping[str, str],
        *,
        mmap_mode: str | None = None,
        code_parts: Mapping[str, str] | Callable[[], Mapping[str, str]] | None = None,
    ) -> LoadResult | None:
        """Return the stored outputs for this code and these inputs, or ``None`` on a miss.

        A damaged entry (manifest or blob), an unsigned or tampered one while signing is
        required, or one that cannot be unpickled here is a miss with one
        :class:`~checkpoint_magic.exceptions.CorruptEntryWarning`; it never yields a wrong
        value. A miss while other entries exist is explained in one INFO line (see
        :mod:`checkpoint_magic.explain`); ``code_parts`` (or a callable computing them)
        lets the explanation name the function that changed.
        """
        store = self.store
        key = self.key(code_fp, input_fps)
        try:
            manifest = store.read_entry(self.namespace, key, hot_only=True)
        except CorruptManifestError as exc:
            warn_user(f"checkpoint {self.namespace}: {exc}; recomputing", CorruptEntryWarning)
            return None
        except SignatureError as exc:
            warn_user(f"checkpoint {self.namespace}: {exc}; recomputing", CorruptEntryWarning)
            return None
        except (ForeignStoreError, OSError) as exc:  # permissions, a file in the way, a link...
            _warn_fault(
                store,
                exc,
                f"checkpoint {self.namespace}: the store cannot be read",
                CorruptEntryWarning,
            )
            return None
        if manifest is None:
            try:
                self._explain_miss(code_fp, input_fps, code_parts)
            except OSError as exc:  # the explanation is a courtesy
                logger.debug("could not explain the miss of %s: %s", self.namespace, exc)
            return None
        try:
            outputs = {
                name: store.get_value(rec, mmap_mode=mmap_mode)
                for name, rec in manifest["outputs"].items()
            }
        except CorruptBlobError as exc:
            with contextlib.suppress(OSError):
                store.delete_entry(self.namespace, key)
            warn_user(
                f"checkpoint {self.namespace}: {exc}; the entry is dropped and recomputed",
                CorruptEntryWarning,
            )
            return None
        except OSError as exc:  # an unreadable blob: not damage, the entry is kept
            _warn_fault(
                store,
                exc,
                f"checkpoint {self.namespace}: a stored result cannot be read; recomputing",
                CorruptEntryWarning,
            )
            return None
        # Unpickling runs arbitrary code: any failure is a miss, never a crash.
        except Exception as exc:
            warn_user(
                f"checkpoint {self.namespace}: the stored result could not be loaded "
                f"({type(exc).__name__}: {exc}); recomputing",
                CorruptEntryWarning,
            )
            return None
        store.record_use(self.namespace, key)
        logger.debug("hit %s %s", self.namespace, key)
        return LoadResult(
            key=key,
            outputs=outputs,
            meta=dict(manifest.get("meta") or {}),
            created=float(manifest.get("created", 0.0)),
            duration=float(manifest.get("duration", 0.0)),
        )

    def _explain_miss(
        self,
        code_fp: str,
        input_fps: Mapping[str, str],
        code_parts: Mapping[str, str] | Callable[[], Mapping[str, str]] | None,
    ) -> None:
        from .explain import explain_miss, record_miss

        if not self.store.has_entries(self.namespace):
            logger.debug("miss %s: no entry yet", self.namespace)
            return
        try:
            parts = code_parts() if callable(code_parts) else code_parts
        except Exception as exc:  # the explanation is a courtesy; never fail the call for it
            logger.debug("code parts unavailable for %s: %s", self.namespace, exc)
            parts = None
        now = time.time()
        if logger.isEnabledFor(logging.INFO):
            reason = explain_miss(self.store, self.namespace, code_fp, input_fps, parts)
            logger.info("%s: recomputing (%s)", self.namespace, reason)
            record_miss(self.store, self.namespace, reason, now)
            self.last_miss_reason = reason
        else:
            # Nobody is listening now: keep what is needed to explain it on demand (`why`).
            request = {
                "key": self.key(code_fp, input_fps),
                "code": code_fp,
                "inputs": dict(input_fps),
                "parts": parts,
            }
            record_miss(self.store, self.namespace, None, now, request=request)

    def save(
        self,
        code_fp: str,
        input_fps: Mapping[str, str],
        outputs: Mapping[str, Any],
        *,
        duration: float,
        meta: Mapping[str, Any] | None = None,
        code_parts: Mapping[str, str] | None = None,
    ) -> bool:
        """Commit ``outputs`` for this code and these inputs; ``False`` (and one warning) on failure.

        Blobs are written first and the manifest last, so a failure at any point leaves
        no partial entry. :class:`StoreFormatError` (a newer store) is raised, not warned.
        """
        store = self.store
        key = self.key(code_fp, input_fps)
        try:
            with store.commit():
                records = {name: store.put_value(value) for name, value in outputs.items()}
                manifest = {
                    "format": 1,
                    "kind": self.kind,
                    "namespace": self.namespace,
                    "key": key,
                    "code": code_fp,
                    "code_parts": dict(code_parts or {}),
                    "inputs": dict(input_fps),
                    "outputs": records,
                    "meta": dict(meta or {}),
                    "created": time.time(),
                    "duration": float(duration),
                    "size": sum(int(r.get("size", 0)) for r in records.values()),
                    "python": ".".join(map(str, sys.version_info[:3])),
                    "checkpoint_magic": __version__,
                }
                store.write_entry(self.namespace, key, manifest)
        except ForeignStoreError as exc:
            _warn_fault(store, exc, f"checkpoint {self.namespace}: not stored", StoreWriteWarning)
            return False
        except StoreFormatError:
            raise
        except OSError as exc:
            _warn_fault(
                store,
                exc,
                f"checkpoint {self.namespace}: the result was computed but could not be stored; "
                "it is returned uncached",
                StoreWriteWarning,
            )
            return False
        except Exception as exc:  # pickling and I/O can fail in many ways; the result must survive
            warn_user(
                f"checkpoint {self.namespace}: the result was computed but could not be stored "
                f"({type(exc).__name__}: {exc}); it is returned uncached",
                StoreWriteWarning,
            )
            return False
        logger.debug("stored %s %s", self.namespace, key)
        self._enforce_budget(store)
        return True

    def _enforce_budget(self, store: Store) -> None:
        """With ``CHECKPOINT_MAGIC_MAX_SIZE`` set, evict least recently used entries after a commit."""
        limit = os.environ.get(config.ENV_MAX_SIZE)
        if not limit:
            return
        try:
            enforce_budget(store, limit)
        except Exception as exc:  # the commit succeeded; a failed clean-up must not hide the result
            warn_user(
                f"automatic garbage collection ({config.ENV_MAX_SIZE}={limit}) failed: {exc}",
                StoreWriteWarning,
            )

    def clear(self, *, force: bool = False) -> int:
        """Delete every entry of this namespace (every code version; pinned ones only with
        ``force``); return how many."""
        return self.store.clear(self.namespace, force=force)
