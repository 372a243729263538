"""The codec interface: what a codec returns (:class:`Encoded`) and may ask of the store
(:class:`BlobSource`) while decoding. A leaf: imports nothing from the package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["BlobSource", "Codec", "Encoded"]


@dataclass
class Encoded:
    """What a codec produced: ``blobs[i]`` is the list of buffers that make up blob ``i``."""

    blobs: list[list[Any]]
    meta: dict[str, Any] = field(default_factory=dict)


class BlobSource(Protocol):
    """What a codec may ask of the store while decoding (every read is verified)."""

    def read_bytes(self, index: int) -> bytes | bytearray:
        """Return blob ``index`` as bytes (or a bytearray, to avoid a copy)."""
        ...

    def read_into(self, index: int, buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` (writable, total size = blob size) with blob ``index``."""
        ...

    def size(self, index: int) -> int:
        """Size in bytes of blob ``index``."""
        ...

    def path(self, index: int) -> str:
        """Verified path of blob ``index`` on disk (for memory mapping or file-based loaders)."""
        ...


class Codec:
    """Base class of codecs. Subclasses set ``name`` and implement the three methods."""

    name: str = ""

    def can_encode(self, obj: Any) -> bool:
        """Whether this codec handles ``obj``."""
        raise NotImplementedError

    def encode(self, obj: Any) -> Encoded:
        """Turn ``obj`` into blobs and meta."""
        raise NotImplementedError

    def decode(
        self, meta: dict[str, Any], source: BlobSource, *, mmap_mode: str | None = None
    ) -> Any:
        """Rebuild the value from ``meta`` and the blobs of ``source``."""
        raise NotImplementedError
