"""Functions the scale benchmarks checkpoint, in a module of their own.

A checkpointed function's code fingerprint depends on the module it is found in, so the
function must be imported from the same module whether ``bench_scale.py`` runs as a script
(``__main__``) or is imported (``profile_hot.py``): otherwise a store built by one is all
misses for the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: Every BLOB_EVERY-th result is a 24 KB array (stored as a blob); the rest live in the manifest.
BLOB_EVERY = 20


def fill(i: int) -> Any:
    """The cached function of the scale stores: tiny results, and a 24 KB array every 20th."""
    if i % BLOB_EVERY == 0:
        return np.full(3000, i, dtype=np.float64)
    return i * 2
