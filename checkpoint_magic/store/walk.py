"""Enumerating a namespace's manifests and state records, in either layout of the store.

A store of format 2 keeps them in shard folders (``entries/<ns>/<shard>/<key>``,
``state/<ns>/<shard>/<key>.hits``), one of format 1 directly in the namespace folder (see
:mod:`~checkpoint_magic.store.layout`). These helpers list either, so that the tools never
spell a layout themselves. A file that the layout could not have put where it is (a manifest
in the wrong shard, a dot file) is not an entry: it is left out, as a name the store never
writes.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> store = Store(tempfile.mkdtemp())
>>> store.write_entry("demo.f", "0a1b", {"outputs": {}})
>>> [key for key, _ in entry_files(store.backend, "demo.f", sharded=store.sharded)]
['0a1b']
>>> entry_folders(store.backend, "demo.f", sharded=True)
['entries/demo.f/0a']
"""

from __future__ import annotations

from . import layout
from .backends import Stat, StoreBackend

__all__ = [
    "entry_files",
    "entry_folders",
    "entry_keys",
    "in_shard",
    "manifest_files",
    "state_files",
    "state_names",
]


def in_shard(name: str, shard: str | None) -> bool:
    """Whether the file ``name`` belongs in the folder of ``shard`` (``None``: no shards).

    Parameters
    ----------
    name : str
        A file name (a key, or a key plus a state suffix).
    shard : str or None
        The shard folder the file is in; ``None`` for a format-1 namespace folder.

    Returns
    -------
    bool
        False for a dot file, and for a file in a shard its name does not start with.

    Examples
    --------
    >>> in_shard("0a1b", "0a"), in_shard("0a1b", "ff"), in_shard(".x", None)
    (True, False, False)
    """
    return not name.startswith(".") and (shard is None or name[:2] == shard)


def entry_folders(backend: StoreBackend, ns_dir: str, *, sharded: bool) -> list[str]:
    """The folders that hold a namespace's manifests, by name.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    ns_dir : str
        A namespace folder, as :func:`~checkpoint_magic.store.layout.namespace_dir` gives it.
    sharded : bool
        Whether the store keeps entries in shard folders (format 2).

    Returns
    -------
    list of str
        ``entries/<ns_dir>/<shard>`` for every shard folder, or ``[entries/<ns_dir>]``.
    """
    top = f"{layout.ENTRIES}/{ns_dir}"
    if not sharded:
        return [top]
    return [f"{top}/{sub}" for sub in backend.list_folders(top) if not sub.startswith(".")]


def entry_files(backend: StoreBackend, ns_dir: str, *, sharded: bool) -> list[tuple[str, Stat]]:
    """``(key, stat)`` of every manifest file of a namespace, by key.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    ns_dir : str
        A namespace folder.
    sharded : bool
        Whether the store keeps entries in shard folders (format 2).

    Returns
    -------
    list of (str, Stat)
        One per manifest file (readable or not), sorted by key.
    """
    top = f"{layout.ENTRIES}/{ns_dir}"
    if not sharded:
        return [item for item in backend.list_files(top) if in_shard(item[0], None)]
    return [
        (key, st) for shard, key, _, st in _tree(backend, top) if shard and in_shard(key, shard)
    ]


def entry_keys(
    backend: StoreBackend, ns_dir: str, *, sharded: bool
) -> list[tuple[str, Stat | None]]:
    """``(key, stat or None)`` of every manifest file of a namespace, by key: the same files
    as :func:`entry_files`, the stat only where the listing gives it at no cost.

    A local folder is listed by name alone, and the stat is ``None``: a reader takes it
    from the file it opens (one ``fstat`` of the very file read, instead of one ``lstat``
    per file while listing). An object store's listing carries every stat already.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    ns_dir : str
        A namespace folder.
    sharded : bool
        Whether the store keeps entries in shard folders (format 2).

    Returns
    -------
    list of (str, Stat or None)
        One per manifest file (readable or not), sorted by key.

    Examples
    --------
    >>> import tempfile
    >>> from checkpoint_magic.store import Store
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("demo.f", "0a1b", {"outputs": {}})
    >>> entry_keys(store.backend, "demo.f", sharded=store.sharded)
    [('0a1b', None)]
    """
    if not backend.files_are_local:
        return list(entry_files(backend, ns_dir, sharded=sharded))
    top = f"{layout.ENTRIES}/{ns_dir}"
    if not sharded:
        return [(key, None) for key in backend.list_names(top) if in_shard(key, None)]
    # A key belongs in its shard: in_shard, the shard not being a dot folder.
    return [
        (key, None) for shard, keys in _shards(backend, top) for key in keys if key[:2] == shard
    ]


