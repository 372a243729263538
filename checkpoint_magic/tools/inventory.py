"""What is in a store, read without side effects: entries, namespaces, sizes, key lookup.

This module owns the read-only model the maintenance tools share (:class:`EntryInfo`,
:func:`list_entries`, :func:`summarize`, :func:`du`, :func:`find_entry`): it parses
manifests itself, without removing damaged ones (``verify`` reports them), reads the
usage the store records on every hit (``state/<namespace>/<key>.hits``: its size is the
hit count, its mtime the last use) and never unpickles anything, so inspecting a store
someone else wrote is safe. Changing a store (gc, clear, verify, pin) is
:mod:`checkpoint_magic.tools.maintenance`.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> record = store.put_value(bytes(100_000))
>>> store.write_entry("demo.f", "a1b2", {"namespace": "demo.f", "outputs": {"return": record}})
>>> [(e.namespace, e.key, e.size > 100_000) for e in list_entries(store)]
[('demo.f', 'a1b2', True)]
>>> du(store).objects_bytes == list_entries(store)[0].size
True
"""

from __future__ import annotations

import contextlib
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

from .. import config
from ..exceptions import InvalidArgumentError, StoreFormatError
from ..store.core import Store, decode_manifest, flush_usage, namespace_dir

__all__ = [
    "DuReport",
    "EntryInfo",
    "NamespaceSummary",
    "du",
    "find_entry",
    "list_entries",
    "namespaces",
    "resolve_namespace",
    "stored_size",
    "summarize",
]

logger = logging.getLogger(__name__)

_DIGEST = re.compile(r"[0-9a-f]{32}")

# The only names the store writes (and so the only ones maintenance may ever remove):
# tmp/<pid>-<uuid4 hex> (Store._tmp_path); under state/<namespace>/, <key>.hits and <key>.pin
# per entry, last-miss.json (explain.record_miss) and latest-output.json (the step pointer)
# per namespace, and the temporary names their writers rename from.
_STAGING = re.compile(r"[0-9]+-[0-9a-f]{32}")
HITS, PIN = ".hits", ".pin"
NAMESPACE_RECORDS = ("last-miss.json", "latest-output.json")
_ENTRY_RECORD = re.compile(r"([0-9a-f]{32})(\.hits|\.pin)")
_STATE_TEMP = re.compile(r"\.last-miss\.[0-9]+\.tmp|latest-output\.json\.[0-9]+-[0-9a-f]{32}\.tmp")


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
        return self.path.parent.name if self.path is not None else namespace_dir(self.namespace)

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


