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
