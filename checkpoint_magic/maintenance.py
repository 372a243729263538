"""Store maintenance: list entries, disk usage, garbage collection under budgets, verify, pin.

This module owns what ``checkpoint-magic ls|du|gc|verify|pin`` (and the notebook's
``%checkpoint_store``) do to a store; it never unpickles anything (manifests are JSON,
blobs are only hashed), so inspecting a store someone else wrote is safe. *Loading* an
entry is not: a pickled value runs code when it is read, so loading results from a store
you did not write yourself, without signed entries (``CHECKPOINT_MAGIC_SECRET``), is
running its author's code.

Budgets (:func:`gc`): entries are evicted least recently used first (by the use the store
records on every hit, never by file access time), never a pinned one; then blobs no
manifest refers to are freed (a blob shared by several entries survives while any of
them remains). Files modified within the last ``grace`` seconds (10 minutes by default)
are never removed, because a concurrent commit writes its blobs before its manifest.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"namespace": "demo.f", "outputs": {"return": record}})
>>> [(e.namespace, e.key, e.size) for e in list_entries(store)]
[('demo.f', 'a1b2', 100...)]
>>> gc(store, max_size=0, grace=0).evicted[0].key
'a1b2'
>>> du(store).objects_bytes
0
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import xxhash

from . import config
from .exceptions import InvalidArgumentError
from .store import _MANIFEST_MAGIC, Store, _namespace_dir, _sign

__all__ = [
    "GRACE_SECONDS",
    "ClearReport",
    "DuReport",
    "EntryInfo",
    "GcReport",
    "NamespaceSummary",
    "Problem",
    "VerifyReport",
    "clear",
    "du",
    "find_entry",
    "gc",
    "list_entries",
    "namespaces",
    "parse_age",
    "parse_size",
    "pin",
    "resolve_namespace",
    "stored_size",
    "summarize",
    "unpin",
    "verify",
]

logger = logging.getLogger(__name__)

#: Files modified more recently than this (seconds) are never removed: a commit may be in progress.
GRACE_SECONDS = 600.0
_DIGEST = re.compile(r"[0-9a-f]{32}")
_CHUNK = 8 << 20


# ---------------------------------------------------------------------------------------- parsing
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgtp]?)(i?)(b?)\s*$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(s|m|min|h|d|w)\s*$", re.IGNORECASE)


def parse_size(value: str | int | float) -> int:
    """Bytes from ``10GB``, ``500MiB``, ``1.5G`` or a number of bytes.

    ``KB/MB/GB/TB`` are powers of 1000; ``KiB/MiB/GiB/TiB`` and the bare letters
    ``K/M/G/T`` (as in ``du -h``) are powers of 1024.

    Examples
    --------
    >>> parse_size("10GB"), parse_size("500MiB"), parse_size("1.5G"), parse_size(4096)
    (10000000000, 524288000, 1610612736, 4096)
    >>> parse_size("ten gigs")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid size 'ten gigs': use a number of bytes or a number with a unit, e.g. 500MB, 10GB, 1.5G, 2GiB
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"invalid size {value!r}: use a number of bytes or e.g. '10GB'")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise InvalidArgumentError(f"invalid size {value!r}: a size cannot be negative")
        return int(value)
    match = _SIZE_RE.match(str(value))
    if not match:
        raise InvalidArgumentError(
            f"invalid size {value!r}: use a number of bytes or a number with a unit, e.g. 500MB, 10GB, 1.5G, 2GiB"
        )
    number, prefix, binary, byte = match.groups()
    power = "kmgtp".find(prefix.lower()) + 1 if prefix else 0
    if binary and not prefix:
        raise InvalidArgumentError(f"invalid size {value!r}: 'i' needs a prefix, as in KiB, MiB, GiB")
    base = 1000 if (prefix and byte and not binary) else 1024
    return int(float(number) * base**power)


def parse_age(value: str | int | float) -> float:
    """Seconds from ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` (or a number of seconds).

    Examples
    --------
    >>> parse_age("30d"), parse_age("12h"), parse_age("90m"), parse_age(5)
    (2592000.0, 43200.0, 5400.0, 5.0)
    >>> parse_age("30")
    Traceback (most recent call last):
    ...
    checkpoint_magic.exceptions.InvalidArgumentError: invalid age '30': give a unit, e.g. 30d (days), 12h, 90m, 45s or 2w
    """
    if isinstance(value, bool):
        raise InvalidArgumentError(f"invalid age {value!r}: use e.g. '30d'")
    if isinstance(value, (int, float)):
        if value < 0 or value != value:
            raise InvalidArgumentError(f"invalid age {value!r}: an age cannot be negative")
        return float(value)
    match = _AGE_RE.match(str(value))
    if not match:
        raise InvalidArgumentError(f"invalid age {value!r}: give a unit, e.g. 30d (days), 12h, 90m, 45s or 2w")
    return float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]


