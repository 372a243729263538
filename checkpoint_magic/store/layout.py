"""The names of everything in a store: the one owner of every file and folder name.

A store is a tree of *names*: ``/``-separated paths relative to its root, which a backend
(:mod:`checkpoint_magic.store.backends`) maps to files or objects::

    FORMAT                         store format version (JSON)
    .gitignore                     ``*``: a store never shows in ``git status``
    objects/ab/<digest>            immutable blobs, named by the xxh3-128 of their bytes
    entries/<namespace>/ab/<key>   one small manifest per cached computation (``ab``: the
                                   key's first two characters, its *shard*)
    state/<namespace>/ab/<key>.hits   usage record of an entry (hit count and last use)
    state/<namespace>/ab/<key>.pin    present while the entry is pinned (never evicted)
    state/<namespace>/last-miss.json, latest-output.json   per-namespace records
    state/.entry-index-1.sqlite3   the entry index (a cache of the manifests; see ``store.index``)
    tmp/<pid>-<32 hex>             staging (unpredictable names); garbage after a crash
    tmp/gc-<32 hex>                a blob garbage collection is about to free
    leases/<kind>-<32 hex>         a commit or a gc in flight (see ``store.leases``)
    leases/flight-<key>-<n>        a computation in flight (see ``store.singleflight``)

Entries and their records are *sharded* by the first two characters of their key, as git
shards its objects: a commit changes one folder of a few hundred files, not a folder of every
entry of the namespace, so a tool that finds a folder changed lists a few hundred files again,
not a hundred thousand. Stores of format 1 (written before shards) keep every manifest and
record directly in the namespace folder; ``sharded=False`` names those, and
``checkpoint-magic upgrade`` moves them into shards (:mod:`checkpoint_magic.store.upgrade`).

Nothing else in the package spells these names; the tools recognise what they may remove
through :func:`digest_of`, :func:`is_staging` and :func:`state_kind`.

Examples
--------
>>> blob("0123456789abcdef0123456789abcdef")
'objects/01/0123456789abcdef0123456789abcdef'
>>> entry("m.f", "0a1b"), entry_state("m.f", "0a1b", HITS)
('entries/m.f/0a/0a1b', 'state/m.f/0a/0a1b.hits')
>>> entry("m.f", "0a1b", sharded=False)
'entries/m.f/0a1b'
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
    "INDEX",
    "INDEX_FILES",
    "INPUT_MEMORY",
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
    "entry_in",
    "entry_state",
    "flight_generation",
    "flight_lease",
    "is_digest",
    "is_staging",
    "join",
    "lease",
    "namespace_dir",
    "namespace_record",
    "shard",
    "shardable",
    "state_in",
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
INPUT_MEMORY = "inputs.json"
#: Per-namespace records under ``state/<namespace>/``.
NAMESPACE_RECORDS = (LAST_MISS, LATEST_OUTPUT, INPUT_MEMORY)
#: The entry index (SQLite): a file directly in ``state/``, where no namespace folder can
#: collide with it (namespace folders never start with a dot). The number is its schema.
INDEX = f"{STATE}/.entry-index-1.sqlite3"
#: The index and the files SQLite keeps next to it (write-ahead log, shared memory).
INDEX_FILES = (INDEX, f"{INDEX}-wal", f"{INDEX}-shm")

_DIGEST = re.compile(r"[0-9a-f]{32}")
_STAGING = re.compile(r"(?:[0-9]+|gc)-[0-9a-f]{32}")
_ENTRY_RECORD = re.compile(r"([0-9a-f]{32})(\.hits|\.pin)")
# Temporary names of state writers before they staged through tmp/ (left by crashes).
_LEGACY_TEMP = re.compile(r"\.last-miss\.[0-9]+\.tmp|latest-output\.json\.[0-9]+-[0-9a-f]{32}\.tmp")


def join(*parts: str) -> str:
    """Join name parts with ``/`` (store names are the same on every platform).

    Parameters
    ----------
    *parts : str
        Name parts, none empty.

    Returns
    -------
    str
        The joined name.

    Examples
    --------
    >>> join(STATE, "m.f", LAST_MISS)
    'state/m.f/last-miss.json'
    """
    return "/".join(parts)


@functools.lru_cache(maxsize=4096)
def namespace_dir(namespace: str) -> str:
    """A folder name for ``namespace``: readable, unique, safe on every filesystem.

    Parameters
    ----------
    namespace : str
        The namespace (the function's qualified name, or a cell's).

    Returns
    -------
    str
        ``namespace`` itself if it is safe, else a sanitized prefix plus a hash of it.

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
    """The name of a blob: ``objects/<first two hex digits>/<digest>``.

    Parameters
    ----------
    digest : str
        The blob's content hash (32 hex digits).

    Returns
    -------
    str
        The name, relative to the store root.
    """
    return f"{OBJECTS}/{digest[:2]}/{digest}"


