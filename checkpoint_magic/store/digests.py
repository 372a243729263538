"""The cryptographic digest that signed stores record for every blob (BLAKE3, else SHA-256).

xxh3-128 names blobs (fast, and enough to detect damage) but is not collision resistant:
someone able to write to a shared store could craft a second blob under the same name.
Signed manifests therefore also name every blob by a cryptographic digest, checked on
read. BLAKE3 (the ``blake3`` package, a dependency) hashes 256 MiB in ~36 ms on one core
here, SHA-256 (standard library, SHA-NI) in ~136 ms and BLAKE2b in ~196 ms; all release
the GIL, so the hash overlaps the read or write it checks, and BLAKE3 also spreads one
large update over the free cores. The algorithm is named in the signed manifest (the
key of the digest in a blob reference): a process without ``blake3`` (an install that
skipped dependencies) writes SHA-256, and refuses a BLAKE3-signed entry as a miss with a
warning instead of trusting it unverified.

Examples
--------
>>> name, hasher = new_strong_hasher()
>>> _ = hasher.update(b"abc")
>>> name in ("blake3", "sha256") and len(hasher.hexdigest()) == 64
True
>>> strong_hasher("sha256") is not None, strong_hasher("md5")
(True, None)
"""

from __future__ import annotations

import hashlib
from typing import Any

__all__ = ["STRONG_ALGORITHMS", "new_strong_hasher", "strong_hasher"]

_blake3: Any
try:  # a dependency; 4x faster than SHA-256 here
    import blake3 as _blake3
except ImportError:  # pragma: no cover - depends on the environment
    _blake3 = None

#: The algorithms a blob reference may name, fastest first.
STRONG_ALGORITHMS = ("blake3", "sha256")


def strong_hasher(name: str) -> Any | None:
    """A new hasher of algorithm ``name``.

    Parameters
    ----------
    name : str
        One of :data:`STRONG_ALGORITHMS` (as a signed blob reference names it).

    Returns
    -------
    hasher or None
        An object with ``update`` and ``hexdigest`` (64 hex digits); ``None`` if the
        algorithm is unknown or unavailable here (the caller then refuses the entry).
    """
    if name == "blake3" and _blake3 is not None:
        return _blake3.blake3(max_threads=_blake3.blake3.AUTO)
    if name == "sha256":
        return hashlib.sha256()
    return None


def new_strong_hasher() -> tuple[str, Any]:
    """``(algorithm, hasher)`` of the fastest cryptographic hash available.

    Returns
    -------
    algorithm : str
        ``"blake3"`` if the package is installed, else ``"sha256"``.
    hasher : object
        A new hasher of that algorithm.

    Raises
    ------
    RuntimeError
        When no algorithm is available (never in practice: ``hashlib`` always has sha256).
    """
    for name in STRONG_ALGORITHMS:
        hasher = strong_hasher(name)
        if hasher is not None:
            return name, hasher
    raise RuntimeError("no cryptographic hash available")  # pragma: no cover - sha256 always is