# ---------------------------------------------------------------------------------------- model
@dataclass
class EntryInfo:
    """One cached computation, as listed by :func:`list_entries`.

    ``last_used`` is the last recorded hit (the creation time if never hit); ``saved``
    is the compute time the cache has saved so far (``hits * duration``).
    """

    namespace: str
    key: str
    kind: str
    code: str
    inputs: dict[str, str]
    outputs: list[str]
    size: int
    created: float
    last_used: float
    hits: int
    duration: float
    pinned: bool
    blobs: dict[str, int] = field(default_factory=dict, repr=False)
    manifest: dict[str, Any] = field(default_factory=dict, repr=False)
    path: Path | None = field(default=None, repr=False)
    file_size: int = field(default=0, repr=False)
    mtime_ns: int = field(default=0, repr=False)

    @property
    def saved(self) -> float:
        """Compute time saved by hits so far, in seconds."""
        return self.hits * self.duration

    @property
    def ns_dir(self) -> str:
        """The entry's namespace directory under ``entries/``."""
        return self.path.parent.name if self.path is not None else _namespace_dir(self.namespace)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (without the raw manifest)."""
        return {
            "namespace": self.namespace,
            "key": self.key,
            "kind": self.kind,
            "code": self.code,
            "inputs": dict(self.inputs),
            "outputs": list(self.outputs),
            "size": self.size,
            "created": self.created,
            "last_used": self.last_used,
            "hits": self.hits,
            "duration": self.duration,
            "saved": self.saved,
            "pinned": self.pinned,
            "blobs": dict(self.blobs),
        }


@dataclass
class NamespaceSummary:
    """The entries of one function, block or cell, grouped (see :func:`summarize`)."""

    namespace: str
    kind: str
    entries: int
    versions: int
    inputs: list[str]
    size: int
    created: float
    last_used: float
    hits: int
    saved: float
    pinned: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)


@dataclass
class DuReport:
    """Bytes and files under each part of the store (see :func:`du`)."""

    root: str
    objects_bytes: int = 0
    objects_files: int = 0
    entries_bytes: int = 0
    entries_files: int = 0
    tmp_bytes: int = 0
    tmp_files: int = 0
    state_bytes: int = 0
    state_files: int = 0
    reclaimable_bytes: int = 0
    reclaimable_files: int = 0

    @property
    def total_bytes(self) -> int:
        """Everything under the store directory."""
        return self.objects_bytes + self.entries_bytes + self.tmp_bytes + self.state_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return {**asdict(self), "total_bytes": self.total_bytes}


@dataclass
class GcReport:
    """What :func:`gc` removed (or, with ``dry_run``, would remove)."""

    dry_run: bool = False
    full_scan: bool = True
    size_before: int = 0
    size_after: int = 0
    evicted: list[EntryInfo] = field(default_factory=list)
    freed_blobs: int = 0
    freed_bytes: int = 0
    removed_tmp: int = 0
    removed_state: int = 0
    over_budget: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        data = asdict(self)
        data["evicted"] = [{"namespace": e.namespace, "key": e.key, "size": e.size} for e in self.evicted]
        return data


@dataclass
class Problem:
    """One finding of :func:`verify`; ``path`` is relative to the store root."""

    kind: str
    path: str
    detail: str
    fixed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)


@dataclass
class VerifyReport:
    """Damage (``problems``) and leftovers (``garbage``) found by :func:`verify`."""

    entries: int = 0
    blobs: int = 0
    problems: list[Problem] = field(default_factory=list)
    garbage: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No damage left (leftovers are not damage: they only take space)."""
        return all(p.fixed for p in self.problems)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return {
            "ok": self.ok,
            "entries": self.entries,
            "blobs": self.blobs,
            "problems": [p.to_dict() for p in self.problems],
            "garbage": [p.to_dict() for p in self.garbage],
        }


@dataclass
class ClearReport:
    """What :func:`clear` removed: entries per namespace, then the blobs they alone used."""

    removed: dict[str, int] = field(default_factory=dict)
    freed_blobs: int = 0
    freed_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description."""
        return asdict(self)


# ---------------------------------------------------------------------------------------- scanning
def _parse_manifest(data: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(manifest, damage, signature problem)`` of a manifest file's bytes; never removes it."""
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) not in (2, 3) or parts[0] != _MANIFEST_MAGIC:
        return None, "not a manifest (bad header or truncated)", None
    if xxhash.xxh3_128_hexdigest(body).encode("ascii") != parts[1]:
        return None, "checksum mismatch (flipped or truncated bytes)", None
    try:
        manifest = json.loads(body)
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        return None, "not a JSON object", None
    signature_problem = None
    secret = config.secret_key()
    if secret is not None:
        sig = parts[2][4:].decode("ascii", "replace") if len(parts) == 3 and parts[2].startswith(b"sig=") else ""
        if not sig:
            signature_problem = "unsigned while CHECKPOINT_MAGIC_SECRET is set"
        elif not hmac.compare_digest(sig, _sign(secret, body)):
            signature_problem = "wrong signature (tampered, or signed with another secret)"
    return manifest, None, signature_problem


