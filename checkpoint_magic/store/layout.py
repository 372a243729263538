"""The names of everything in a store: the one owner of every file and folder name.

A store is a tree of *names*: ``/``-separated paths relative to its root, which a backend
(:mod:`checkpoint_magic.store.backends`) maps to files or objects::

    FORMAT                         store format version (JSON)
    .gitignore                     ``*``: a store never shows in ``git status``
    objects/ab/<digest>            immutable blobs, named by the xxh3-128 of their bytes
    entries/<namespace>/<key>      one small manifest per cached computation
    state/<namespace>/<key>.hits   usage record of an entry (hit count and last use)
    state/<namespace>/<key>.pin    present while the entry is pinned (never evicted)
    state/<namespace>/last-miss.json, latest-output.json   per-namespace records
    tmp/<pid>-<32 hex>             staging (unpredictable names); garbage after a crash
    tmp/gc-<32 hex>                a blob garbage collection is about to free
    leases/<kind>-<32 hex>         a commit or a gc in flight (see ``store.leases``)
    leases/flight-<key>-<n>        a computation in flight (see ``store.singleflight``)

Nothing else in the package spells these names; the tools recognise what they may remove
through :func:`digest_of`, :func:`is_staging` and :func:`state_kind`.

Examples
--------
>>> blob("0123456789abcdef0123456789abcdef")
'objects/01/0123456789abcdef0123456789abcdef'
>>> entry("m.f", "k1"), entry_state("m.f", "k1", HITS)
('entries/m.f/k1', 'state/m.f/k1.hits')
"""

from __future__ import annotations

import functools
import os
import re
import uuid

import xxhash

__all__ = [
    "ENTRIES",
    "FORMAT",
    "GITIGNORE",
    "HITS",
    "LAST_MISS",
    "LATEST_OUTPUT",
    "LEASES",
    "NAMESPACE_RECORDS",
    "OBJECTS",
    "PIN",
    "STATE",
    "TMP",
    "TOP_FOLDERS",
    "blob",
    "digest_of",
    "entry",
    "entry_folder",
    "entry_state",
    "flight_generation",
    "flight_lease",
    "is_digest",
    "is_staging",
    "join",
    "lease",
    "namespace_dir",
    "namespace_record",
    "staging",
    "state_folder",
    "state_kind",
    "trash",
]

FORMAT = "FORMAT"
GITIGNORE = ".gitignore"
OBJECTS = "objects"
ENTRIES = "entries"
STATE = "state"
TMP = "tmp"
LEASES = "leases"
#: The folders a store creates under its root.
TOP_FOLDERS = (OBJECTS, ENTRIES, STATE, TMP, LEASES)
HITS = ".hits"
PIN = ".pin"
LAST_MISS = "last-miss.json"
LATEST_OUTPUT = "latest-output.json"
#: Per-namespace records under ``state/<namespace>/``.
NAMESPACE_RECORDS = (LAST_MISS, LATEST_OUTPUT)

_DIGEST = re.compile(r"[0-9a-f]{32}")
_STAGING = re.compile(r"(?:[0-9]+|gc)-[0-9a-f]{32}")
_ENTRY_RECORD = re.compile(r"([0-9a-f]{32})(\.hits|\.pin)")
# Temporary names of state writers before they staged through tmp/ (left by crashes).
_LEGACY_TEMP = re.compile(r"\.last-miss\.[0-9]+\.tmp|latest-output\.json\.[0-9]+-[0-9a-f]{32}\.tmp")


def join(*parts: str) -> str:
    """Join name parts with ``/`` (store names are the same on every platform)."""
    return "/".join(parts)


@functools.lru_cache(maxsize=4096)
def namespace_dir(namespace: str) -> str:
    """A folder name for ``namespace``: readable, unique, safe on every filesystem.

    Examples
    --------
    >>> namespace_dir("mod.f"), namespace_dir("__main__:cell <1>")
    ('mod.f', '__main___cell__1_-781f71b6')
    """
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", namespace)[:96].lstrip(".") or "_"
    if safe != namespace:
        safe = f"{safe}-{xxhash.xxh3_64_hexdigest(namespace.encode('utf-8'))[:8]}"
    return safe


