"""Helpers of the store's tests."""

from __future__ import annotations

import os
import time

from checkpoint_magic.store import Store


def age(store: Store, seconds: float = 100.0) -> None:
    """Make every folder and file look last changed ``seconds`` ago (their signatures trusted)."""
    past = time.time() - seconds
    for folder in (store.entries, store.state):
        for path in [folder, *folder.rglob("*")]:
            if not path.name.startswith(".entry-index"):
                os.utime(path, (past, past), follow_symlinks=False)


def write_flat(store: Store, namespace: str, key: str, manifest: dict) -> None:
    """Write a manifest where format 1 keeps it, as an older version of the package still
    running after ``checkpoint-magic upgrade`` would (this one follows the upgrade)."""
    from checkpoint_magic.store import layout
    from checkpoint_magic.store.manifest import encode_manifest

    body = encode_manifest({**manifest, "namespace": namespace, "key": key})
    store.backend.write(layout.entry(namespace, key, sharded=False), body)