def entry_folder(namespace: str) -> str:
    """The folder of a namespace's manifests: ``entries/<namespace folder>``.

    Parameters
    ----------
    namespace : str
        The namespace (the function's qualified name, or a cell's).

    Returns
    -------
    str
        The name, relative to the store root.
    """
    return f"{ENTRIES}/{namespace_dir(namespace)}"


def shard(key: str) -> str:
    """The shard of a key: its first two characters (the folder its manifest is in).

    Parameters
    ----------
    key : str
        The entry's key (32 hex digits).

    Returns
    -------
    str
        ``key[:2]``.

    Examples
    --------
    >>> shard("0123456789abcdef0123456789abcdef")
    '01'
    """
    return key[:2]


def shardable(key: str) -> bool:
    """Whether a manifest named ``key`` can live in its shard folder (``key`` is longer).

    A flat file of two characters or fewer would be its own shard folder: no key the store
    writes (32 hex digits) is one, and nothing moves it into a shard.

    Parameters
    ----------
    key : str
        A file name in a namespace folder.

    Returns
    -------
    bool
        ``len(key) > 2``.

    Examples
    --------
    >>> shardable("0123456789abcdef0123456789abcdef"), shardable("ab")
    (True, False)
    """
    return len(key) > 2


def entry_in(ns_dir: str, key: str, *, sharded: bool = True) -> str:
    """The name of one entry's manifest, by namespace folder: ``entries/<ns_dir>/<shard>/<key>``.

    Parameters
    ----------
    ns_dir : str
        A namespace folder, as :func:`namespace_dir` returns it.
    key : str
        The entry's key (32 hex digits).
    sharded : bool, default True
        ``False`` for a store of format 1: ``entries/<ns_dir>/<key>``.

    Returns
    -------
    str
        The name, relative to the store root.

    Examples
    --------
    >>> entry_in("m.f", "0a1b"), entry_in("m.f", "0a1b", sharded=False)
    ('entries/m.f/0a/0a1b', 'entries/m.f/0a1b')
    """
    return f"{ENTRIES}/{ns_dir}/{key[:2]}/{key}" if sharded else f"{ENTRIES}/{ns_dir}/{key}"


def entry(namespace: str, key: str, *, sharded: bool = True) -> str:
    """The name of one entry's manifest: ``entries/<namespace folder>/<shard>/<key>``.

    Parameters
    ----------
    namespace : str
        The namespace (the function's qualified name, or a cell's).
    key : str
        The entry's key (32 hex digits).
    sharded : bool, default True
        ``False`` for a store of format 1 (no shard folder).

    Returns
    -------
    str
        The name, relative to the store root.
    """
    ns_dir = namespace_dir(namespace)  # entry_in, inlined: a hit asks for this name
    return f"{ENTRIES}/{ns_dir}/{key[:2]}/{key}" if sharded else f"{ENTRIES}/{ns_dir}/{key}"


def state_folder(ns_dir: str) -> str:
    """The folder of a namespace's state records: ``state/<namespace folder>``.

    Parameters
    ----------
    ns_dir : str
        A namespace folder, as :func:`namespace_dir` returns it.

    Returns
    -------
    str
        The name, relative to the store root.
    """
    return f"{STATE}/{ns_dir}"


def state_in(ns_dir: str, key: str, suffix: str, *, sharded: bool = True) -> str:
    """An entry's state record, by namespace folder: ``state/<ns_dir>/<shard>/<key><suffix>``.

    Parameters
    ----------
    ns_dir : str
        A namespace folder, as :func:`namespace_dir` returns it.
    key : str
        The entry's key (32 hex digits).
    suffix : str
        :data:`HITS` (usage record) or :data:`PIN` (pin marker).
    sharded : bool, default True
        ``False`` for a store of format 1: ``state/<ns_dir>/<key><suffix>``.

    Returns
    -------
    str
        The name, relative to the store root.

    Examples
    --------
    >>> state_in("m.f", "0a1b", PIN), state_in("m.f", "0a1b", PIN, sharded=False)
    ('state/m.f/0a/0a1b.pin', 'state/m.f/0a1b.pin')
    """
    if sharded:
        return f"{STATE}/{ns_dir}/{key[:2]}/{key}{suffix}"
    return f"{STATE}/{ns_dir}/{key}{suffix}"


def entry_state(namespace: str, key: str, suffix: str, *, sharded: bool = True) -> str:
    """The name of an entry's state record: ``state/<namespace folder>/<shard>/<key><suffix>``.

    Parameters
    ----------
    namespace : str
        The namespace (the function's qualified name, or a cell's).
    key : str
        The entry's key (32 hex digits).
    suffix : str
        :data:`HITS` (usage record) or :data:`PIN` (pin marker).
    sharded : bool, default True
        ``False`` for a store of format 1 (no shard folder).

    Returns
    -------
    str
        The name, relative to the store root.
    """
    ns_dir = namespace_dir(namespace)  # state_in, inlined: every hit asks for this name
    if sharded:
        return f"{STATE}/{ns_dir}/{key[:2]}/{key}{suffix}"
    return f"{STATE}/{ns_dir}/{key}{suffix}"


