"""One entry as the store's tools see it: :class:`EntryInfo`, :class:`Scan`, and reading one.

:func:`read_entry_file` turns a manifest's bytes into an :class:`EntryInfo` without removing
a damaged one and without unpickling anything (a listing reads many with one
:func:`entry_reader`); :func:`parse_manifest` and :func:`blob_refs` are the pieces it is
made of. Listing a whole store is :mod:`checkpoint_magic.store.catalog`.

Examples
--------
>>> blob_refs({"outputs": {"return": {"digest": "ab" * 16, "size": 3}}}, {})
{'abababababababababababababababab': 3}
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .. import config
from . import layout
from .backends import Stat
from .core import Store
from .indexrows import signature
from .manifest import MANIFEST_MAX_BYTES, decode_manifest

__all__ = [
    "EntryInfo",
    "EntryReader",
    "ManifestLoader",
    "Scan",
    "blob_refs",
    "entry_reader",
    "load_manifest",
    "may_reference_blobs",
    "no_gc_pauses",
    "parse_manifest",
    "read_entry_file",
]


@dataclass(slots=True)  # a listing holds one per entry: no __dict__ each
class EntryInfo:
    """One cached computation, as listed by :func:`scan_entries`.

    ``last_used`` is the last recorded hit (the creation time if never hit); ``saved``
    is the compute time the cache has saved so far (``hits * duration``); ``name`` is the
    manifest's store name (``entries/<namespace folder>/<shard>/<key>``); ``version`` its stat
    signature when it was read (:func:`~checkpoint_magic.store.indexrows.signature`).

    Attributes
    ----------
    namespace : str
        The function, block or cell the entry belongs to.
    key : str
        The entry's key (its manifest's file name).
    kind : str
        What was cached: ``"function"``, ``"block"``, ``"cell"``, ``"step"``...
    code : str
        The code fingerprint.
    inputs : dict of str to str
        The input fingerprints by name.
    outputs : list of str
        The names of the stored outputs, sorted.
    size : int
        Bytes of the blobs it references (as its manifest records them).
    created : float
        When it was committed (seconds since the epoch).
    last_used : float
        Its last recorded hit, or ``created``.
    hits : int
        Hits recorded so far.
    duration : float
        How long the computation took when it ran, in seconds.
    pinned : bool
        Whether it is pinned (never evicted).
    blobs : dict of str to int
        The digest and size of every blob it references.
    manifest_data : dict of str to object or None
        The parsed manifest; ``None`` until :attr:`manifest` reads it (entries listed
        from the index).
    root : str or None
        The store's local directory; ``None`` for a URL store.
    file_size : int
        Bytes of the manifest file.
    version : str or None
        The manifest file's stat signature when it was read.
    name : str
        The manifest's store name.
    loader : callable or None
        Reads the whole manifest on demand (entries listed from the index).
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
    manifest_data: dict[str, Any] | None = field(default=None, repr=False)
    root: str | None = field(default=None, repr=False)
    file_size: int = field(default=0, repr=False)
    version: str | None = field(default=None, repr=False)
    name: str = field(default="", repr=False)
    loader: Callable[[], dict[str, Any]] | None = field(default=None, repr=False, compare=False)

    @property
    def manifest(self) -> dict[str, Any]:
        """The whole manifest (read on first use when the entry was listed from the index)."""
        if self.manifest_data is None:
            self.manifest_data = self.loader() if self.loader is not None else {}
        return self.manifest_data

    @property
    def path(self) -> Path | None:
        """The manifest's local path (``None`` for a URL store)."""
        return Path(self.root, self.name) if self.root is not None and self.name else None

    @property
    def saved(self) -> float:
        """Compute time saved by hits so far, in seconds."""
        return self.hits * self.duration

    @property
    def ns_dir(self) -> str:
        """The entry's namespace folder under ``entries/``."""
        # A plain property: functools.cached_property takes a lock on first use (3.11),
        # which cost more than this split over a listing of every entry.
        return self.name.split("/", 2)[1] if self.name else layout.namespace_dir(self.namespace)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description (without the raw manifest).

        Returns
        -------
        dict
            The listed fields plus ``saved``; ``blobs`` maps digest to size.
        """
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
class Scan:
    """Every manifest of a store, as :func:`scan_entries` read it.

    Attributes
    ----------
    entries : list of EntryInfo
        The readable manifests (those a signed store refuses included).
    damaged : list of tuple of (str, str)
        ``(manifest name, why)`` of each manifest that cannot be read.
    unsigned : list of tuple of (EntryInfo, str)
        The entries a signed store refuses, with why.
    entry_bytes : int
        Bytes of every manifest file, damaged ones included.
    """

    entries: list[EntryInfo] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    unsigned: list[tuple[EntryInfo, str]] = field(default_factory=list)
    entry_bytes: int = 0


def parse_manifest(data: bytes) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(manifest, damage, signature problem)`` of a manifest file's bytes; never removes it.

    Parameters
    ----------
    data : bytes
        A manifest file's bytes.

    Returns
    -------
    tuple
        As :func:`~checkpoint_magic.store.manifest.decode_manifest`, with the configured
        secret, parsing refused (unsigned) entries too.
    """
    return decode_manifest(data, config.secret_key(), parse_refused=True)


