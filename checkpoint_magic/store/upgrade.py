"""Upgrading a store of format 1 (every manifest in its namespace folder) to shard folders.

A store of format 1 keeps working as it is: it is read and written flat. Its tools list a
changed namespace folder whole, though, so a store of many entries should be upgraded once,
with ``checkpoint-magic upgrade`` (:func:`upgrade_store`):

1. ``FORMAT`` says 2 first: a process that opens the store from then on uses shards (an entry
   not moved yet is a miss for it, recomputed, never a wrong value);
2. each namespace's manifests are read in batches, the blobs a batch references are claimed
   by a commit lease (so a garbage collection running meanwhile, which may list the
   namespace between two moves, keeps them; a gc also lists both layouts, see
   :func:`~checkpoint_magic.store.sweep.live_references`), the batch's manifests are renamed
   into their shard folders and the lease released; then the usage records and pins;
3. the namespaces are looked at a second time, for entries written flat meanwhile by a
   process that had read ``FORMAT`` before step 1.

On a store already in format 2 it only moves such stray flat files (the store's tools do
not see them), so running it again after a process wrote some is the remedy.

Best run when no other process uses the store, as git's format upgrades. A process of this
version started before it follows it at its next miss or commit (a store it reads flat is
looked at again then: ``Store._upgraded``); an older version still running keeps writing
flat entries, which the upgraded store no longer sees (a miss, recomputed; ``verify`` lists
them, and running the upgrade again moves them). Moving is a rename per file; a manifest already
present in its shard (written meanwhile) is kept and the flat one removed; a usage record's
hits are added to those counted in the shard meanwhile.

Examples
--------
>>> import json, tempfile
>>> from checkpoint_magic.store import Store
>>> root = tempfile.mkdtemp()
>>> with open(f"{root}/FORMAT", "w") as f:
...     _ = f.write(json.dumps({"format": 1, "layout": "objects+entries"}))
>>> store = Store(root)
>>> store.write_entry("demo.f", "0a1b", {"outputs": {}})  # flat, as format 1 keeps them
>>> store.sharded
False
>>> report = upgrade_store(store)
>>> (report.entries, store.sharded, store.read_entry("demo.f", "0a1b")["outputs"])
(1, True, {})
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging

from . import layout
from .catalog import blob_refs, parse_manifest, require_store
from .core import FORMAT_LAYOUT, FORMAT_VERSION, SHARDED_FORMAT, Store
from .leases import CommitLease
from .manifest import MANIFEST_MAX_BYTES
from .usage import add_hits, read_usage
from .walk import entry_files

__all__ = ["UpgradeReport", "upgrade_store"]

logger = logging.getLogger(__name__)

#: Blobs claimed per commit lease while their manifests move (released once they moved).
_LEASE_DIGESTS = 10_000


@dataclasses.dataclass
class UpgradeReport:
    """What :func:`upgrade_store` did.

    Attributes
    ----------
    format_before : int
        The store's format before (``FORMAT_VERSION`` when there was nothing to do).
    format_after : int
        Its format now.
    entries : int
        Manifests moved into shard folders.
    records : int
        Usage records and pins moved into shard folders.
    """

    format_before: int
    format_after: int
    entries: int = 0
    records: int = 0


def _move(store: Store, source: str, target: str) -> bool:
    """Rename ``source`` to ``target``; a ``target`` already there is newer: it is kept (a
    usage record's hits are added to it: hits counted in the shard meanwhile)."""
    if store.backend.stat(target) is not None:
        if source.endswith(layout.HITS):
            old_hits, old_last = read_usage(store.backend, source)
            if old_hits:
                add_hits(store.backend, target, old_hits, old_last or 0.0)
        with contextlib.suppress(FileNotFoundError):
            store.backend.delete(source)
        return False
    try:
        return store.backend.move(source, target)
    except FileNotFoundError:  # moved or removed meanwhile
        return False


def _move_namespace(store: Store, ns_dir: str, report: UpgradeReport) -> None:
    backend = store.backend
    flat = [k for k, _ in entry_files(backend, ns_dir, sharded=False) if layout.shardable(k)]
    batch: list[str] = []
    claims: set[str] = set()
    for i, key in enumerate(flat):  # claimed before they move: a gc listing meanwhile keeps them
        try:
            name = layout.entry_in(ns_dir, key, sharded=False)
            manifest, _, _ = parse_manifest(backend.read_bytes(name, MANIFEST_MAX_BYTES))
        except FileNotFoundError:
            manifest = None
        if manifest is not None:
            claims.update(blob_refs(manifest, {}))
        batch.append(key)
        if len(claims) >= _LEASE_DIGESTS or i == len(flat) - 1:
            # One lease per batch, released once it moved: held to the end, it would list
            # every blob of the store.
            lease = CommitLease(backend)
            try:
                lease.claim_all(sorted(claims))
                for moving in batch:
                    old, new = (layout.entry_in(ns_dir, moving, sharded=s) for s in (False, True))
                    report.entries += _move(store, old, new)
            finally:
                lease.release()
            batch, claims = [], set()
    for name, _ in backend.list_files(layout.state_folder(ns_dir)):
        kind, key = layout.state_kind(name)
        if kind == "entry":
            suffix = name[len(key) :]
            old, new = (layout.state_in(ns_dir, key, suffix, sharded=s) for s in (False, True))
            report.records += _move(store, old, new)


def upgrade_store(store: Store) -> UpgradeReport:
    """Move a format-1 store's manifests and records into shard folders (see the module).

    Parameters
    ----------
    store : Store
        The store; in one already in the current format, only stray flat files are moved.

    Returns
    -------
    UpgradeReport
        The formats before and after, and how many files were moved.

    Raises
    ------
    StoreFormatError
        When the store's ``FORMAT`` is missing (not a store), foreign, or newer than this
        version reads.
    OSError
        When the store cannot be written (nothing is lost: every file moved so far is
        where the new format reads it, the rest where the old one did; run it again).
    """
    require_store(store)  # never rename the files of a folder that is not a store
    store.refresh_format()  # as FORMAT says now
    before = store.format_version or FORMAT_VERSION
    report = UpgradeReport(before, max(before, FORMAT_VERSION))
    backend = store.backend
    if before < SHARDED_FORMAT:
        body = json.dumps({"format": FORMAT_VERSION, "layout": FORMAT_LAYOUT}) + "\n"
        backend.write(layout.FORMAT, body.encode("utf-8"))
        store.refresh_format()
    for _ in range(2 if before < SHARDED_FORMAT else 1):  # twice after a format change:
        # entries written flat meanwhile are moved too
        folders = {*backend.list_folders(layout.ENTRIES), *backend.list_folders(layout.STATE)}
        for ns_dir in sorted(folders):  # records of entries gone are moved too
            _move_namespace(store, ns_dir, report)
    logger.info(
        "upgraded %s to format %d: %d manifests and %d records moved into shard folders",
        store.location,
        FORMAT_VERSION,
        report.entries,
        report.records,
    )
    return report