def _blob_refs(obj: Any, out: dict[str, int]) -> dict[str, int]:
    """Every ``{"digest": <32 hex>, "size": int}`` found anywhere in a manifest."""
    if isinstance(obj, dict):
        digest, size = obj.get("digest"), obj.get("size")
        if isinstance(digest, str) and _DIGEST.fullmatch(digest) and isinstance(size, int):
            out[digest] = size
        for value in obj.values():
            if isinstance(value, (dict, list)):
                _blob_refs(value, out)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                _blob_refs(value, out)
    return out


def _files(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            yield from (e for e in it if e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return


def _dirs(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if e.is_dir(follow_symlinks=False)), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


@dataclass
class _Scan:
    entries: list[EntryInfo] = field(default_factory=list)
    damaged: list[tuple[Path, str]] = field(default_factory=list)
    unsigned: list[tuple[EntryInfo, str]] = field(default_factory=list)
    entry_bytes: int = 0


def _scan_entries(store: Store, namespace_dir: str | None = None) -> _Scan:
    """Read every manifest (without removing damaged ones) and the usage recorded for it."""
    scan = _Scan()
    dirs = _dirs(store.entries)
    if namespace_dir is not None:
        dirs = [d for d in dirs if d.name == namespace_dir]
    for ns in dirs:
        state = {e.name: e.stat(follow_symlinks=False) for e in _files(store.state / ns.name)}
        for f in sorted(_files(Path(ns.path)), key=lambda e: e.name):
            if f.name.startswith("."):
                continue
            try:
                st = f.stat(follow_symlinks=False)
                data = Path(f.path).read_bytes()
            except FileNotFoundError:
                continue  # removed meanwhile
            scan.entry_bytes += st.st_size
            manifest, damage, sig_problem = _parse_manifest(data)
            if manifest is None:
                scan.damaged.append((Path(f.path), damage or "damaged"))
                continue
            created = _number(manifest.get("created"), st.st_mtime)
            hits_st = state.get(f.name + ".hits")
            outputs = manifest.get("outputs")
            info = EntryInfo(
                namespace=str(manifest.get("namespace") or ns.name),
                key=f.name,
                kind=str(manifest.get("kind") or ""),
                code=str(manifest.get("code") or ""),
                inputs=dict(manifest.get("inputs") or {}),
                outputs=sorted(outputs) if isinstance(outputs, dict) else [],
                size=0,
                created=created,
                last_used=hits_st.st_mtime if hits_st is not None else created,
                hits=hits_st.st_size if hits_st is not None else 0,
                duration=_number(manifest.get("duration"), 0.0),
                pinned=(f.name + ".pin") in state,
                blobs=_blob_refs(manifest, {}),
                manifest=manifest,
                path=Path(f.path),
                file_size=st.st_size,
                mtime_ns=st.st_mtime_ns,
            )
            info.size = int(_number(manifest.get("size"), sum(info.blobs.values())))
            scan.entries.append(info)
            if sig_problem:
                scan.unsigned.append((info, sig_problem))
    return scan


def _number(value: Any, default: float) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _blob_files(store: Store) -> dict[str, os.stat_result]:
    """Every file under ``objects/``, by name (a blob's name is its digest)."""
    found: dict[str, os.stat_result] = {}
    for sub in _dirs(store.objects):
        for f in _files(Path(sub.path)):
            with contextlib.suppress(FileNotFoundError):
                found[f"{sub.name}/{f.name}"] = f.stat(follow_symlinks=False)
    return found


def _digest_of(relpath: str) -> str | None:
    sub, _, name = relpath.partition("/")
    return name if _DIGEST.fullmatch(name) and name[:2] == sub else None


def list_entries(store: Store, namespace: str | None = None) -> list[EntryInfo]:
    """Every readable entry of the store (or of one namespace), oldest namespace directory first.

    Damaged manifests are skipped (``verify`` reports them); nothing is unpickled.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "k1", {"namespace": "m.f", "code": "c1", "inputs": {"x": "1"}, "duration": 2.0})
    >>> store.record_use("m.f", "k1")
    >>> entry = list_entries(store)[0]
    >>> entry.namespace, entry.code, entry.hits, entry.saved
    ('m.f', 'c1', 1, 2.0)
    """
    store.check_format()
    scan = _scan_entries(store, None if namespace is None else _namespace_dir(namespace))
    if namespace is not None:
        return [e for e in scan.entries if e.namespace == namespace]
    return scan.entries


def summarize(entries: Iterable[EntryInfo]) -> list[NamespaceSummary]:
    """Group entries by namespace: entry and code-version counts, sizes, use, time saved.

    Examples
    --------
    >>> e = EntryInfo("m.f", "k", "function", "c1", {"x": "1"}, ["return"], 10, 1.0, 2.0, 3, 0.5, False)
    >>> s = summarize([e, EntryInfo("m.f", "k2", "function", "c2", {"x": "2"}, ["return"], 5, 1.5, 1.5, 0, 0.5, True)])[0]
    >>> s.entries, s.versions, s.size, s.hits, s.saved, s.pinned
    (2, 2, 15, 3, 1.5, 1)
    """
    groups: dict[str, list[EntryInfo]] = defaultdict(list)
    for e in entries:
        groups[e.namespace].append(e)
    summaries = []
    for name, group in groups.items():
        summaries.append(
            NamespaceSummary(
                namespace=name,
                kind=", ".join(sorted({e.kind for e in group if e.kind})),
                entries=len(group),
                versions=len({e.code for e in group}),
                inputs=sorted({n for e in group for n in e.inputs}),
                size=sum(e.size for e in group),
                created=min(e.created for e in group),
                last_used=max(e.last_used for e in group),
                hits=sum(e.hits for e in group),
                saved=sum(e.saved for e in group),
                pinned=sum(e.pinned for e in group),
            )
        )
    return sorted(summaries, key=lambda s: s.namespace)


def namespaces(store: Store) -> list[str]:
    """Every namespace with an entry or a recorded miss."""
    names = {e.namespace for e in list_entries(store)}
    for sub in _dirs(store.state):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            names.add(json.loads(Path(sub.path, "last-miss.json").read_text())["namespace"])
    return sorted(names)


def resolve_namespace(store: Store, name: str) -> str:
    """The namespace ``name`` refers to: itself, or the only one ending in ``.name``.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("__main__.slow_square", "k", {"namespace": "__main__.slow_square"})
    >>> resolve_namespace(store, "slow_square")
    '__main__.slow_square'
    """
    known = namespaces(store)
    if name in known:
        return name
    matches = [n for n in known if n.endswith("." + name) or n.endswith(":" + name)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise InvalidArgumentError(f"{name!r} is ambiguous: it may mean {', '.join(matches)}; give the full name")
    hint = f"; known names: {', '.join(known[:20])}" if known else "; the store is empty"
    raise InvalidArgumentError(f"no function, block or cell named {name!r} in {store.root}{hint}")


def find_entry(store: Store, key_prefix: str) -> EntryInfo:
    """The entry whose key starts with ``key_prefix`` (unique prefixes are accepted, as in git).

    Raises
    ------
    InvalidArgumentError
        No entry, or several entries, match.
    """
    prefix = key_prefix.strip().split("/")[-1]
    if not prefix:
        raise InvalidArgumentError("give an entry key (or a unique prefix of one); `checkpoint-magic ls -l` lists them")
    matches = [e for e in list_entries(store) if e.key.startswith(prefix)]
    if not matches:
        raise InvalidArgumentError(f"no entry key starts with {prefix!r} in {store.root}")
    if len(matches) > 1:
        shown = ", ".join(f"{e.key[:12]} ({e.namespace})" for e in matches[:10])
        raise InvalidArgumentError(f"key prefix {prefix!r} is ambiguous: {shown}; give more characters")
    return matches[0]


def pin(store: Store, key_prefix: str) -> EntryInfo:
    """Pin the entry ``key_prefix`` names, so that :func:`gc` never evicts it; return it.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "abc123", {"namespace": "m.f"})
    >>> pin(store, "abc").pinned, unpin(store, "abc").pinned
    (True, False)
    """
    entry = find_entry(store, key_prefix)
    store.set_pinned(entry.namespace, entry.key, True)
    entry.pinned = True
    return entry


def unpin(store: Store, key_prefix: str) -> EntryInfo:
    """Unpin the entry ``key_prefix`` names; return it."""
    entry = find_entry(store, key_prefix)
    store.set_pinned(entry.namespace, entry.key, False)
    entry.pinned = False
    return entry


# ---------------------------------------------------------------------------------------- sizes
_size_cache: dict[str, tuple[int | None, int]] = {}
_size_lock = threading.Lock()
_RACY_SECONDS = 2.0


def stored_size(store: Store) -> int:
    """Bytes under ``objects/`` and ``entries/``, cheaply: only directories changed since the last call are re-read.

    A directory's mtime changes whenever a file is renamed into it or removed from it
    (the only ways the store changes a blob or manifest), so unchanged directories keep
    their cached total; a directory modified within the last two seconds is re-read next
    time too (timestamps are coarse). This is what keeps automatic garbage collection
    (``CHECKPOINT_MAGIC_MAX_SIZE``) cheap after every commit.
    """
    now = time.time()
    total = 0
    with _size_lock:
        for top in (store.objects, store.entries):
            for sub in _dirs(top):
                try:
                    st = sub.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                cached = _size_cache.get(sub.path)
                if cached is not None and cached[0] == st.st_mtime_ns:
                    total += cached[1]
                    continue
                size = 0
                for f in _files(Path(sub.path)):
                    with contextlib.suppress(FileNotFoundError):
                        size += f.stat(follow_symlinks=False).st_size
                _size_cache[sub.path] = (st.st_mtime_ns if now - st.st_mtime > _RACY_SECONDS else None, size)
                total += size
    return total


def du(store: Store) -> DuReport:
    """Bytes and files in ``objects/``, ``entries/``, ``tmp/``, ``state/``, and reclaimable blobs.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> _ = store.put_blob([bytes(1000)])
    >>> report = du(store)
    >>> report.objects_bytes, report.reclaimable_bytes
    (1000, 1000)
    """
    store.check_format()
    report = DuReport(root=str(store.root))
    scan = _scan_entries(store)
    referenced = {d for e in scan.entries for d in e.blobs}
    for rel, st in _blob_files(store).items():
        report.objects_bytes += st.st_size
        report.objects_files += 1
        if _digest_of(rel) not in referenced:
            report.reclaimable_bytes += st.st_size
            report.reclaimable_files += 1
    report.entries_bytes = scan.entry_bytes
    report.entries_files = len(scan.entries) + len(scan.damaged)
    for f in _files(store.tmp):
        with contextlib.suppress(FileNotFoundError):
            report.tmp_bytes += f.stat().st_size
            report.tmp_files += 1
    for sub in _dirs(store.state):
        for f in _files(Path(sub.path)):
            with contextlib.suppress(FileNotFoundError):
                report.state_bytes += f.stat().st_size
                report.state_files += 1
    return report


# ---------------------------------------------------------------------------------------- removal
def _old(st: os.stat_result, now: float, grace: float) -> bool:
    return now - st.st_mtime >= grace


def _unlink(path: str | Path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _remove_manifest(entry: EntryInfo) -> bool:
    """Remove an entry's manifest unless a concurrent commit rewrote it since it was read."""
    if entry.path is None:
        return False
    try:
        if os.stat(entry.path).st_mtime_ns != entry.mtime_ns:
            logger.debug("%s was rewritten meanwhile; kept", entry.path)
            return False
    except FileNotFoundError:
        return False
    return _unlink(entry.path)


def _remove_state(store: Store, entry: EntryInfo) -> int:
    return sum(_unlink(store.state / entry.ns_dir / f"{entry.key}{suffix}") for suffix in (".hits", ".pin"))


def _live_references(store: Store, scanned: Iterable[EntryInfo], removed: set[tuple[str, str]]) -> set[str]:
    """Blobs referred to by the manifests on disk *now* (re-reading only those new or rewritten)."""
    known = {(e.ns_dir, e.key): e for e in scanned}
    referenced: set[str] = set()
    for ns in _dirs(store.entries):
        for f in _files(Path(ns.path)):
            if f.name.startswith("."):
                continue
            entry = known.get((ns.name, f.name))
            try:
                if entry is not None and f.stat().st_mtime_ns == entry.mtime_ns:
                    if (ns.name, f.name) not in removed:
                        referenced.update(entry.blobs)
                    continue
                manifest, _, _ = _parse_manifest(Path(f.path).read_bytes())
            except FileNotFoundError:
                continue
            if manifest is not None:
                referenced.update(_blob_refs(manifest, {}))
    return referenced


def _sweep_blobs(
    store: Store,
    referenced: set[str],
    now: float,
    grace: float,
    dry_run: bool,
    released: dict[str, int] | None = None,
) -> tuple[int, int]:
    """Free the blobs no manifest refers to; ``(count, bytes)``.

    A blob is freed if untouched for ``grace`` seconds, or if it is in ``released`` (its
    last referring entries were just removed) and was not touched after the newest of
    those entries was committed: a commit reusing a blob refreshes its mtime (``put_blob``),
    so a blob touched since may belong to a commit still in progress.
    """
    released = released or {}
    count = freed = 0
    for rel, st in _blob_files(store).items():
        digest = _digest_of(rel)
        if digest in referenced:
            continue
        limit = released.get(digest or "")
        if not _old(st, now, grace) and (limit is None or st.st_mtime_ns > limit):
            continue
        path = store.objects / rel
        if not dry_run:
            try:  # re-check right before removing: a concurrent commit may have reused it
                fresh = os.stat(path)
            except FileNotFoundError:
                continue
            if fresh.st_mtime_ns != st.st_mtime_ns and not _old(fresh, time.time(), grace):
                continue
            if not _unlink(path):
                continue
        count += 1
        freed += st.st_size
    return count, freed


def _release_limits(entries: Iterable[EntryInfo]) -> dict[str, int]:
    """For each blob, the mtime of the newest manifest among ``entries`` referring to it."""
    limits: dict[str, int] = {}
    for e in entries:
        for d in e.blobs:
            limits[d] = max(limits.get(d, 0), e.mtime_ns)
    return limits


def _sweep_tmp_and_state(store: Store, live: set[tuple[str, str]], now: float, grace: float, dry_run: bool) -> tuple[int, int]:
    """Remove staging leftovers and usage/pin/miss records of entries that no longer exist."""
    tmp = 0
    for f in _files(store.tmp):
        with contextlib.suppress(FileNotFoundError):
            if _old(f.stat(), now, grace) and (dry_run or _unlink(f.path)):
                tmp += 1
    state = 0
    live_dirs = {ns for ns, _ in live}
    for sub in _dirs(store.state):
        for f in _files(Path(sub.path)):
            name = f.name
            if name.endswith((".hits", ".pin")):
                stale = (sub.name, name.rsplit(".", 1)[0]) not in live
            elif name == "last-miss.json":
                stale = sub.name not in live_dirs
            else:
                stale = name.startswith(".") and name.endswith(".tmp")
            with contextlib.suppress(FileNotFoundError):
                if stale and _old(f.stat(), now, grace) and (dry_run or _unlink(f.path)):
                    state += 1
    return tmp, state


def gc(
    store: Store,
    max_size: str | int | None = None,
    max_age: str | float | None = None,
    keep_versions: int | None = None,
    dry_run: bool = False,
    *,
    grace: float = GRACE_SECONDS,
    sweep: bool | None = None,
) -> GcReport:
    """Evict entries to meet the budgets, least recently used first; then free unreferenced blobs.

    Parameters
    ----------
    store : Store
    max_size : str or int, optional
        Keep ``objects/`` + ``entries/`` under this size (``"10GB"``, ``"500MiB"``, bytes).
    max_age : str or float, optional
        Evict entries not used for this long (``"30d"``, ``"12h"``, seconds).
    keep_versions : int, optional
        Keep only the entries of the N most recently used code versions of each namespace.
    dry_run : bool
        Report what would be removed, remove nothing.
    grace : float
        Never remove a blob, staging file or state file modified within this many seconds.
    sweep : bool, optional
        Also free unreferenced blobs, staging leftovers and stale state. By default yes,
        except when ``max_size`` is the only budget and the store is within it: then
        nothing is read but directory sizes (the cheap check automatic gc relies on).

    Pinned entries are never evicted: if they alone exceed ``max_size``, the report says
    ``over_budget``. Blobs shared by several entries are freed only when none refers to them.
    """
    limit = parse_size(max_size) if max_size is not None else None
    age = parse_age(max_age) if max_age is not None else None
    if keep_versions is not None and (isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1):
        raise InvalidArgumentError(f"keep_versions must be a whole number >= 1, not {keep_versions!r}")
    store.check_format()
    if sweep is None and limit is not None and age is None and keep_versions is None:
        current = stored_size(store)
        if current <= limit:
            return GcReport(dry_run=dry_run, full_scan=False, size_before=current, size_after=current)
    now = time.time()
    scan = _scan_entries(store)
    blobs = {d: st for rel, st in _blob_files(store).items() if (d := _digest_of(rel)) is not None}
    blob_bytes = sum(st.st_size for st in _blob_files_values(store, blobs))
    report = GcReport(dry_run=dry_run, size_before=blob_bytes + scan.entry_bytes)
    refcount: dict[str, int] = defaultdict(int)
    for e in scan.entries:
        for d in e.blobs:
            refcount[d] += 1
    deletable = {d for d, st in blobs.items() if _old(st, now, grace)}
    projected = report.size_before
    if sweep is not False:  # orphans already unreferenced are freed by the sweep below
        projected -= sum(blobs[d].st_size for d in deletable if refcount.get(d, 0) == 0)
    evicted: dict[tuple[str, str], EntryInfo] = {}

    def evict(entry: EntryInfo) -> None:
        nonlocal projected
        evicted[(entry.ns_dir, entry.key)] = entry
        projected -= entry.file_size
        for d in entry.blobs:
            refcount[d] -= 1
            if refcount[d] == 0 and d in deletable:
                projected -= blobs[d].st_size

    candidates = sorted((e for e in scan.entries if not e.pinned), key=lambda e: (e.last_used, e.created))
    if age is not None:
        for e in candidates:
            if e.last_used < now - age:
                evict(e)
    if keep_versions is not None:
        by_ns: dict[str, dict[str, float]] = defaultdict(dict)
        for e in scan.entries:
            versions = by_ns[e.namespace]
            versions[e.code] = max(versions.get(e.code, 0.0), e.last_used)
        kept = {ns: set(sorted(v, key=v.__getitem__, reverse=True)[:keep_versions]) for ns, v in by_ns.items()}
        for e in candidates:
            if e.code not in kept[e.namespace] and (e.ns_dir, e.key) not in evicted:
                evict(e)
    if limit is not None:
        for e in candidates:
            if projected <= limit:
                break
            if (e.ns_dir, e.key) not in evicted:
                evict(e)
        report.over_budget = projected > limit
    report.evicted = list(evicted.values())
    removed = set(evicted)
    if not dry_run:
        removed = {k for k, e in evicted.items() if _remove_manifest(e)}
        report.evicted = [evicted[k] for k in removed]
        for e in report.evicted:
            report.removed_state += _remove_state(store, e)
    report.freed_bytes = sum(e.file_size for e in report.evicted)
    live = {(e.ns_dir, e.key) for e in scan.entries} - removed
    if dry_run:
        referenced = {d for e in scan.entries if (e.ns_dir, e.key) not in removed for d in e.blobs}
    else:
        referenced = _live_references(store, scan.entries, removed)
    if sweep is not False or evicted:
        count, freed = _sweep_blobs(store, referenced, now, grace, dry_run)
        report.freed_blobs, report.freed_bytes = count, report.freed_bytes + freed
    if sweep is not False:
        report.removed_tmp, state = _sweep_tmp_and_state(store, live, now, grace, dry_run)
        report.removed_state += state
    report.size_after = report.size_before - report.freed_bytes
    if report.evicted or report.freed_blobs:
        logger.info(
            "gc %s: %s %d entries, %d blobs, %d bytes",
            store.root, "would evict" if dry_run else "evicted", len(report.evicted), report.freed_blobs, report.freed_bytes,
        )
    if report.over_budget:
        logger.warning("gc %s: pinned or recent entries alone exceed the size budget of %d bytes", store.root, limit)
    return report


def _blob_files_values(store: Store, blobs: dict[str, os.stat_result]) -> Iterable[os.stat_result]:
    return blobs.values()


def clear(store: Store, namespace: str | None = None, *, grace: float = GRACE_SECONDS) -> ClearReport:
    """Remove the entries of ``namespace`` (every entry if ``None``), their usage records, and the blobs only they used.

    Blobs the removed entries referred to are freed at once when no remaining entry
    refers to them (an in-flight commit that reused one would only produce an entry that
    later misses with a warning, never a wrong value); other unreferenced blobs follow the
    ``grace`` rule of :func:`gc`.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "k1", {"namespace": "m.f"})
    >>> clear(store, "m.f").removed
    {'m.f': 1}
    """
    store.check_format()
    scan = _scan_entries(store, None if namespace is None else _namespace_dir(namespace))
    report = ClearReport()
    targets = [e for e in scan.entries if namespace is None or e.namespace == namespace]
    freed_refs: set[str] = set()
    removed: set[tuple[str, str]] = set()
    for e in targets:
        if _unlink(e.path) if e.path is not None else False:
            report.removed[e.namespace] = report.removed.get(e.namespace, 0) + 1
            removed.add((e.ns_dir, e.key))
            freed_refs.update(e.blobs)
            _remove_state(store, e)
    if namespace is None:
        for path, _ in scan.damaged:
            _unlink(path)
    dirs = {e.ns_dir for e in targets} | ({_namespace_dir(namespace)} if namespace is not None else set())
    for ns_dir in dirs:
        if not any(True for f in _files(store.entries / ns_dir) if not f.name.startswith(".")):
            _unlink(store.state / ns_dir / "last-miss.json")
    referenced = _live_references(store, _scan_entries(store).entries, set())
    now = time.time()
    for rel, st in _blob_files(store).items():
        digest = _digest_of(rel)
        if digest in referenced or (digest not in freed_refs and not _old(st, now, grace)):
            continue
        if _unlink(store.objects / rel):
            report.freed_blobs += 1
            report.freed_bytes += st.st_size
    logger.info("cleared %d entries, %d blobs from %s", sum(report.removed.values()), report.freed_blobs, store.root)
    return report


# ---------------------------------------------------------------------------------------- verify
def _hash_file(path: Path) -> tuple[int, str]:
    hasher = xxhash.xxh3_128()
    size = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(min(_CHUNK, max(os.fstat(f.fileno()).st_size, 1)))
        view = memoryview(buf)
        while n := f.readinto(view):
            hasher.update(view[:n])
            size += n
    return size, hasher.hexdigest()


def verify(store: Store, fix: bool = False, *, grace: float = GRACE_SECONDS) -> VerifyReport:
    """Check every manifest and every blob; with ``fix``, remove what is damaged and the leftovers.

    Problems (damage): a manifest that does not parse or fails its checksum; with
    ``CHECKPOINT_MAGIC_SECRET`` set, an unsigned or wrongly signed manifest; a blob that
    is missing, of the wrong size or whose bytes do not hash to its name, and the entries
    referring to it. Garbage (space only): staging files left by a crash, blobs no
    manifest refers to, usage records of removed entries (all older than ``grace``).

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> record = store.put_value(bytes(100_000))
    >>> store.write_entry("m.f", "k1", {"outputs": {"return": record}})
    >>> verify(store).ok
    True
    >>> store.blob_path(record["blobs"][0]["digest"]).write_bytes(b"flipped")
    7
    >>> [p.kind for p in verify(store).problems]
    ['corrupt blob', 'broken entry']
    >>> verify(store, fix=True).ok, verify(store).ok
    (True, True)
    """
    store.check_format()
    report = VerifyReport()
    root = store.root

    def rel(path: Path | str) -> str:
        return os.path.relpath(path, root)

    scan = _scan_entries(store)
    report.entries = len(scan.entries) + len(scan.damaged)
    for path, why in scan.damaged:
        report.problems.append(Problem("damaged manifest", rel(path), why, fixed=fix and _unlink(path)))
    dropped: set[tuple[str, str]] = set()
    for entry, why in scan.unsigned:
        fixed = fix and entry.path is not None and _unlink(entry.path)
        report.problems.append(Problem("signature", rel(entry.path or ""), why, fixed=fixed))
        if fixed:
            dropped.add((entry.ns_dir, entry.key))
    users: dict[str, list[EntryInfo]] = defaultdict(list)
    for e in scan.entries:
        for d in e.blobs:
            users[d].append(e)
    bad: dict[str, str] = {}
    for digest in sorted(users):
        path = store.blob_path(digest)
        expected = users[digest][0].blobs[digest]
        try:
            size, actual = _hash_file(path)
        except FileNotFoundError:
            bad[digest] = "missing"
            report.problems.append(Problem("missing blob", rel(path), f"referred to by {len(users[digest])} entries"))
            continue
        report.blobs += 1
        why = f"size {size}, expected {expected}" if size != expected else ("content does not match its hash" if actual != digest else "")
        if why:
            bad[digest] = "corrupt"
            report.problems.append(Problem("corrupt blob", rel(path), why, fixed=fix and _unlink(path)))
    for e in scan.entries:
        broken = [d for d in e.blobs if d in bad]
        if broken and (e.ns_dir, e.key) not in dropped:
            fixed = fix and e.path is not None and _unlink(e.path)
            detail = f"{e.namespace}: refers to {bad[broken[0]]} blob {broken[0]}" + (
                f" and {len(broken) - 1} more" if len(broken) > 1 else ""
            )
            report.problems.append(Problem("broken entry", rel(e.path or ""), detail, fixed=fixed))
            if fixed:
                dropped.add((e.ns_dir, e.key))
                _remove_state(store, e)
    for p in report.problems:
        if p.kind == "missing blob":
            p.fixed = fix  # fixed by removing the entries that refer to it
    now = time.time()
    referenced = {d for e in scan.entries if (e.ns_dir, e.key) not in dropped for d in e.blobs}
    if fix:
        referenced = _live_references(store, scan.entries, dropped)
    for relpath, st in _blob_files(store).items():
        if _digest_of(relpath) in referenced or (_digest_of(relpath) in bad) or not _old(st, now, grace):
            continue
        path = store.objects / relpath
        report.garbage.append(Problem("unreferenced blob", rel(path), f"{st.st_size} bytes", fixed=fix and _unlink(path)))
    for f in _files(store.tmp):
        with contextlib.suppress(FileNotFoundError):
            st = f.stat()
            if _old(st, now, grace):
                report.garbage.append(Problem("staging leftover", rel(f.path), f"{st.st_size} bytes", fixed=fix and _unlink(f.path)))
    live = {(e.ns_dir, e.key) for e in scan.entries} - dropped
    stale_before = _count_stale_state(store, live, now, grace)
    if stale_before:
        if fix:
            _sweep_tmp_and_state(store, live, now, grace, dry_run=False)
        report.garbage.append(Problem("stale state", rel(store.state), f"{stale_before} usage records of removed entries", fixed=fix))
    return report


def _count_stale_state(store: Store, live: set[tuple[str, str]], now: float, grace: float) -> int:
    # A dry run of the sweep over state only (tmp files are reported one by one above).
    _, state = _sweep_tmp_and_state(store, live, now, grace, dry_run=True)
    return state