def blob_refs(obj: Any, out: dict[str, int], depth: int = 0) -> dict[str, int]:
    """Every ``{"digest": <32 hex>, "size": int}`` found anywhere in a manifest.

    Parameters
    ----------
    obj : object
        A manifest (or part of one): nested dicts and lists.
    out : dict of str to int
        Filled in place with digest -> size.
    depth : int, default 0
        Current nesting depth; deeper than 64 is not searched.

    Returns
    -------
    dict of str to int
        ``out``.

    Examples
    --------
    >>> blob_refs({"outputs": [{"digest": "0" * 32, "size": 5}]}, {})
    {'00000000000000000000000000000000': 5}
    """
    if depth > 64:
        return out
    if isinstance(obj, dict):
        digest, size = obj.get("digest"), obj.get("size")
        if isinstance(digest, str) and layout.is_digest(digest) and isinstance(size, int):
            out[digest] = size
        for value in obj.values():
            if isinstance(value, (dict, list)):
                blob_refs(value, out, depth + 1)
    elif isinstance(obj, list):
        for value in obj:
            if isinstance(value, (dict, list)):
                blob_refs(value, out, depth + 1)
    return out


def _number(value: Any, default: float) -> float:
    return (
        float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    )


def may_reference_blobs(data: bytes) -> bool:
    """Whether manifest bytes can hold a blob reference: they spell ``"digest"`` (or escape).

    Parameters
    ----------
    data : bytes
        A manifest file's bytes.

    Returns
    -------
    bool
        ``False`` only when no blob reference can be in them (their JSON need not be parsed).
    """
    # A one-byte search (memchr) first: a search for backslash-u alone costs five times as
    # much, and most manifests hold no backslash at all.
    return b'"digest"' in data or (b"\\" in data and b"\\u" in data)


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
    """Hold the cyclic garbage collector while a scan builds many long-lived containers.

    Each generation-2 pass walks every object the scan built so far, which made listing
    100,000 entries superlinear (as Mercurial's ``util.nogc`` works around); the scan
    creates no reference cycles, and the collector is re-enabled at once afterwards.

    Yields
    ------
    None
        While the collector is held (re-enabled after, if it was enabled).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class EntryReader(Protocol):
    """Reads one manifest, as :func:`read_entry_file` does (made by :func:`entry_reader`)."""

    def __call__(
        self, ns_dir: str, key: str, st: Stat | None, data: bytes | None = None
    ) -> tuple[EntryInfo | None, str]: ...  # pragma: no cover - a signature


def load_manifest(store: Store, name: str) -> dict[str, Any]:
    """The manifest ``name`` as :func:`parse_manifest` reads it; ``{}`` if gone or damaged.

    Parameters
    ----------
    store : Store
        The store.
    name : str
        The manifest's store name (``entries/<namespace folder>/<shard>/<key>``).

    Returns
    -------
    dict
        The manifest's fields (signature problems do not stop it being read).
    """
    try:
        data = store.backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
    except FileNotFoundError:
        return {}
    return parse_manifest(data)[0] or {}


class ManifestLoader:
    """Reads the manifest ``name`` of ``store`` on call, as :func:`load_manifest` does.

    The :attr:`EntryInfo.loader` of an entry listed without its manifest: one small object
    per entry (a ``functools.partial`` is three: itself, its arguments and keywords).

    Parameters
    ----------
    store : Store
        The store.
    name : str
        The manifest's name.
    """

    __slots__ = ("name", "store")

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.name = name

    def __call__(self) -> dict[str, Any]:
        """The manifest, ``{}`` if it is gone or damaged.

        Returns
        -------
        dict
            What :func:`load_manifest` returns.
        """
        return load_manifest(self.store, self.name)


def entry_reader(store: Store, *, keep_manifest: bool = True) -> EntryReader:
    """A function reading manifests of ``store`` into entries, as :func:`read_entry_file` does.

    What is the same for every manifest of a listing (the signing secret, the store's
    root, namespace folders already computed) is looked up once, not once per entry.

    Parameters
    ----------
    store : Store
        The store.
    keep_manifest : bool, default True
        Keep each parsed manifest on its entry (:attr:`EntryInfo.manifest_data`); without,
        :attr:`EntryInfo.manifest` reads it again when asked (``verify`` needs none: a
        listing of a whole store then holds a few small objects per entry, not the parse).

    Returns
    -------
    callable
        ``read(ns_dir, key, st, data=None)``, returning what :func:`read_entry_file` does.
        ``st`` may be ``None`` (a listing by name, :func:`~.walk.entry_keys`): a local
        manifest's stat is then the ``fstat`` of the file read, another's is asked for.

    Examples
    --------
    >>> import tempfile
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("m.f", "k1", {"outputs": {}, "inputs": {"x": "1"}})
    >>> read = entry_reader(store, keep_manifest=False)
    >>> st = store.backend.stat(layout.entry("m.f", "k1"))
    >>> info, problem = read("m.f", "k1", st)
    >>> info.inputs, problem, info.manifest_data is None, info.manifest["inputs"]
    ({'x': '1'}, '', True, {'x': '1'})
    """
    secret = config.secret_key()
    backend = store.backend
    root = store.location if store.is_local else None
    # A local file is read with one open, fstat, read and close; elsewhere read_bytes is
    # one request (read_small would stat the object first).
    small = store.is_local and backend.files_are_local
    sharded = store.sharded
    # Strings most entries of a listing repeat (namespace, kind, code, input and output
    # names): one object each, not one per entry, for the whole listing's lifetime.
    shared: dict[str, str] = {}
    share = shared.setdefault

    def read(
        ns_dir: str, key: str, st: Stat | None, data: bytes | None = None
    ) -> tuple[EntryInfo | None, str]:
        name = layout.entry_in(ns_dir, key, sharded=sharded)
        if data is None:
            if small:
                data, opened = backend.read_small(name, MANIFEST_MAX_BYTES)
                st = st or opened
            else:
                data = backend.read_bytes(name, limit=MANIFEST_MAX_BYTES)
        if st is None:
            st = backend.stat(name)
            if st is None:
                raise FileNotFoundError(f"{name} is not stored")
        manifest, damage, sig_problem = decode_manifest(data, secret, parse_refused=True)
        if manifest is not None and (
            manifest.get("key", key) != key
            or (
                "namespace" in manifest
                and layout.namespace_dir(str(manifest["namespace"])) != ns_dir
            )
        ):
            damage = f"written for entry {manifest.get('namespace')}/{manifest.get('key')}"
            manifest = None
        if manifest is None:
            return None, damage or "damaged"
        created = manifest.get("created")
        if type(created) is not float:  # the store writes floats: others as _number says
            created = _number(created, st.mtime)
        duration = manifest.get("duration")
        if type(duration) is not float:
            duration = _number(duration, 0.0)
        outputs = manifest.get("outputs")
        # A manifest whose bytes never spell "digest" (nor any \u escape) references no blob.
        blobs = blob_refs(manifest, {}) if may_reference_blobs(data) else {}
        namespace = str(manifest.get("namespace") or ns_dir)
        kind = str(manifest.get("kind") or "")
        code = str(manifest.get("code") or "")
        inputs = manifest.get("inputs")
        info = EntryInfo(
            share(namespace, namespace),
            key,
            share(kind, kind),
            share(code, code),
            {share(k, k): str(v) for k, v in inputs.items()}  # JSON: every key is a str
            if isinstance(inputs, dict)
            else {},
            [share(k, k) for k in sorted(outputs)] if isinstance(outputs, dict) else [],
            int(_number(manifest.get("size"), sum(blobs.values()))),
            created,
            created,
            0,
            duration,
            False,
            blobs,
            manifest if keep_manifest else None,
            root,
            st.size,
            signature(st),
            name,
            None if keep_manifest else ManifestLoader(store, name),
        )
        return info, sig_problem or ""

    return read


def read_entry_file(
    store: Store, ns_dir: str, key: str, st: Stat | None, data: bytes | None = None
) -> tuple[EntryInfo | None, str]:
    """An :class:`EntryInfo` of one manifest (usage and pin not filled).

    Listings read many with one :func:`entry_reader`.

    Parameters
    ----------
    store : Store
        The store.
    ns_dir : str
        The namespace folder under ``entries/``.
    key : str
        The manifest's file name.
    st : Stat or None
        Its stat (from the listing); ``None`` takes the stat of the file read.
    data : bytes, optional
        The manifest's bytes when the caller has read them already.

    Returns
    -------
    info : EntryInfo or None
        ``None`` if the manifest is damaged.
    problem : str
        Why it is damaged, or why a signed store refuses it; ``""`` otherwise.

    Raises
    ------
    FileNotFoundError
        The manifest was removed meanwhile.
    """
    return entry_reader(store)(ns_dir, key, st, data)
