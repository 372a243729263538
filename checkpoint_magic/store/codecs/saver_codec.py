"""The store adapter of savers: :class:`SaverCodec`, one blob per file a saver writes.

The store's codec lookup (:mod:`checkpoint_magic.store.codecs.serializers`) wraps each saver
registered for the store in a :class:`SaverCodec`; saver names live with the savers.
"""

from __future__ import annotations

import logging
import mmap
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ...savers.base import class_path, safe_can_save, saver_name
from .base import BlobSource, Codec, Encoded

# Log under the public module's name: these records belong to the savers' log.
logger = logging.getLogger("checkpoint_magic.savers")

#: Files at least this large are handed to the store memory-mapped instead of read into memory.
_MMAP_MIN_BYTES = 1 << 20
#: Blobs smaller than this are written out from memory; larger ones are copied file to file.
_FILE_COPY_MIN_BYTES = 64 * 1024


def _safe_relpath(rel: str) -> str:
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts:
        raise ValueError(
            f"a saver file name must be a relative path inside its directory, not {rel!r}"
        )
    return rel


def _file_buffer(path: str) -> Any:
    """The bytes of a file: memory-mapped when large (POSIX keeps the map valid after deletion)."""
    size = os.path.getsize(path)
    if size == 0:
        return b""
    if size < _MMAP_MIN_BYTES or os.name != "posix":
        with open(path, "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))


def _materialize(source: BlobSource, index: int, dest: str) -> None:
    """Put a private copy of the verified blob ``index`` at ``dest``.

    Never a hard link: a blob is shared by every entry with the same content, and a saver
    that opens its file in ``"a"`` or ``"r+"`` mode would change the stored blob in place
    (and every entry that shares it). The copy costs one write of the blob's size per load
    (to the page cache, the disk for large blobs); ``copyfile`` copies in the kernel.
    """
    if source.size(index) < _FILE_COPY_MIN_BYTES:
        Path(dest).write_bytes(source.read_bytes(index))
        return
    shutil.copyfile(source.path(index), dest)  # path() verified the blob against its digest


class SaverCodec(Codec):
    """Adapter that lets the store keep a value through a :class:`Saver` (one blob per file).

    ``encode`` calls ``saver.save(obj, tmpdir)`` and turns each produced file into a blob
    (meta: relative file names, empty directories, saver class). ``decode`` copies the
    verified blobs into a temporary directory and calls ``saver.load(dir)``: private
    copies, never hard links, since a saver may open its files for writing.

    Parameters
    ----------
    saver : Saver
        The saver to adapt. The codec is named ``"saver:" + saver_name(saver)``, so a
        value is read back only by the same saver.

    Examples
    --------
    >>> from checkpoint_magic.savers import StripUnpicklableSaver
    >>> SaverCodec(StripUnpicklableSaver()).name
    'saver:checkpoint_magic.savers.StripUnpicklableSaver'
    """

    def __init__(self, saver: Any):
        self.saver = saver
        self.name = "saver:" + saver_name(saver)

    def __repr__(self) -> str:
        return f"SaverCodec({self.saver!r})"

    def can_encode(self, obj: Any) -> bool:
        """Ask the saver's ``can_save``; a saver that raises declines (logged).

        Parameters
        ----------
        obj : object
            The value about to be stored.

        Returns
        -------
        bool
            Whether the saver takes ``obj``.
        """
        return safe_can_save(self.saver, obj)

    def encode(self, obj: Any) -> Encoded:
        """Let the saver write ``obj`` into a temporary directory; one blob per file.

        Parameters
        ----------
        obj : object
            A value :meth:`can_encode` accepted.

        Returns
        -------
        Encoded
            A blob per file (large files memory-mapped), and the file and directory names.
        """
        tmp = tempfile.mkdtemp(prefix="checkpoint-magic-save-")
        try:
            self.saver.save(obj, tmp)
            files: list[str] = []
            dirs: list[str] = []
            for root, subdirs, names in os.walk(tmp):
                subdirs.sort()
                rel_root = os.path.relpath(root, tmp)
                if rel_root != "." and not names and not subdirs:
                    dirs.append(Path(rel_root).as_posix())
                files.extend(
                    Path(rel_root, n).as_posix() if rel_root != "." else n for n in sorted(names)
                )
            blobs = [[_file_buffer(os.path.join(tmp, rel))] for rel in files]
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return Encoded(blobs, {"files": files, "dirs": dirs, "saver": class_path(self.saver)})

    def decode(
        self, meta: dict[str, Any], source: BlobSource, *, mmap_mode: str | None = None
    ) -> Any:
        """Copy the verified blobs into a temporary directory and let the saver load it.

        Parameters
        ----------
        meta : dict
            The ``meta`` :meth:`encode` returned.
        source : BlobSource
            Verified reads of the blobs.
        mmap_mode : str, optional
            Ignored: a saver reads its own files.

        Returns
        -------
        object
            What the saver's ``load`` returned.

        Raises
        ------
        ValueError
            ``meta`` names a file outside the directory (a damaged entry).
        """
        tmp = tempfile.mkdtemp(prefix="checkpoint-magic-load-")
        try:
            for rel in meta.get("dirs", ()):
                os.makedirs(os.path.join(tmp, _safe_relpath(rel)), exist_ok=True)
            for index, rel in enumerate(meta.get("files", ())):
                dest = os.path.join(tmp, _safe_relpath(rel))
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                _materialize(source, index, dest)
            return self.saver.load(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
