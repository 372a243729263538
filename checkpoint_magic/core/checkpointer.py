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
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import config
from .._version import __version__
from ..exceptions import (
    CorruptEntryWarning,
    SignatureError,
    StoreFormatError,
    StoreWriteWarning,
    UncachedWarning,
    warn_user,
)
from ..fingerprint.frozen import remember as remember_read_only
from ..fingerprint.values import Fingerprinter
from ..store import singleflight
from ..store.budget import enforce_budget
from ..store.core import (
    CorruptBlobError,
    CorruptManifestError,
    ForeignStoreError,
    Store,
    get_store,
)
from ..ui import notes
from . import lineage
from .faults import ADVICE, fault_kind, fingerprint_or_warn, warn_fault
from .keys import key_from, key_prefix, make_key

__all__ = ["Checkpointer", "LoadResult", "fault_kind", "fingerprint_or_warn", "make_key"]

# fault_kind and fingerprint_or_warn live in .faults; re-exported here, where callers meet them.

logger = logging.getLogger(__name__)
#: Kinds whose racing callers run a missing computation once (see :mod:`.store.singleflight`):
#: the front ends that release the lease when the body raises (:meth:`Checkpointer.abandon`).
SINGLE_FLIGHT_KINDS = frozenset({"function"})


def _remember_read_only(store: Store, outputs: Mapping[str, Any]) -> None:
    """Let the fingerprints reuse the digest of read-only memory maps of verified blobs."""
    for value in outputs.values():
        filename = getattr(value, "filename", None) if type(value) is np.memmap else None
        if filename:
            remember_read_only(value, store.verified_signature(filename))