def manifest_files(backend: StoreBackend, ns_dir: str) -> list[tuple[str, str, Stat]]:
    """``(key, store name, stat)`` of every manifest file of a namespace, in *either* layout.

    For what must never miss a manifest, whatever ``FORMAT`` said when it was read: the
    blobs a garbage collection keeps, the records it keeps. While ``checkpoint-magic
    upgrade`` moves a store into shards, and after it in a process that read ``FORMAT``
    before, manifests are in both places; a gc that listed one layout only would free the
    blobs of the other's entries.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    ns_dir : str
        A namespace folder.

    Returns
    -------
    list of (str, str, Stat)
        The key, the manifest's name from the store root, and its stat; a key may appear
        twice (flat and in its shard).
    """
    top = f"{layout.ENTRIES}/{ns_dir}"
    return [(key, name, st) for shard, key, name, st in _tree(backend, top) if in_shard(key, shard)]


def _shards(backend: StoreBackend, top: str) -> list[tuple[str, list[str]]]:
    """``(shard, file names)`` of the shard folders of a local folder ``top`` (dot folders
    left out): what :func:`_tree` finds in them, listed by name only."""
    return [
        (shard, backend.list_names(f"{top}/{shard}"))
        for shard in backend.list_folders(top)
        if not shard.startswith(".")
    ]


def _tree(backend: StoreBackend, top: str) -> list[tuple[str | None, str, str, Stat]]:
    """``(shard or None, file name, store name, stat)`` of the files directly in ``top``
    (shard ``None``) and in its shard folders; deeper files and dot folders are left out.
    One listing of an object store's prefix, not one per shard folder."""
    found: list[tuple[str | None, str, str, Stat]] = []
    for name, st in backend.list_tree(top):
        shard, _, leaf = name.partition("/")
        if not leaf:
            found.append((None, name, f"{top}/{name}", st))
        elif "/" not in leaf and not shard.startswith("."):
            found.append((shard, leaf, f"{top}/{name}", st))
    return found


def state_files(
    backend: StoreBackend, ns_dir: str, *, sharded: bool
) -> list[tuple[str, str, Stat]]:
    """``(file name, store name, stat)`` of every file of a namespace's state records.

    The namespace's own records (``last-miss.json``...) are directly in ``state/<ns_dir>``;
    the records of its entries are there too in a format-1 store, in shard folders otherwise.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    ns_dir : str
        A namespace folder.
    sharded : bool
        Whether the store keeps records in shard folders (format 2).

    Returns
    -------
    list of (str, str, Stat)
        The file's name (as :func:`~checkpoint_magic.store.layout.state_kind` reads it), its
        name from the store root, and its stat.
    """
    top = layout.state_folder(ns_dir)
    if not sharded:
        return [(name, f"{top}/{name}", st) for name, st in backend.list_files(top)]
    return [  # the namespace's own records directly in it, its entries' in their shards
        (leaf, name, st)
        for shard, leaf, name, st in _tree(backend, top)
        if shard is None or in_shard(leaf, shard)
    ]


def state_names(
    backend: StoreBackend, ns_dir: str, *, sharded: bool
) -> list[tuple[str, str, Stat | None]]:
    """The files of :func:`state_files`, the stat only where the listing gives it at no cost.

    As :func:`entry_keys` does: a local folder is listed by name alone (the stat is
    ``None``; a caller stats the few files it needs to), an object store with its stats.

    Parameters
    ----------
    backend : StoreBackend
        The store's backend.
    ns_dir : str
        A namespace folder.
    sharded : bool
        Whether the store keeps records in shard folders (format 2).

    Returns
    -------
    list of (str, str, Stat or None)
        The file's name, its name from the store root, and its stat or ``None``.

    Examples
    --------
    >>> import tempfile
    >>> from checkpoint_magic.store import Store
    >>> store = Store(tempfile.mkdtemp())
    >>> store.write_entry("demo.f", "0a1b", {"outputs": {}})
    >>> store.set_pinned("demo.f", "0a1b")
    >>> state_names(store.backend, "demo.f", sharded=store.sharded)
    [('0a1b.pin', 'state/demo.f/0a/0a1b.pin', None)]
    """
    if not backend.files_are_local:
        return list(state_files(backend, ns_dir, sharded=sharded))
    top = layout.state_folder(ns_dir)
    if not sharded:
        return [(name, f"{top}/{name}", None) for name in backend.list_names(top)]
    found: list[tuple[str, str, Stat | None]] = [
        (name, f"{top}/{name}", None) for name in backend.list_names(top)
    ]
    for shard, names in _shards(backend, top):
        found += [(name, f"{top}/{shard}/{name}", None) for name in names if name[:2] == shard]
    return found
