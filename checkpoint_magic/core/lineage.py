"""Lineage: which stored entry an input came from, told by content address (its fingerprint).

An input whose fingerprint equals the fingerprint of a stored output of another entry was
produced by that entry. When an entry is committed, its manifest records for each such
input ``{"input": name, "from": {namespace, kind, key, output, code, created}}`` (the
``lineage`` field), and ``checkpoint-magic show`` / ``why`` print it as
``input a came from __main__.load_data@1f2e3d4c, 2 h ago``.

Lineage is informational: it never enters a key and never decides a hit. A claim is only
made when the digest actually computed for the input equals a digest of the producer's
stored output, never from object identity alone, so a value changed in place after it was
produced is not attributed to its producer. The producer's output digests come from two
places, neither of which hashes a large value again:

* **at commit**, outputs that are cheap to fingerprint (see :func:`annotate`): arrays and
  pandas objects up to :data:`BUFFER_MAX` bytes, other values up to :data:`OBJECT_MAX`
  bytes, as serialized. Their digests are kept in the manifest (``output_fps``, on its
  first line) so that a hit in a later process learns them without hashing anything;
* **read-only memory maps** (hits with ``mmap_mode='r'``): when a later call fingerprints
  the very array a hit restored, and :mod:`checkpoint_magic.fingerprint.frozen` proves its
  file unchanged since the store verified it, the digest just computed is the digest of
  the stored output (:func:`observe`).

A small in-process registry (at most :data:`REGISTRY_MAX` digests) maps those digests to
the entry that produced them; it is filled by commits and hits of this process. Limits: a
value that never passed through a commit or a hit of this process has no lineage; larger
writable outputs (a 100 MiB frame returned by a miss) have none either, because proving
them unchanged would cost a second hash of every large result; outputs under
:data:`MIN_SIZE` serialized bytes (numbers, short strings) are too common to attribute.

Examples
--------
>>> register("/store", {"kind": "function", "namespace": "m.load", "key": "k1", "code": "c1",
...     "created": 0.0, "output_fps": {"return": "f" * 32}})
>>> [link["from"]["namespace"] for link in links("/store", "k2", {"a": "f" * 32, "b": "0"})]
['m.load']
>>> describe({"input": "a", "from": {"namespace": "m.load", "code": "c1ab2345ff",
...     "output": "return", "created": 0.0}}, now=7200.0)
'input a came from m.load@c1ab2345, 2 h ago'
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from ..fingerprint.frozen import known_digest
from ..fingerprint.values import HASH_SCHEME_VERSION, QuietFingerprinter
from ..ui.units import format_ago

__all__ = [
    "BUFFER_MAX",
    "MIN_SIZE",
    "OBJECT_MAX",
    "REGISTRY_MAX",
    "annotate",
    "describe",
    "links",
    "observe",
    "register",
    "restored",
    "watching",
]

logger = logging.getLogger(__name__)

#: Outputs smaller than this, serialized (numbers, short strings), get no lineage.
MIN_SIZE = 64
#: Arrays and pandas objects up to this size, serialized, are fingerprinted at commit:
#: hashing runs at ~20-30 GB/s, a few milliseconds for 64 MiB next to the ~20 ms of writing
#: them (about a tenth more on such a miss); larger results would pay the same share.
BUFFER_MAX = 64 << 20
#: Other values up to this size are fingerprinted at commit (walking Python objects costs
#: several times their pickling).
OBJECT_MAX = 4 << 10
#: Digests (and memory-mapped arrays) remembered at most; the oldest go first.
REGISTRY_MAX = 4096
#: The fields of a producer a lineage record keeps (then ``output``).
_FIELDS = ("namespace", "kind", "key", "code", "created")


class Producer(NamedTuple):
    """The entry that produced an output, as the registry keeps it.

    Attributes
    ----------
    location : str
        Its store's location (lineage links entries of one store only).
    namespace, kind, key, code, created : object
        The :data:`_FIELDS` of its manifest.
    output : str
        The output's name.
    """

    location: str
    namespace: Any
    kind: Any
    key: Any
    code: Any
    created: Any
    output: str


# output digest -> its producer
_by_digest: dict[str, Producer] = {}
# id(memory map restored by a hit) -> (weak reference, its producer)
_by_id: dict[int, tuple[weakref.ref[Any], Producer]] = {}
_lock = threading.RLock()  # reentrant: a weak reference's callback may run inside
#: True while read-only memory maps restored by hits are remembered: only then does
#: fingerprinting a call's inputs look them up (:func:`observe`).
watching = False


def _evict(table: dict[Any, Any]) -> None:
    """Forget the oldest quarter of a full table (``list`` copies the keys atomically)."""
    if len(table) >= REGISTRY_MAX:
        for key in list(table)[: REGISTRY_MAX // 4]:
            table.pop(key, None)


def _keep(digest: str, producer: Producer) -> None:
    _evict(_by_digest)
    _by_digest[digest] = producer  # the latest producer of equal content wins


def _cheap_limit(value: Any) -> int:
    """How large (serialized) ``value`` may be for its fingerprint to be cheap at commit."""
    if isinstance(value, np.ndarray):
        return BUFFER_MAX if value.dtype != object else OBJECT_MAX
    module = type(value).__module__  # "pandas" itself for pandas 3's frames and series
    if module == "pandas" or module.startswith("pandas."):
        return BUFFER_MAX
    return OBJECT_MAX


def annotate(manifest: dict[str, Any], outputs: Mapping[str, Any], location: str) -> None:
    """Fill a manifest about to be committed: output digests (cheap ones) and the lineage.

    Each output whose value is cheap to fingerprint (see the module's description) gets its
    value fingerprint in ``manifest["output_fps"]``; front ends' reserved outputs (names
    starting with ``__``) are left out. The inputs whose fingerprint a known output has are
    listed in ``manifest["lineage"]``. Either field is absent when it would be empty.

    Parameters
    ----------
    manifest : dict
        The manifest (``key``, ``inputs``, ``outputs`` records by name); changed in place.
    outputs : Mapping of str to object
        The values being stored, by name.
    location : str
        The store's location: lineage only links entries of one store.

    Examples
    --------
    >>> m = {"key": "k", "inputs": {}, "outputs": {"return": {"size": 100}, "n": {"size": 5}}}
    >>> annotate(m, {"return": list(range(30)), "n": 3}, "/store")
    >>> list(m["output_fps"]), len(m["output_fps"]["return"]), "lineage" in m
    (['return'], 32, False)
    """
    digests = {}
    for name, rec in manifest["outputs"].items():
        size = rec.get("size", 0)
        if size < MIN_SIZE or name[:2] == "__" or name not in outputs:
            continue
        value = outputs[name]
        if size > _cheap_limit(value):
            continue
        fp = QuietFingerprinter()
        try:
            digest = fp.fingerprint(value)
        # Lineage is a courtesy: whatever a value's own methods raise while it is walked
        # (a __reduce__ that fails, a recursion too deep), the entry is stored without it.
        except Exception as exc:
            logger.debug("no lineage digest for output %s: %s", name, exc)
            continue
        if not fp.problems:  # a partly walked value is no identity
            digests[name] = digest
    if digests:
        manifest["output_fps"] = digests
    try:
        found = links(location, manifest["key"], manifest.get("inputs") or {})
    except Exception as exc:  # a courtesy too: never the reason a result is not stored
        logger.debug("no lineage for %s: %s", manifest.get("key"), exc)
        found = []
    if found:
        manifest["lineage"] = found


def links(location: str, key: str, input_fps: Mapping[str, str]) -> list[dict[str, Any]]:
    """The lineage of an entry: its inputs whose fingerprint is a known output's digest.

    Parameters
    ----------
    location : str
        The store's location (producers of other stores are not linked).
    key : str
        The entry's own key (an entry is not its own producer).
    input_fps : Mapping of str to str
        The entry's input fingerprints, by name.

    Returns
    -------
    list of dict
        ``{"input": name, "from": producer}`` sorted by input name; the producer has
        ``namespace``, ``kind``, ``key``, ``output``, ``code`` and ``created``.
    """
    if not _by_digest:
        return []
    found: list[dict[str, Any]] = []
    for name, digest in input_fps.items():
        known = _by_digest.get(digest)
        if known is not None and known.location == location and known.key != key:
            source = {field: getattr(known, field) for field in _FIELDS}
            found.append({"input": name, "from": {**source, "output": known.output}})
    if len(found) > 1:
        found.sort(key=lambda link: link["input"])
    return found


def register(location: str, manifest: Mapping[str, Any]) -> None:
    """Remember the output digests of an entry just committed (see :func:`annotate`).

    Parameters
    ----------
    location : str
        The store's location.
    manifest : Mapping of str to object
        The committed manifest.
    """
    digests = manifest.get("output_fps")
    if digests:
        source = {field: manifest.get(field) for field in _FIELDS}
        for name, digest in digests.items():
            _keep(digest, Producer(location=location, output=name, **source))


def restored(
    location: str, kind: str, code: str, manifest: Mapping[str, Any], outputs: Mapping[str, Any]
) -> None:
    """Remember the outputs a hit restored: the digests its manifest records, read-only maps.

    Parameters
    ----------
    location : str
        The store's location.
    kind : str
        The kind of the entry (the first line of a manifest does not hold it).
    code : str
        The code fingerprint the entry was looked up with.
    manifest : Mapping of str to object
        The entry's manifest (its first line suffices).
    outputs : Mapping of str to object
        The restored values, by name.
    """
    digests = manifest.get("output_fps") or {}
    source = (location, manifest.get("namespace"), kind, manifest.get("key"), code)
    created = manifest.get("created")
    for name, digest in digests.items():
        if isinstance(digest, str):
            _keep(digest, Producer(*source, created, name))
    for name, value in outputs.items():
        if type(value) is not np.memmap or value.flags.writeable or name[:2] == "__":
            continue
        if name not in digests:  # known already: its digest was recorded at commit
            _watch(value, Producer(*source, created, name))


def _watch(value: np.memmap, producer: Producer) -> None:
    """Remember a read-only map a hit restored, until it is garbage collected."""
    global watching
    key = id(value)
    with _lock:
        _evict(_by_id)
        _by_id[key] = (weakref.ref(value, functools.partial(_forget, key=key)), producer)
        watching = True


def _forget(ref: weakref.ref[Any], key: int) -> None:
    global watching
    with _lock:
        entry = _by_id.get(key)
        if entry is not None and entry[0] is ref:
            del _by_id[key]
        watching = bool(_by_id)


def observe(values: Mapping[str, Any], input_fps: dict[str, str]) -> dict[str, str]:
    """Learn the digests of restored read-only memory maps a call's inputs were just given.

    An input that is the very array a hit restored with ``mmap_mode='r'``, and that
    :mod:`checkpoint_magic.fingerprint.frozen` still proves unchanged (read-only, same
    geometry, its file's stat signature as verified), has as fingerprint the digest of the
    stored output: it is remembered like one recorded at commit.

    Parameters
    ----------
    values : Mapping of str to object
        The inputs, by name.
    input_fps : dict of str to str
        Their fingerprints, just computed.

    Returns
    -------
    dict of str to str
        ``input_fps``, unchanged.
    """
    for name, value in values.items():
        known = _by_id.get(id(value))
        if known is None or known[0]() is not value or name not in input_fps:
            continue
        if isinstance(value, np.memmap) and known_digest(value, HASH_SCHEME_VERSION) is not None:
            _keep(input_fps[name], known[1])
    return input_fps


def describe(link: Mapping[str, Any], now: float | None = None) -> str:
    """One line about a lineage record: ``input a came from m.load@1f2e3d4c, 2 h ago``.

    Parameters
    ----------
    link : Mapping of str to object
        A record of a manifest's ``lineage`` list.
    now : float, optional
        The current time (seconds since the epoch); ``time.time()`` by default.

    Returns
    -------
    str
        The line; the producer's output is named unless it is a function's ``return``.
    """
    source = link.get("from") or {}
    output = source.get("output")
    what = f"{source.get('namespace')}@{str(source.get('code') or '?')[:8]}"
    if output and output != "return":
        what = f"{output} of {what}"
    created = source.get("created")
    when = format_ago(float(created), now) if isinstance(created, (int, float)) else "unknown"
    return f"input {link.get('input')} came from {what}, {when}"