@dataclass
class LoadResult:
    """A hit: the stored ``outputs`` by name, plus when and how long the first run took.

    Attributes
    ----------
    key, outputs, meta, created, duration
        The key; the values by name; extra manifest metadata; commit time; run seconds.
    """

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
        self._key_prefix = (kind, namespace, key_prefix(kind, namespace))  # see key()
        self._last_key: tuple[str, str, dict[str, str], str] = ("", "", {}, "")  # see key()
        self._store_arg = store
        self._store: Store | None = store if isinstance(store, Store) else None
        self._default: tuple[tuple[str | None, str], Store] | None = None
        #: Why the last lookup of this checkpointer missed although entries existed (set when
        #: notes are shown or INFO logging is enabled; otherwise ``explain.last_miss`` computes
        #: it on demand).
        self.last_miss_reason: str | None = None
        #: The optional outputs the last :meth:`save` left out because they cannot be
        #: serialized, by name, with the reason.
        self.left_out: dict[str, str] = {}
        # key -> the single-flight lease this process holds while it computes that entry
        self._flights: dict[str, singleflight.Flight] = {}
        self._slowest: float | None = None  # longest computation seen (worth_a_flight)
        # keys whose lookup failed on a store fault: their call runs uncached (one warning)
        self._uncached: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Shipped to other processes (Dask workers): the store is resolved again there, and
        # how long the runs took is measured there (worth_a_flight counts this process's).
        state = dict(self.__dict__, _store=None, _flights={}, _uncached=set(), _slowest=None)
        if isinstance(self._store_arg, Store):
            state["_store_arg"] = self._store_arg.location
        return state

    def __repr__(self) -> str:
        return f"Checkpointer({self.kind!r}, {self.namespace!r}, store={self._store_arg!r})"

    @property
    def store(self) -> Store:
        """The store, resolved on first use (so ``CHECKPOINT_MAGIC_DIR`` set later still counts)."""
        if self._store is None:
            if self._store_arg is None:
                # Re-resolved when the env var or the cwd changes (resolving costs syscalls).
                try:
                    where = (os.environ.get(config.ENV_DIR), os.getcwd())
                except OSError:  # the cwd was removed: resolve as before
                    return get_store(None)
                if self._default is None or self._default[0] != where:
                    self._default = (where, get_store(None))
                return self._default[1]
            self._store = get_store(self._store_arg)
        return self._store

    def fingerprint_inputs(
        self, values: Mapping[str, Any], reached: list[Any] | None = None
    ) -> dict[str, str]:
        """Fingerprint every input by name; a value seen under two names is hashed once.

        Parameters
        ----------
        values : Mapping of str to object
            The inputs by name.
        reached : list, optional
            Receives the values memoised by the walk (code, arrays, objects), so that the
            caller can find the code the inputs hold (see ``inputs.reached_globals``).

        Returns
        -------
        dict of str to str
            The fingerprint of each input, by name.

        Raises
        ------
        FingerprintError
            When an input cannot be walked (a bug in its methods, or nested too deeply).

        Examples
        --------
        >>> fps = Checkpointer("function", "doc.f").fingerprint_inputs({"x": 1, "y": [1]})
        >>> sorted(fps), len(fps["x"])
        (['x', 'y'], 32)
        """
        fp = Fingerprinter(ADVICE.get(self.kind))
        fps = {name: fp.fingerprint(value, name=name) for name, value in values.items()}
        if reached is not None and fp.memo:
            reached.extend(value for value, _ in fp.memo.values())
        return lineage.observe(values, fps) if lineage.watching else fps  # restored maps

    def key(self, code_fp: str, input_fps: Mapping[str, str]) -> str:
        """Return the key of the entry for this code and these inputs.

        Parameters
        ----------
        code_fp : str
            The code fingerprint (see :func:`~checkpoint_magic.fingerprint.code.code_fingerprint`).
        input_fps : Mapping of str to str
            The input fingerprints by name (see :meth:`fingerprint_inputs`).

        Returns
        -------
        str
            32 hexadecimal digits (see :func:`make_key`).
        """
        kind, namespace, prefix = self._key_prefix
        if kind != self.kind or namespace != self.namespace:  # reassigned since: make it again
            self._key_prefix = (self.kind, self.namespace, key_prefix(self.kind, self.namespace))
            prefix = self._key_prefix[2]
        # The last key made, by the prefix, code and inputs it was made of (a miss asks for
        # its key five times; a loop may call with the same inputs again): compared, not hashed.
        last = self._last_key
        if last[0] is prefix and last[1] == code_fp and last[2] == input_fps:
            return last[3]
        key = key_from(prefix, code_fp, input_fps)
        self._last_key = (prefix, code_fp, dict(input_fps), key)
        return key

    def contains(self, code_fp: str, input_fps: Mapping[str, str]) -> bool:
        """Whether a readable manifest exists for this code and these inputs (blobs not read).

        Parameters
        ----------
        code_fp : str
            The code fingerprint (see :func:`~checkpoint_magic.fingerprint.code.code_fingerprint`).
        input_fps : Mapping of str to str
            The input fingerprints by name (see :meth:`fingerprint_inputs`).

        Returns
        -------
        bool
            False too when the manifest is damaged, unsigned or unreadable.
        """
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
        :mod:`checkpoint_magic.core.explain`); ``code_parts`` (or a callable computing them)
        lets the explanation name the function that changed.

        Parameters
        ----------
        code_fp : str
            The code fingerprint (see :func:`~checkpoint_magic.fingerprint.code.code_fingerprint`).
        input_fps : Mapping of str to str
            The input fingerprints by name (see :meth:`fingerprint_inputs`).
        mmap_mode : str, optional
            Passed to savers that can memory-map arrays (``"r"``, ``"c"``...).
        code_parts : Mapping of str to str, or callable returning one, optional
            The own-code digest of each function reached, for the miss explanation.

        Returns
        -------
        LoadResult or None
            The outputs on a hit; None on a miss (the caller computes, then :meth:`save`).
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
        except (ForeignStoreError, OSError) as exc:  # permissions, network, a file in the way...
            self._uncached.add(key)  # this call runs uncached: nothing is stored
            warn_fault(
                store,
                exc,
                f"checkpoint {self.namespace}: the store {store.location} cannot be read; "
                "running uncached",
                UncachedWarning,
            )
            return None
        if manifest is None:
            try:
                self._explain_miss(code_fp, input_fps, code_parts)
            except OSError as exc:  # the explanation is a courtesy
                logger.debug("could not explain the miss of %s: %s", self.namespace, exc)
            if (
                self.kind in SINGLE_FLIGHT_KINDS
                and singleflight.worth_a_flight(self._slowest)
                and self._await_flight(store, key)
            ):
                # Another process computed it meanwhile: load its entry.
                return self.load(code_fp, input_fps, mmap_mode=mmap_mode, code_parts=code_parts)
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
            warn_fault(
                store,
                exc,
                f"checkpoint {self.namespace}: a stored result cannot be read; recomputing",
                CorruptEntryWarning,
            )
            return None
        # Unpickling runs arbitrary code: any failure is a miss, never a crash.
        except Exception as exc:
            if isinstance(exc, OSError):  # unreachable now: this call runs uncached
                self._uncached.add(key)
            warn_user(
                f"checkpoint {self.namespace}: the stored result could not be loaded "
                f"({type(exc).__name__}: {exc}); recomputing",
                CorruptEntryWarning,
            )
            return None
        if mmap_mode == "r":
            _remember_read_only(store, outputs)
        if mmap_mode == "r" or "output_fps" in manifest:  # what lineage can learn from a hit
            lineage.restored(store.location, self.kind, code_fp, manifest, outputs)
        store.record_use(self.namespace, key)  # in memory: written later by a thread
        logger.debug("hit %s %s", self.namespace, key)
        return LoadResult(
            key=key,
            outputs=outputs,
            meta=dict(manifest.get("meta") or {}),
            created=float(manifest.get("created", 0.0)),
            duration=float(manifest.get("duration", 0.0)),
        )

    def _await_flight(self, store: Store, key: str) -> bool:
        """Take the single-flight lease of ``key``, or wait for the process computing it.

        ``True`` when the entry appeared meanwhile (load it); ``False`` when this caller
        computes (holding the lease until :meth:`save` or :meth:`abandon`).
        """

        def published() -> bool:
            try:
                return store.read_entry(self.namespace, key, hot_only=True) is not None
            except (CorruptManifestError, SignatureError):
                return True  # something is there: the lookup will warn and recompute
            except OSError:
                return False

        try:
            store.prepare_write()  # a lease is a write: the store and its FORMAT come first
        except OSError as exc:
            logger.debug("no single-flight for %s: %s", self.namespace, exc)
            return False
        flight = singleflight.acquire(store.backend, self.namespace, key, published)
        if flight.held:
            previous = self._flights.pop(key, None)
            self._flights[key] = flight
            if previous is not None:
                previous.release()
            return False
        return published()

    def lookup_failed(self, code_fp: str, input_fps: Mapping[str, str]) -> bool:
        """Whether the lookup of this entry met a store fault (and warned): do not store it.

        Parameters
        ----------
        code_fp, input_fps
            The fingerprints the entry was looked up with.

        Returns
        -------
        bool
            ``True`` until :meth:`abandon` or :meth:`save` ends the call.
        """
        return self.key(code_fp, input_fps) in self._uncached

    def abandon(self, code_fp: str, input_fps: Mapping[str, str]) -> None:
        """Release the lease of an entry whose computation failed, so that a waiting caller runs it.

        Parameters
        ----------
        code_fp : str
            The code fingerprint (see :func:`~checkpoint_magic.fingerprint.code.code_fingerprint`).
        input_fps : Mapping of str to str
            The input fingerprints by name (see :meth:`fingerprint_inputs`).
        """
        self._end_flight(self.key(code_fp, input_fps))

    def _end_flight(self, key: str) -> None:
        self._uncached.discard(key)
        flight = self._flights.pop(key, None)
        if flight is not None:
            flight.release()

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
        shown = notes.enabled()
        if shown or logger.isEnabledFor(logging.INFO):
            reason = explain_miss(self.store, self.namespace, code_fp, input_fps, parts)
            logger.info("%s: recomputing (%s)", self.namespace, reason)
            if shown:
                notes.note_miss(self.namespace, reason)
            record_miss(self.store, self.namespace, reason, now, defer=True)
            self.last_miss_reason = reason
        else:
            # Nobody is listening now: keep what is needed to explain it on demand (`why`).
            request = {
                "key": self.key(code_fp, input_fps),
                "code": code_fp,
                "inputs": dict(input_fps),
                "parts": parts,
            }
            record_miss(self.store, self.namespace, None, now, request=request, defer=True)

    def save(
        self,
        code_fp: str,
        input_fps: Mapping[str, str],
        outputs: Mapping[str, Any],
        *,
        duration: float,
        meta: Mapping[str, Any] | None = None,
        code_parts: Mapping[str, str] | None = None,
        optional: Collection[str] = (),
    ) -> bool:
        """Commit ``outputs`` for this code and these inputs; False (and one warning) on failure.

        Blobs are written first and the manifest last, so a failure at any point leaves
        no partial entry. :class:`StoreFormatError` (a newer store) is raised, not warned.
        An output named in ``optional`` that cannot be serialized (a lock, an executor, a
        socket) is left out of the entry instead, and listed in :attr:`left_out` with why.

        Parameters
        ----------
        code_fp : str
            The code fingerprint (see :func:`~checkpoint_magic.fingerprint.code.code_fingerprint`).
        input_fps : Mapping of str to str
            The input fingerprints by name (see :meth:`fingerprint_inputs`).
        outputs : Mapping of str to object
            The values to store, by name.
        duration : float
            How long the computation took, in seconds.
        meta : Mapping of str to object, optional
            Extra manifest metadata (labels, sources, the notebook's output...).
        code_parts : Mapping of str to str, optional
            The own-code digest of each function reached, kept to explain later misses.
        optional : Collection of str, default ()
            Outputs that are left out, rather than failing the save, when they cannot be stored.

        Returns
        -------
        bool
            Whether the entry was committed.

        Raises
        ------
        StoreFormatError
            When the store was written by a newer, incompatible version.
        """
        store = self.store
        key = self.key(code_fp, input_fps)
        self.left_out = {}
        self._slowest = max(self._slowest or 0.0, duration)
        if key in self._uncached:  # its lookup already warned that the store is unreachable
            self._end_flight(key)
            logger.debug("not storing %s %s: the store was unreachable", self.namespace, key)
            return False
        try:
            with store.commit():
                records = {}
                for name, value in outputs.items():
                    if name not in optional:
                        records[name] = store.put_value(value)
                        continue
                    try:
                        records[name] = store.put_value(value)
                    except (TypeError, AttributeError, pickle.PicklingError) as exc:
                        self.left_out[name] = f"{type(value).__name__}: {exc}"
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
                lineage.annotate(manifest, outputs, store.location)
                store.write_entry(self.namespace, key, manifest)
        except ForeignStoreError as exc:
            warn_fault(store, exc, f"checkpoint {self.namespace}: not stored", StoreWriteWarning)
            return False
        except StoreFormatError:
            self._end_flight(key)
            raise
        except OSError as exc:
            warn_fault(
                store,
                exc,
                f"checkpoint {self.namespace}: the result was computed but could not be stored; "
                "it is returned uncached",
                StoreWriteWarning,
            )
            return False
        except Exception as exc:  # pickling and I/O can fail in many ways; the result must survive
            self._end_flight(key)
            warn_user(
                f"checkpoint {self.namespace}: the result was computed but could not be stored "
                f"({type(exc).__name__}: {exc}); it is returned uncached",
                StoreWriteWarning,
            )
            return False
        self._end_flight(key)
        lineage.register(store.location, manifest)
        logger.debug("stored %s %s", self.namespace, key)
        self._enforce_budget(store)
        return True

    def _enforce_budget(self, store: Store) -> None:
        """With ``CHECKPOINT_MAGIC_MAX_SIZE`` set, evict the least recently used after commits."""
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
        """Delete every entry of this namespace (every code version).

        Parameters
        ----------
        force : bool, default False
            Delete pinned entries too.

        Returns
        -------
        int
            How many entries were deleted.
        """
        return self.store.clear(self.namespace, force=force)