# ---------------------------------------------------------------------------------------- scanning
def parse_manifest(data: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(manifest, damage, signature problem)`` of a manifest file's bytes; never removes it."""
    return decode_manifest(data, config.secret_key())


def blob_refs(obj: Any, out: dict[str, int]) -> dict[str, int]:
    """Every ``{"digest": <32 hex>, "size": int}`` found anywhere in a manifest."""
    if isinstance(obj, dict):
        digest, size = obj.get("digest"), obj.get("size")
        if isinstance(digest, str) and _DIGEST.fullmatch(digest) and isinstance(size, int):
            out[digest] = size
        for value in obj.values():
            if isinstance(value, (dict, list)):
                blob_refs(value, out)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                blob_refs(value, out)
    return out


def list_files(folder: Path) -> Iterator[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as it:
            yield from (e for e in it if e.is_file(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return


def list_dirs(folder: Path) -> list[os.DirEntry[str]]:
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


def scan_entries(store: Store, namespace_dir: str | None = None) -> _Scan:
    """Read every manifest (without removing damaged ones) and the usage recorded for it."""
    flush_usage()  # hits of this process are recorded on a background thread
    scan = _Scan()
    dirs = list_dirs(store.entries)
    if namespace_dir is not None:
        dirs = [d for d in dirs if d.name == namespace_dir]
    for ns in dirs:
        state: dict[str, os.stat_result] = {}
        for e in list_files(store.state / ns.name):
            with contextlib.suppress(FileNotFoundError):
                state[e.name] = e.stat(follow_symlinks=False)
        for f in sorted(list_files(Path(ns.path)), key=lambda e: e.name):
            if f.name.startswith("."):
                continue
            try:
                st = f.stat(follow_symlinks=False)
                data = Path(f.path).read_bytes()
            except FileNotFoundError:
                continue  # removed meanwhile
            scan.entry_bytes += st.st_size
            manifest, damage, sig_problem = parse_manifest(data)
            if manifest is None:
                scan.damaged.append((Path(f.path), damage or "damaged"))
                continue
            created = _number(manifest.get("created"), st.st_mtime)
            hits_st = state.get(f.name + HITS)
            outputs = manifest.get("outputs")
            info = EntryInfo(
                namespace=str(manifest.get("namespace") or ns.name),
                key=f.name,
                kind=str(manifest.get("kind") or ""),
                code=str(manifest.get("code") or ""),
                inputs=_str_dict(manifest.get("inputs")),
                outputs=sorted(outputs) if isinstance(outputs, dict) else [],
                size=0,
                created=created,
                last_used=hits_st.st_mtime if hits_st is not None else created,
                hits=hits_st.st_size if hits_st is not None else 0,
                duration=_number(manifest.get("duration"), 0.0),
                pinned=(f.name + PIN) in state,
                blobs=blob_refs(manifest, {}),
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


def _str_dict(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def blob_files(store: Store) -> dict[str, os.stat_result]:
    """Every file under ``objects/``, by name (a blob's name is its digest)."""
    found: dict[str, os.stat_result] = {}
    for sub in list_dirs(store.objects):
        for f in list_files(Path(sub.path)):
            with contextlib.suppress(FileNotFoundError):
                found[f"{sub.name}/{f.name}"] = f.stat(follow_symlinks=False)
    return found


def digest_of(relpath: str) -> str | None:
    """The digest a file under ``objects/`` is named by; ``None`` if the store never writes that name."""
    sub, _, name = relpath.partition("/")
    return name if _DIGEST.fullmatch(name) and name[:2] == sub else None


def is_staging(name: str) -> bool:
    """Whether ``tmp/<name>`` is a staging file name the store writes (``<pid>-<32 hex>``)."""
    return _STAGING.fullmatch(name) is not None


def state_file(store: Store, ns_dir: str, name: str) -> Path:
    """``state/<ns_dir>/<name>``: ``<key>.hits``, ``<key>.pin`` or a namespace record."""
    return store.state / ns_dir / name


def state_kind(name: str) -> tuple[str, str]:
    """What ``state/<namespace>/<name>`` is.

    ``("entry", key)`` for a usage or pin record, ``("namespace", name)`` for a
    namespace's record, ``("temp", name)`` for a writer's temporary file, and
    ``("", "")`` for a name the store never writes (never removed).

    Examples
    --------
    >>> state_kind("0123456789abcdef0123456789abcdef.hits")
    ('entry', '0123456789abcdef0123456789abcdef')
    >>> state_kind("last-miss.json"), state_kind(".last-miss.42.tmp"), state_kind("notes.txt")
    (('namespace', 'last-miss.json'), ('temp', '.last-miss.42.tmp'), ('', ''))
    """
    if match := _ENTRY_RECORD.fullmatch(name):
        return "entry", match.group(1)
    if name in NAMESPACE_RECORDS:
        return "namespace", name
    if _STATE_TEMP.fullmatch(name):
        return "temp", name
    return "", ""


def require_store(store: Store) -> None:
    """Refuse to change a directory that is not a checkpoint store (no valid ``FORMAT`` file).

    Raises
    ------
    StoreFormatError
        ``FORMAT`` is missing, unreadable as a format record, or of a newer format.
    """
    store.check_format()
    if not (store.root / "FORMAT").is_file():
        raise StoreFormatError(
            f"{store.root} is not a checkpoint store (it has no FORMAT file); nothing was "
            "changed. Check --store, the store= argument or CHECKPOINT_MAGIC_DIR"
        )


def list_entries(store: Store, namespace: str | None = None) -> list[EntryInfo]:
    """Every readable entry of the store (or of one namespace), in directory order.

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
    scan = scan_entries(store, None if namespace is None else namespace_dir(namespace))
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
    """Every namespace with an entry or a recorded miss.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.g", "k", {"namespace": "m.g"})
    >>> namespaces(store)
    ['m.g']
    """
    names = {e.namespace for e in list_entries(store)}
    for sub in list_dirs(store.state):
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
        raise InvalidArgumentError(
            f"{name!r} is ambiguous: it may mean {', '.join(matches)}; give the full name"
        )
    hint = f"; known names: {', '.join(known[:20])}" if known else "; the store is empty"
    raise InvalidArgumentError(f"no function, block or cell named {name!r} in {store.root}{hint}")


def find_entry(store: Store, key_prefix: str) -> EntryInfo:
    """The entry whose key starts with ``key_prefix`` (unique prefixes are accepted, as in git).

    Raises
    ------
    InvalidArgumentError
        No entry, or several entries, match.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "3fa9c1d2", {"namespace": "m.f"})
    >>> find_entry(store, "3fa").key
    '3fa9c1d2'
    """
    prefix = key_prefix.strip().split("/")[-1]
    if not prefix:
        raise InvalidArgumentError(
            "give an entry key (or a unique prefix of one); `checkpoint-magic ls -l` lists them"
        )
    matches = [e for e in list_entries(store) if e.key.startswith(prefix)]
    if not matches:
        raise InvalidArgumentError(f"no entry key starts with {prefix!r} in {store.root}")
    if len(matches) > 1:
        shown = ", ".join(f"{e.key[:12]} ({e.namespace})" for e in matches[:10])
        raise InvalidArgumentError(
            f"key prefix {prefix!r} is ambiguous: {shown}; give more characters"
        )
    return matches[0]


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

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> _ = store.put_blob([bytes(2048)])
    >>> stored_size(store)
    2048
    """
    now = time.time()
    total = 0
    with _size_lock:
        for top in (store.objects, store.entries):
            for sub in list_dirs(top):
                try:
                    st = sub.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                cached = _size_cache.get(sub.path)
                if cached is not None and cached[0] == st.st_mtime_ns:
                    total += cached[1]
                    continue
                size = 0
                for f in list_files(Path(sub.path)):
                    with contextlib.suppress(FileNotFoundError):
                        size += f.stat(follow_symlinks=False).st_size
                _size_cache[sub.path] = (
                    st.st_mtime_ns if now - st.st_mtime > _RACY_SECONDS else None,
                    size,
                )
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
    scan = scan_entries(store)
    referenced = {d for e in scan.entries for d in e.blobs}
    for rel, st in blob_files(store).items():
        report.objects_bytes += st.st_size
        report.objects_files += 1
        digest = digest_of(rel)
        if digest is not None and digest not in referenced:
            report.reclaimable_bytes += st.st_size
            report.reclaimable_files += 1
    report.entries_bytes = scan.entry_bytes
    report.entries_files = len(scan.entries) + len(scan.damaged)
    for f in list_files(store.tmp):
        with contextlib.suppress(FileNotFoundError):
            report.tmp_bytes += f.stat().st_size
            report.tmp_files += 1
    for sub in list_dirs(store.state):
        for f in list_files(Path(sub.path)):
            with contextlib.suppress(FileNotFoundError):
                report.state_bytes += f.stat().st_size
                report.state_files += 1
    return report
