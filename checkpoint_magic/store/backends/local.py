"""The local-filesystem store backend, and the one atomic-write helper for local files.

Every write walks from the store root one folder at a time with ``O_NOFOLLOW`` (``openat``
on the folder descriptors), so a folder replaced by a symbolic link is refused
(:class:`~checkpoint_magic.store.backends.base.UnsafeStoreError`) instead of followed out
of the store; files are created with ``O_EXCL | O_NOFOLLOW`` under unpredictable names and
moved into place with ``rename``/``link`` relative to those descriptors. The root itself may
be a link: choosing where the store lives is the user's right.

Examples
--------
>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> atomic_write(os.path.join(d, "a.json"), b"{}")
>>> open(os.path.join(d, "a.json"), "rb").read()
b'{}'
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as stat_module
import uuid
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO

from ..blobs import TOFILE_MIN, write_full, write_to_fd
from ..layout import staging as new_staging_name
from .base import Staged, Stat, StoreBackend, UnsafeStoreError

__all__ = ["LocalBackend", "atomic_write"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# O_NONBLOCK: a FIFO planted where a file should be must not hang the open (the fstat
# that follows refuses anything but a regular file; reads of regular files never block).
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def atomic_write(path: str | os.PathLike[str], data: bytes) -> None:
    """Replace the local file ``path`` with ``data`` atomically.

    The data goes to a new file of an unpredictable name in the same folder (created with
    ``O_EXCL | O_NOFOLLOW``, so a planted link is never written through), then is renamed
    over ``path``: readers see the old content or the new one, never a part.

    Parameters
    ----------
    path : str or os.PathLike
        The file to replace; its folder must exist.
    data : bytes
        The new content.

    Raises
    ------
    OSError
        The folder is missing or not writable; no partial file is left behind.
    """
    path = os.fspath(path)
    folder, leaf = os.path.split(path)
    tmp = os.path.join(folder, f".{leaf}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, _NEW_FILE, 0o644)
    try:
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _version(st: os.stat_result) -> tuple[int, int, int]:
    """A local file's identity: any replacement or change of it gives another."""
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _not_a_folder(root: str) -> NotADirectoryError:
    return NotADirectoryError(
        errno.ENOTDIR, "the store location exists and is not a directory", root
    )


def _refused(path: str) -> UnsafeStoreError:
    return UnsafeStoreError(
        errno.ELOOP,
        f"{path} is a symbolic link (or not a folder) the checkpoint store did not create; "
        "nothing is written through it. Remove it, or point the store at another directory",
    )


