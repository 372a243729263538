"""Where the pipeline wrappers' checkpoint files live: local paths, or URLs through fsspec.

:func:`file_ops` gives the file operations of a ``features_dir`` / ``model_path``: for a
local path the functions of :mod:`.files` and :mod:`.producer` as they are; for a URL
(``s3://bucket/prefix``, ``gs://...``, ``memory://...``) their fsspec counterparts here:

- a file is written locally (a temporary file, by the same ``save_func``) and uploaded with
  one ``put_file``: an object PUT is atomic, so a reader sees the old object or the whole
  new one, never part of a file;
- the producer digest is read with one small ranged read (``cat_file(start=0, end=N)``):
  checking that a sample's file is current costs one round trip;
- a file is loaded by downloading it to memory and opening that (``h5py.File(io.BytesIO)``),
  or, for a custom ``load_func`` that wants a path, through a temporary local copy.

Credentials and the endpoint come from the standard environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``...) and ``CHECKPOINT_MAGIC_STORAGE_OPTIONS``, as for URL stores. A
failure to reach the URL is a :class:`~checkpoint_magic.store.backends.url.StoreUnreachableError`
naming it.

Examples
--------
>>> import numpy as np
>>> from sklearn.preprocessing import FunctionTransformer
>>> from checkpoint_magic.pipelines import CheckpointWrapper, Sample, SampleWrapper
>>> samples = [Sample(np.full(2, i), key=str(i)) for i in range(3)]
>>> url = "memory://doc-remote/features"
>>> wrapper = CheckpointWrapper(SampleWrapper(FunctionTransformer(np.sqrt)), url)
>>> first, again = wrapper.transform(samples), wrapper.transform(samples)
>>> fs, root = url_fs(url)
>>> sorted(p.rsplit("/", 1)[1] for p in fs.find(root)), again[2].data
(['0.h5', '1.h5', '2.h5'], array([1.41421356, 1.41421356]))
"""

from __future__ import annotations

import io
import logging
import os
import posixpath
import re
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

from .. import config
from ..exceptions import InvalidArgumentError
from ..store.backends.url import StoreUnreachableError
from .files import FileLoader, atomic_save, check_attempts, load_hdf5, load_pickle, retry_delay
from .producer import DIGEST_BYTES, description_in, digest_in, read_description, read_digest

__all__ = [
    "FileOps",
    "UrlLoader",
    "file_ops",
    "is_url",
    "remove_file",
    "url_fs",
]

logger = logging.getLogger(__name__)

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+)://")
#: Loaders that read a file object as well as a path: they get the downloaded bytes.
_READS_FILE_OBJECTS = (load_hdf5, load_pickle)


def is_url(location: str | os.PathLike[str] | None) -> bool:
    """Whether ``location`` is a URL (``s3://...``); ``file://`` URLs and paths are local.

    Parameters
    ----------
    location : str or os.PathLike or None
        A ``features_dir`` or ``model_path``.

    Returns
    -------
    bool
        True for a URL whose scheme is not ``file``.

    Examples
    --------
    >>> is_url("s3://bucket/features"), is_url("features"), is_url("C:/data"), is_url(None)
    (True, False, False, False)
    """
    if location is None:
        return False
    match = _URL.match(os.fspath(location))
    return match is not None and match.group(1).lower() != "file"