def blob(digest: str) -> str:
    """``objects/<first two hex digits>/<digest>``."""
    return f"{OBJECTS}/{digest[:2]}/{digest}"


def entry_folder(namespace: str) -> str:
    """``entries/<namespace folder>``."""
    return f"{ENTRIES}/{namespace_dir(namespace)}"


def entry(namespace: str, key: str) -> str:
    """``entries/<namespace folder>/<key>``: the manifest of one entry."""
    return f"{ENTRIES}/{namespace_dir(namespace)}/{key}"


def state_folder(ns_dir: str) -> str:
    """``state/<namespace folder>`` (``ns_dir`` is already a :func:`namespace_dir`)."""
    return f"{STATE}/{ns_dir}"


def entry_state(namespace: str, key: str, suffix: str) -> str:
    """``state/<namespace folder>/<key><suffix>`` (``suffix`` is :data:`HITS` or :data:`PIN`)."""
    return f"{STATE}/{namespace_dir(namespace)}/{key}{suffix}"


def namespace_record(namespace: str, name: str) -> str:
    """``state/<namespace folder>/<name>`` (``name`` is one of :data:`NAMESPACE_RECORDS`)."""
    return f"{STATE}/{namespace_dir(namespace)}/{name}"


def staging() -> str:
    """A new, unpredictable staging name: ``tmp/<pid>-<32 random hex>``."""
    return f"{TMP}/{os.getpid()}-{uuid.uuid4().hex}"


def trash() -> str:
    """A new name for a blob garbage collection is about to free: ``tmp/gc-<32 random hex>``."""
    return f"{TMP}/gc-{uuid.uuid4().hex}"


def lease(kind: str) -> str:
    """A new lease name: ``leases/<kind>-<32 random hex>``."""
    return f"{LEASES}/{kind}-{uuid.uuid4().hex}"


def flight_lease(key: str, generation: int) -> str:
    """``leases/flight-<key>-<generation>``: the single-flight lease of one computation.

    Examples
    --------
    >>> flight_lease("0123456789abcdef0123456789abcdef", 0)
    'leases/flight-0123456789abcdef0123456789abcdef-0'
    """
    return f"{LEASES}/flight-{key}-{generation}"


def flight_generation(leaf: str, key: str) -> int | None:
    """The generation of ``leases/<leaf>`` if it is a flight lease of ``key``, else ``None``."""
    prefix = f"flight-{key}-"
    rest = leaf[len(prefix) :] if leaf.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def digest_of(relpath: str) -> str | None:
    """The digest ``objects/<relpath>`` is named by; ``None`` if the store never writes that name.

    Examples
    --------
    >>> digest_of("01/0123456789abcdef0123456789abcdef"), digest_of("01/notes.txt")
    ('0123456789abcdef0123456789abcdef', None)
    """
    sub, _, name = relpath.partition("/")
    return name if _DIGEST.fullmatch(name) and name[:2] == sub else None


def is_digest(name: str) -> bool:
    """Whether ``name`` looks like a blob digest (32 lowercase hex digits)."""
    return _DIGEST.fullmatch(name) is not None


def is_staging(name: str) -> bool:
    """Whether ``tmp/<name>`` is a name the store writes (``<pid>-<32 hex>`` or ``gc-<32 hex>``)."""
    return _STAGING.fullmatch(name) is not None


def state_kind(name: str) -> tuple[str, str]:
    """What ``state/<namespace>/<name>`` is.

    ``("entry", key)`` for a usage or pin record, ``("namespace", name)`` for a
    namespace's record, ``("temp", name)`` for a temporary name earlier versions wrote, and
    ``("", "")`` for a name the store never writes (never removed).

    Examples
    --------
    >>> state_kind("0123456789abcdef0123456789abcdef.hits")
    ('entry', '0123456789abcdef0123456789abcdef')
    >>> state_kind("last-miss.json"), state_kind("notes.txt")
    (('namespace', 'last-miss.json'), ('', ''))
    """
    if match := _ENTRY_RECORD.fullmatch(name):
        return "entry", match.group(1)
    if name in NAMESPACE_RECORDS:
        return "namespace", name
    if _LEGACY_TEMP.fullmatch(name):
        return "temp", name
    return "", ""