class LocalBackend(StoreBackend):
    """A store in a local directory.

    Parameters
    ----------
    root : str
        The store directory (absolute); created on the first write.
    """

    files_are_local = True
    tracks_folders = True

    def __init__(self, root: str | os.PathLike[str]):
        self.root = os.path.abspath(os.fspath(root))
        self.location = self.root

    def __repr__(self) -> str:
        return f"LocalBackend({self.root!r})"

    def path(self, name: str) -> str:
        """The local path of a store name.

        Parameters
        ----------
        name : str
            A store name (``""`` for the root).

        Returns
        -------
        str
            ``<root>/<name>``; nothing is checked on disk.
        """
        return f"{self.root}/{name}" if name else self.root

    # ------------------------------------------------------------------ folders
    @contextlib.contextmanager
    def _folder(self, folder: str, *, create: bool) -> Iterator[int]:
        """A descriptor of ``folder``, reached from the root without following links."""
        fd = self._descend(self._open_root(create), folder, create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    def _open_root(self, create: bool) -> int:
        """A descriptor of the store root (created if ``create``); the caller closes it."""
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:  # a new store, or one deleted meanwhile
            if not create:
                raise
            try:
                os.makedirs(self.root, exist_ok=True)
            except FileExistsError:  # a dangling link where the store should be
                raise _not_a_folder(self.root) from None
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except NotADirectoryError:
            if not create:
                raise
            raise _not_a_folder(self.root) from None  # a file where the store should be

    def _descend(self, fd: int, folder: str, *, create: bool, keep: bool = False) -> int:
        """A descriptor of ``folder`` below the folder ``fd``, no link followed.

        ``fd`` is closed unless ``keep``; the caller closes the descriptor returned (``fd``
        itself, not a copy, when ``folder`` is ``""`` and not ``keep``).
        """
        if not folder:
            return os.dup(fd) if keep else fd
        first = True
        try:
            for part in folder.split("/"):
                try:
                    child = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, 0o777, dir_fd=fd)
                    child = self._open_child(fd, part, folder)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise _refused(self.path(folder)) from None
                    raise
                if not (first and keep):
                    os.close(fd)
                first = False
                fd = child
            return fd
        except BaseException:
            if not (first and keep):
                os.close(fd)
            raise

    @contextlib.contextmanager
    def _folders(self, source: str, target: str) -> Iterator[tuple[int, int]]:
        """Descriptors of an existing ``source`` folder and of ``target`` (created), the root
        opened once."""
        root = self._open_root(create=False)
        try:
            sfd = self._descend(root, source, create=False, keep=True)
            try:
                dfd = self._descend(root, target, create=True, keep=True)
            except BaseException:
                os.close(sfd)
                raise
        finally:
            os.close(root)
        try:
            yield sfd, dfd
        finally:
            os.close(sfd)
            os.close(dfd)

    def _open_child(self, fd: int, part: str, folder: str) -> int:
        try:
            return os.open(part, _DIR_FLAGS, dir_fd=fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _refused(self.path(folder)) from None
            raise

    @staticmethod
    def _split(name: str) -> tuple[str, str]:
        folder, _, leaf = name.rpartition("/")
        return folder, leaf

    def exists(self) -> bool:
        return os.path.isdir(self.root)

    def is_empty(self) -> bool:
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            return True
        if not stat_module.S_ISDIR(st.st_mode):
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", self.root)
        with os.scandir(self.root) as it:
            return next(it, None) is None

    def ensure(self, folders: Sequence[str]) -> None:
        for folder in folders:
            with self._folder(folder, create=True):
                pass

    # ------------------------------------------------------------------ reading
    def _open_regular(self, name: str) -> tuple[int, os.stat_result]:
        """A descriptor of the regular file ``name`` and its stat; the caller closes it."""
        try:
            fd = os.open(self.path(name), _READ)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _refused(self.path(name)) from None
            raise
        try:
            st = os.fstat(fd)
            if not stat_module.S_ISREG(st.st_mode):
                raise FileNotFoundError(errno.ENOENT, "not a regular file", self.path(name))
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def open_read(self, name: str) -> tuple[BinaryIO, Stat]:
        fd, st = self._open_regular(name)
        try:
            f = open(fd, "rb", buffering=0)  # noqa: SIM115 - the caller closes it
        except BaseException:
            os.close(fd)
            raise
        return f, self._stat(st)

    def read_small(self, name: str, limit: int) -> tuple[bytes, Stat]:
        try:
            fd, st = self._open_regular(name)
        except NotADirectoryError:  # a file where a folder should be: nothing stored (as stat)
            raise FileNotFoundError(errno.ENOENT, "not stored", self.path(name)) from None
        try:
            want = min(st.st_size, limit) + 1  # one byte more than the size: a read to EOF
            data = os.read(fd, want)
            while len(data) < want - 1:  # a short read before the end (rare on local files)
                more = os.read(fd, want - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(fd)
        return data, self._stat(st)

    @staticmethod
    def _stat(st: os.stat_result) -> Stat:
        return Stat(st.st_size, st.st_mtime, _version(st))

    def read_bytes(self, name: str, limit: int | None = None) -> bytes:
        if limit is not None and limit <= 1 << 20:
            return self.read_small(name, limit)[0]
        f, _ = self.open_read(name)
        with f:
            chunks = []
            remaining = -1 if limit is None else limit + 1
            while remaining:
                chunk = f.read(1 << 16 if remaining < 0 else min(remaining, 1 << 16))
                if not chunk:
                    break
                chunks.append(chunk)
                if remaining > 0:
                    remaining -= len(chunk)
            return b"".join(chunks)

    def local_path(self, name: str) -> str | None:
        return self.path(name)

    def stat(self, name: str) -> Stat | None:
        try:
            st = os.stat(self.path(name), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._stat(st) if stat_module.S_ISREG(st.st_mode) else None

    def version(self, name: str) -> Any:
        try:
            st = os.stat(f"{self.root}/{name}", follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        # _stat's version, without building a Stat (the hit path).
        return _version(st) if stat_module.S_ISREG(st.st_mode) else None

    def stat_folder(self, folder: str) -> Stat | None:
        try:
            st = os.stat(self.path(folder), follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._stat(st) if stat_module.S_ISDIR(st.st_mode) else None

    def list_files(self, folder: str) -> list[tuple[str, Stat]]:
        found = []
        try:
            with os.scandir(self.path(folder)) as it:
                for e in it:
                    with contextlib.suppress(FileNotFoundError):
                        if e.is_file(follow_symlinks=False):
                            found.append((e.name, self._stat(e.stat(follow_symlinks=False))))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return sorted(found, key=lambda item: item[0])

    def list_names(self, folder: str) -> list[str]:
        try:  # a directory entry's type comes with it: no stat per file
            with os.scandir(self.path(folder)) as it:
                return sorted(e.name for e in it if e.is_file(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def first_file(self, folder: str) -> str | None:
        try:  # stop at the first file: no listing of every entry
            with os.scandir(self.path(folder)) as it:
                return next((e.name for e in it if e.is_file(follow_symlinks=False)), None)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def list_folders(self, folder: str) -> list[str]:
        try:
            with os.scandir(self.path(folder)) as it:
                return sorted(e.name for e in it if e.is_dir(follow_symlinks=False))
        except (FileNotFoundError, NotADirectoryError):
            return []

    # ------------------------------------------------------------------ writing
    def stage(self, name: str, views: Sequence[memoryview], *, fsync: bool = False) -> Staged:
        return self._stage(name, views, fsync=fsync, small=False)

    def _stage(self, name: str, views: Sequence[memoryview], *, fsync: bool, small: bool) -> Staged:
        folder, leaf = self._split(name)
        size = sum(v.nbytes for v in views)
        with self._folder(folder, create=True) as dfd:
            fd = os.open(leaf, _NEW_FILE, 0o644, dir_fd=dfd)
            try:
                if size < TOFILE_MIN:  # no file object: three system calls fewer
                    try:
                        for view in views:
                            if small:  # bookkeeping records, not the data path
                                write_to_fd(fd, view)
                            else:
                                write_full(fd, view)
                        if fsync:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
                else:
                    with open(fd, "wb") as f:
                        for view in views:
                            write_full(f, view)
                        if fsync:
                            f.flush()
                            os.fsync(fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(leaf, dir_fd=dfd)
                raise
        return Staged(name, size)

    def publish(self, staged: Staged, name: str, *, replace: bool = True) -> bool:
        src_folder, src = self._split(staged.name)
        folder, leaf = self._split(name)
        try:
            with self._folders(src_folder, folder) as (sfd, dfd):
                if replace:
                    os.replace(src, leaf, src_dir_fd=sfd, dst_dir_fd=dfd)
                    return True
                try:
                    os.link(src, leaf, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                    created = True
                except FileExistsError:
                    created = False
                except OSError as exc:  # no hard links here (some network filesystems)
                    if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
                        raise
                    created = not self._exists_at(dfd, leaf)
                    if created:
                        os.replace(src, leaf, src_dir_fd=sfd, dst_dir_fd=dfd)
                        return True
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(src, dir_fd=sfd)
                return created
        except BaseException:
            self.discard(staged)
            raise

    @staticmethod
    def _exists_at(dfd: int, leaf: str) -> bool:
        try:
            os.stat(leaf, dir_fd=dfd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def discard(self, staged: Staged) -> None:
        with contextlib.suppress(OSError):
            self.delete(staged.name)

    def write(self, name: str, data: bytes, *, staging: str | None = None) -> bool:
        staged = self._stage(
            staging or new_staging_name(), [memoryview(data)], fsync=False, small=True
        )
        return self.publish(staged, name)

    def create(self, name: str, data: bytes, *, whole: bool = True) -> bool:
        if whole:  # staged, then linked: the name appears with its whole content
            staged = self._stage(new_staging_name(), [memoryview(data)], fsync=False, small=True)
            return self.publish(staged, name, replace=False)
        try:  # written in place: created exclusively, removed again if the write fails
            self._stage(name, [memoryview(data)], fsync=False, small=True)
        except FileExistsError:
            return False
        return True

    def touch(self, name: str) -> bool:
        folder, leaf = self._split(name)
        try:
            with self._folder(folder, create=False) as dfd:
                os.utime(leaf, dir_fd=dfd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def move(self, name: str, new_name: str) -> bool:
        src_folder, src = self._split(name)
        folder, leaf = self._split(new_name)
        try:
            with self._folders(src_folder, folder) as (sfd, dfd):
                os.replace(src, leaf, src_dir_fd=sfd, dst_dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False

    def delete(self, name: str) -> bool:
        folder, leaf = self._split(name)
        try:
            with self._folder(folder, create=False) as dfd:
                os.unlink(leaf, dir_fd=dfd)
            return True
        except FileNotFoundError:
            return False

    def delete_folder(self, folder: str) -> bool:
        parent, leaf = self._split(folder)
        try:
            with self._folder(parent, create=False) as dfd:
                os.rmdir(leaf, dir_fd=dfd)
            return True
        except OSError:
            return False