def namespace_record(namespace: str, name: str) -> str:
    """The name of a namespace's record: ``state/<namespace folder>/<name>``.

    Parameters
    ----------
    namespace : str
        The namespace (the function's qualified name, or a cell's).
    name : str
        One of :data:`NAMESPACE_RECORDS`.

    Returns
    -------
    str
        The name, relative to the store root.
    """
    return f"{STATE}/{namespace_dir(namespace)}/{name}"


def staging() -> str:
    """A new, unpredictable staging name: ``tmp/<pid>-<32 random hex>``.

    Returns
    -------
    str
        A name no other writer uses (the pid lets a sweep tell live writers' files).
    """
    return f"{TMP}/{os.getpid()}-{uuid.uuid4().hex}"


def trash() -> str:
    """A new name for a blob garbage collection is about to free: ``tmp/gc-<32 hex>``.

    Returns
    -------
    str
        A fresh name, relative to the store root.
    """
    return f"{TMP}/gc-{uuid.uuid4().hex}"


def lease(kind: str) -> str:
    """A new lease name: ``leases/<kind>-<32 random hex>``.

    Parameters
    ----------
    kind : str
        What the lease is for (``"commit"`` or ``"gc"``).

    Returns
    -------
    str
        A fresh name, relative to the store root.
    """
    return f"{LEASES}/{kind}-{uuid.uuid4().hex}"


def flight_lease(key: str, generation: int) -> str:
    """``leases/flight-<key>-<generation>``: the single-flight lease of one computation.

    Parameters
    ----------
    key : str
        The entry's key (32 hex digits).
    generation : int
        The lease's generation (a new one is taken over a stale lease).

    Returns
    -------
    str
        The name, relative to the store root.

    Examples
    --------
    >>> flight_lease("0123456789abcdef0123456789abcdef", 0)
    'leases/flight-0123456789abcdef0123456789abcdef-0'
    """
    return f"{LEASES}/flight-{key}-{generation}"


def flight_generation(leaf: str, key: str) -> int | None:
    """The generation of ``leases/<leaf>`` if it is a flight lease of ``key``.

    Parameters
    ----------
    leaf : str
        A file name in ``leases/``.
    key : str
        The entry's key (32 hex digits).

    Returns
    -------
    int or None
        The generation, ``None`` if ``leaf`` is not a flight lease of ``key``.

    Examples
    --------
    >>> flight_generation("flight-abc-3", "abc"), flight_generation("commit-abc", "abc")
    (3, None)
    """
    prefix = f"flight-{key}-"
    rest = leaf[len(prefix) :] if leaf.startswith(prefix) else ""
    return int(rest) if rest.isdigit() else None


def digest_of(relpath: str) -> str | None:
    """The digest ``objects/<relpath>`` is named by.

    Parameters
    ----------
    relpath : str
        A path relative to ``objects/``.

    Returns
    -------
    str or None
        The digest, ``None`` if the store never writes that name (tools must leave it).

    Examples
    --------
    >>> digest_of("01/0123456789abcdef0123456789abcdef"), digest_of("01/notes.txt")
    ('0123456789abcdef0123456789abcdef', None)
    """
    sub, _, name = relpath.partition("/")
    return name if _DIGEST.fullmatch(name) and name[:2] == sub else None


def is_digest(name: str) -> bool:
    """Whether ``name`` looks like a blob digest (32 lowercase hex digits).

    Parameters
    ----------
    name : str
        A file name under ``objects/``.

    Returns
    -------
    bool
        True if it is 32 lowercase hexadecimal digits.
    """
    return _DIGEST.fullmatch(name) is not None


def is_staging(name: str) -> bool:
    """Whether ``tmp/<name>`` is a name the store writes (``<pid>-<32 hex>``, ``gc-<32 hex>``).

    Parameters
    ----------
    name : str
        A file name in ``tmp/``.

    Returns
    -------
    bool
        True for those two patterns.
    """
    return _STAGING.fullmatch(name) is not None


def state_kind(name: str) -> tuple[str, str]:
    """What ``state/<namespace>/<name>`` is.

    ``("entry", key)`` for a usage or pin record, ``("namespace", name)`` for a
    namespace's record, ``("temp", name)`` for a temporary name earlier versions wrote, and
    ``("", "")`` for a name the store never writes (never removed).

    Parameters
    ----------
    name : str
        A file name in ``state/<namespace>/``.

    Returns
    -------
    tuple of (str, str)
        ``(kind, detail)`` as above.

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
