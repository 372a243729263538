"""The content-addressed store: blobs named by their hash, one manifest per cached computation.

:class:`Store` owns dedup, verification, signing, pins, usage and budgets; the file names of a
store belong to ``layout``; ``codecs`` turn values into bytes and back.

Examples
--------
>>> import tempfile
>>> from checkpoint_magic.store import Store
>>> Store(tempfile.mkdtemp()).put_value([1, 2])["codec"]
'pickle'
"""

from __future__ import annotations

from .core import FORMAT_VERSION, CorruptBlobError, CorruptManifestError, Store, get_store

__all__ = ["FORMAT_VERSION", "CorruptBlobError", "CorruptManifestError", "Store", "get_store"]