def url_fs(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path of ``url`` on it.

    Parameters
    ----------
    url : str
        A URL such as ``s3://bucket/prefix/0.h5``.

    Returns
    -------
    tuple
        ``(filesystem, path)``; fsspec caches the filesystem, so this is cheap to repeat.

    Raises
    ------
    ImportError
        fsspec, or the filesystem's package (s3fs, gcsfs...), is not installed.
    InvalidArgumentError
        fsspec knows no filesystem for the URL's protocol.
    """
    try:
        import fsspec
    except ImportError as exc:
        raise ImportError(
            f"{url} needs fsspec: pip install 'checkpoint_magic[s3]' (s3fs) or fsspec and the "
            "filesystem's package"
        ) from exc
    try:
        fs, path = fsspec.core.url_to_fs(url, **config.storage_options())
    except ValueError as exc:
        raise InvalidArgumentError(f"cannot open {url}: {exc}") from exc
    return fs, path


def _unreachable(url: str, exc: BaseException) -> StoreUnreachableError:
    return StoreUnreachableError(
        f"checkpoint file {url} cannot be reached ({type(exc).__name__}: {exc}); check the "
        "URL, AWS_ENDPOINT_URL / credentials and the network"
    )


def url_digest(url: str) -> str | None:
    """:func:`~.producer.read_digest` of a URL: one ranged read of the first bytes.

    Parameters
    ----------
    url : str
        A checkpoint file (or its sidecar) in object storage.

    Returns
    -------
    str or None
        The producer digest; :data:`~.producer.NO_RECORD` (``""``) for an object without a
        record; ``None`` if the object does not exist.

    Raises
    ------
    StoreUnreachableError
        When the object storage cannot be reached (credentials, endpoint, network).
    """
    fs, path = url_fs(url)
    try:
        head = fs.cat_file(path, start=0, end=DIGEST_BYTES)
    except FileNotFoundError:
        return None
    except Exception as exc:  # re-raised as one clear error naming the URL
        raise _unreachable(url, exc) from exc
    return digest_in(head)


def url_description(url: str) -> dict[str, list[Any]] | None:
    """:func:`~.producer.read_description` of a URL (reads the record only).

    Parameters
    ----------
    url : str
        A checkpoint file (or its sidecar) in object storage.

    Returns
    -------
    dict of str to list or None
        The description, or ``None`` when the object has no readable record (or cannot be
        read: logged at DEBUG).
    """
    fs, path = url_fs(url)
    try:
        with fs.open(path, "rb", block_size=1 << 16) as f:
            return description_in(f)
    except (OSError, ValueError) as exc:
        logger.debug("No readable producer record in %s: %s", url, exc)
        return None


def url_isfile(url: str) -> bool:
    """Whether the object ``url`` exists.

    Parameters
    ----------
    url : str
        An object in object storage.

    Returns
    -------
    bool
        True if it exists as a file (not as a folder prefix).

    Raises
    ------
    StoreUnreachableError
        When the object storage cannot be reached (credentials, endpoint, network).
    """
    fs, path = url_fs(url)
    try:
        return bool(fs.isfile(path))
    except Exception as exc:  # re-raised as one clear error naming the URL
        raise _unreachable(url, exc) from exc


def upload(
    save_func: Callable[[Any, str], Any],
    data: Any,
    url: str,
    *,
    attempts: int = 1,
    suffix: str = "",
) -> None:
    """:func:`~.files.atomic_save` to a URL: save to a local temporary file, then one upload.

    Parameters
    ----------
    save_func : callable
        ``save_func(data, path)`` writes ``data`` to the local ``path``.
    data : object
        What to save.
    url : str
        The object to write.
    attempts : int, default=1
        How many times to try.
    suffix : str, default=""
        Ending of the temporary file's name.

    Raises
    ------
    Exception
        Whatever ``save_func`` or the upload raised on the last attempt.
    """
    attempts = check_attempts(attempts)
    fs, path = url_fs(url)
    with tempfile.TemporaryDirectory(prefix="checkpoint-magic-upload-") as tmpdir:
        for attempt in range(1, attempts + 1):
            tmp = os.path.join(tmpdir, f"{uuid.uuid4().hex[:16]}{suffix}")
            try:
                save_func(data, tmp)
                fs.put_file(tmp, path)  # one PUT: atomic
                return
            except Exception as exc:  # retried below; the last one propagates
                if attempt == attempts:
                    raise
                logger.warning(
                    "Uploading %s failed (attempt %d of %d), retrying: %s: %s",
                    url,
                    attempt,
                    attempts,
                    type(exc).__name__,
                    exc,
                )
            finally:
                if os.path.exists(tmp):
                    os.remove(tmp)
            time.sleep(retry_delay(attempt))


def remove_file(path: str) -> None:
    """Remove the local file ``path`` if it exists (a failure is logged as a warning).

    Parameters
    ----------
    path : str
        The file; a missing one is no error.
    """
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.warning("Could not remove %s: %s", path, exc)


def remove_url(url: str) -> None:
    """Remove the object ``url`` if it exists (a failure is logged as a warning).

    Parameters
    ----------
    url : str
        The object; a missing one is no error.
    """
    fs, path = url_fs(url)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    except Exception as exc:  # as for a local file: the file is simply recomputed later
        logger.warning("Could not remove %s: %s", url, exc)


class UrlLoader(FileLoader):
    """:class:`~.files.FileLoader` of a URL: downloads the object, then loads it.

    ``load_hdf5`` and ``load_pickle`` read the downloaded bytes in memory; another
    ``load_func`` gets a temporary local copy (removed after the call).
    """

    __slots__ = ()

    def read(self) -> Any:
        """Download the object and load it with ``load_func``.

        Returns
        -------
        object
            What ``load_func`` returned.

        Raises
        ------
        OSError
            When the object cannot be downloaded now (:meth:`__call__` retries it).
        """
        fs, path = url_fs(self.path)
        if self.load_func in _READS_FILE_OBJECTS:
            return self.load_func(io.BytesIO(fs.cat_file(path)))
        suffix = posixpath.splitext(path)[1]
        with tempfile.TemporaryDirectory(prefix="checkpoint-magic-download-") as tmpdir:
            local = os.path.join(tmpdir, f"file{suffix}")
            fs.get_file(path, local)
            return self.load_func(local)

    def __repr__(self) -> str:
        return "Url" + super().__repr__()


class FileOps(NamedTuple):
    """The file operations of one location (see :func:`file_ops`).

    Attributes
    ----------
    join : callable
        Joins path parts (``os.path.join`` or ``posixpath.join``).
    read_digest : callable
        ``read_digest(path) -> str or None``: the producer digest recorded in a file.
    read_description : callable
        ``read_description(path) -> dict or None``: the producer description in a file.
    isfile : callable
        ``isfile(path) -> bool``.
    save : callable
        ``save(save_func, data, path, *, attempts, suffix)``: an atomic write of one file.
    remove : callable
        ``remove(path)``: removes a file if it exists.
    loader : type of FileLoader
        The picklable loader of one file (:class:`FileLoader` or :class:`UrlLoader`).
    """

    join: Callable[..., str]
    read_digest: Callable[[str], str | None]
    read_description: Callable[[str], dict[str, list[Any]] | None]
    isfile: Callable[[str], bool]
    save: Callable[..., None]
    remove: Callable[[str], None]
    loader: type[FileLoader]


LOCAL_OPS = FileOps(
    os.path.join,
    read_digest,
    read_description,
    os.path.isfile,
    atomic_save,
    remove_file,
    FileLoader,
)
URL_OPS = FileOps(
    posixpath.join, url_digest, url_description, url_isfile, upload, remove_url, UrlLoader
)


def file_ops(location: str | os.PathLike[str] | None) -> FileOps:
    """The file operations of ``location``: :data:`URL_OPS` for a URL, else :data:`LOCAL_OPS`.

    Parameters
    ----------
    location : str or os.PathLike or None
        A ``features_dir`` or ``model_path``.

    Returns
    -------
    FileOps
        How to join, read, write and remove files there.

    Examples
    --------
    >>> file_ops("memory://x").loader.__name__, file_ops("features").loader.__name__
    ('UrlLoader', 'FileLoader')
    """
    return URL_OPS if is_url(location) else LOCAL_OPS
