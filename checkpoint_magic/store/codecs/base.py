"""The codec interface: what a codec returns and what it may ask of the store while decoding.

A codec returns an :class:`Encoded` and may read blobs through a :class:`BlobSource`. A leaf:
imports nothing from the package.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["BlobSource", "Codec", "Encoded"]


@dataclass
class Encoded:
    """What a codec produced: ``blobs[i]`` is the list of buffers that make up blob ``i``.

    Parameters
    ----------
    blobs : list of list of buffer
        Per blob, the bytes-like buffers written back to back (never joined or copied);
        the store names each blob by the hash of its bytes.
    meta : dict, optional
        Small JSON-able data the codec needs to decode (kept in the manifest).

    Examples
    --------
    >>> Encoded([[b"header", b"body"]], {"version": 1}).meta
    {'version': 1}
    """

    blobs: list[list[Any]]
    meta: dict[str, Any] = field(default_factory=dict)


class BlobSource(Protocol):
    """What a codec may ask of the store while decoding (every read is verified).

    ``index`` numbers the blobs as in the :class:`Encoded` the codec returned. A blob whose
    bytes do not match its digest raises the store's ``CorruptBlobError``.
    """

    def read_bytes(self, index: int) -> bytes | bytearray:
        """Return blob ``index`` as bytes (or a bytearray, to avoid a copy).

        Parameters
        ----------
        index : int
            The blob's position in :attr:`Encoded.blobs`.

        Returns
        -------
        bytes or bytearray
            The blob's content, verified.
        """
        ...

    def read_into(self, index: int, buffers: Sequence[memoryview]) -> None:
        """Fill ``buffers`` (writable, total size = blob size) with blob ``index``.

        Parameters
        ----------
        index : int
            The blob's position in :attr:`Encoded.blobs`.
        buffers : sequence of memoryview
            Writable byte views, filled one after the other; their sizes add up to the blob's.
        """
        ...

    def size(self, index: int) -> int:
        """Size in bytes of blob ``index``.

        Parameters
        ----------
        index : int
            The blob's position in :attr:`Encoded.blobs`.

        Returns
        -------
        int
            The size recorded when the blob was written.
        """
        ...

    def path(self, index: int) -> str:
        """Verified path of blob ``index`` on disk (for memory mapping or file-based loaders).

        Parameters
        ----------
        index : int
            The blob's position in :attr:`Encoded.blobs`.

        Returns
        -------
        str
            The blob's file in the store: read it, never write to it.
        """
        ...


class Codec:
    """Base class of codecs. Subclasses set ``name`` and implement the three methods.

    Attributes
    ----------
    name : str
        Recorded in every entry the codec writes; the entry is read back only by the codec
        of that name, so it must stay stable across releases.
    """

    name: str = ""

    def can_encode(self, obj: Any) -> bool:
        """Whether this codec handles ``obj``.

        Parameters
        ----------
        obj : object
            The value about to be stored.

        Returns
        -------
        bool
            ``True`` to take ``obj``; the first codec that says so writes it.
        """
        raise NotImplementedError

    def encode(self, obj: Any) -> Encoded:
        """Turn ``obj`` into blobs and meta.

        Parameters
        ----------
        obj : object
            A value :meth:`can_encode` accepted.

        Returns
        -------
        Encoded
            The blobs and meta to store.
        """
        raise NotImplementedError

    def decode(
        self, meta: dict[str, Any], source: BlobSource, *, mmap_mode: str | None = None
    ) -> Any:
        """Rebuild the value from ``meta`` and the blobs of ``source``.

        Parameters
        ----------
        meta : dict
            The ``meta`` :meth:`encode` returned.
        source : BlobSource
            Verified reads of the blobs :meth:`encode` returned.
        mmap_mode : str, optional
            A ``numpy.load`` mmap mode (``"r"``...), for codecs that can map arrays;
            others ignore it.

        Returns
        -------
        object
            The value.
        """
        raise NotImplementedError
