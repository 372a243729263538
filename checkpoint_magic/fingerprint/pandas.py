"""Fingerprints of pandas objects and of Arrow-encodable string arrays (an extension of ``values``).

A DataFrame is hashed as its class, shape, columns Index, row Index, ``attrs`` and each
column's dtype and values; a Series as its name, Index, dtype and values; an Index by its
kind (RangeIndex by start/stop/step, MultiIndex by levels, codes and names, datetime-like
indexes with their ``freq``). Column values are hashed without a per-row Python loop wherever
the storage allows:

- numpy-backed columns through zero-copy views of their buffers;
- masked (nullable) arrays as values (zeroed where missing) plus mask;
- categoricals as codes, categories and ``ordered``; datetime-like arrays (tz-aware
  included: the tz is in the dtype name) as their int64 values;
- Arrow-backed strings (pandas 3 ``str``) as three streams over the chunks: int64 lengths,
  UTF-8 data bytes and the null mask, so the digest does not depend on the chunking;
- ``object`` columns and arrays of ``str`` and missing values are converted to Arrow in
  1M-row chunks and hashed the same way, each missing value also hashed as itself (so
  ``None``, ``NaN`` and ``"nan"`` differ); anything else (bytes, numbers, mixed types) is
  hashed element by element, so str and bytes differ. On this path a ``str`` subclass
  element (``np.str_``) counts as its text.
- any other extension array as an object array.

Any error on an Arrow fast path (e.g. a lone surrogate, which Arrow cannot encode) means
"no fast path": the values are then hashed element by element, which takes every ``str``.

Examples
--------
>>> import pandas as pd
>>> from checkpoint_magic.fingerprint.values import fingerprint
>>> fingerprint(pd.Series([1, 2])) == fingerprint(pd.Series([1, 2]))
True
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import numpy as np

from .arrays import array_body
from .stdtypes import hash_str
from .values import HOP_ITEM, Fingerprinter, Handler, pack_tag, qualname, xxh

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20  # rows converted to Arrow / lengths computed at a time
_I8 = struct.Struct("<q").pack


def handler_for(cls: type) -> Handler | None:
    """Return the handler of a pandas data type (memoised by id, tag ``P``), None for other types.

    Registered with :func:`checkpoint_magic.fingerprint.values.register` as a resolver.

    Parameters
    ----------
    cls : type
        The type of the value to hash.

    Returns
    -------
    Handler or None
        ``handler(fp, obj, h)`` for DataFrame, Series, Index and extension arrays.

    Examples
    --------
    >>> import pandas as pd
    >>> handler_for(pd.DataFrame) is not None, handler_for(dict) is None
    (True, True)
    """
    if not (getattr(cls, "__module__", None) or "").startswith("pandas"):
        return None
    fill = fill_for(cls)
    if fill is None:
        return None
    return lambda fp, obj, h: fp.memoised(obj, h, b"P", fill)


def fill_for(cls: type) -> Handler | None:
    """Return the function that fills a hasher with a ``cls`` value, None if not pandas data.

    Parameters
    ----------
    cls : type
        A type from the ``pandas`` package.

    Returns
    -------
    Handler or None
        ``fill(fp, obj, h)`` (not memoised; :func:`handler_for` wraps it).

    Examples
    --------
    >>> import pandas as pd
    >>> fill_for(pd.Series) is not None, fill_for(pd.Timestamp) is None
    (True, True)
    """
    import pandas as pd

    if issubclass(cls, pd.DataFrame):
        return _fill_frame
    if issubclass(cls, pd.Series):
        return _fill_series
    if issubclass(cls, pd.Index):
        return _fill_index
    if issubclass(cls, pd.api.extensions.ExtensionArray):
        return _fill_values
    return None


def _values(obj: Any) -> Any:
    """The values of a Series or Index: a (zero-copy) ndarray or an ExtensionArray."""
    return obj.to_numpy() if isinstance(obj.dtype, np.dtype) else obj.array


def _fill_frame(fp: Fingerprinter, df: Any, h: Any) -> None:
    h.update(b"f")
    hash_str(fp, qualname(type(df)), h)
    h.update(_I8(df.shape[0]) + _I8(df.shape[1]))
    fp.walk(df.columns, h)
    fp.walk(df.index, h)
    fp.walk(dict(df.attrs), h)
    columns = df.columns
    column_array = getattr(df, "_get_column_array", None)  # 40x faster than .iloc[:, i]
    for i in range(df.shape[1]):
        values = column_array(i) if column_array is not None else df.iloc[:, i].array
        if isinstance(values.dtype, np.dtype):
            values = np.asarray(values)  # a zero-copy view of the numpy block
        fp.hop(values, HOP_ITEM, columns[i])
        _fill_values(fp, values, h)


def _fill_series(fp: Fingerprinter, ser: Any, h: Any) -> None:
    h.update(b"s")
    hash_str(fp, qualname(type(ser)), h)
    fp.walk(ser.name, h)
    fp.walk(ser.index, h)
    fp.walk(dict(ser.attrs), h)
    _fill_values(fp, _values(ser), h)


def _fill_index(fp: Fingerprinter, idx: Any, h: Any) -> None:
    import pandas as pd

    h.update(b"i")
    hash_str(fp, qualname(type(idx)), h)
    if isinstance(idx, pd.RangeIndex):
        h.update(_I8(idx.start) + _I8(idx.stop) + _I8(idx.step))
        fp.walk(idx.name, h)
    elif isinstance(idx, pd.MultiIndex):
        h.update(pack_tag(b"m", idx.nlevels))
        fp.walk(list(idx.names), h)
        for level, codes in zip(idx.levels, idx.codes, strict=True):
            fp.walk(level, h)
            array_body(fp, np.asarray(codes), h)
    else:
        fp.walk(idx.name, h)
        _fill_values(fp, _values(idx), h)
        if isinstance(idx, (pd.DatetimeIndex, pd.TimedeltaIndex, pd.PeriodIndex)):
            fp.walk(idx.freq, h)  # a DateOffset (walked through its pickled state) or None


def _fill_values(fp: Fingerprinter, values: Any, h: Any) -> None:
    """Dtype and content of one column: an ndarray or any pandas ExtensionArray."""
    import pandas as pd
    from pandas.core.arrays.masked import BaseMaskedArray

    numpy_backed = getattr(pd.arrays, "NumpyExtensionArray", None) or pd.arrays.PandasArray
    if isinstance(values, numpy_backed):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        h.update(b"n")
        array_body(fp, values, h)
        return
    h.update(b"x")
    hash_str(fp, qualname(type(values)), h)
    hash_str(fp, str(values.dtype), h)  # a dtype name such as 'datetime64[ns, UTC]' or 'Int64'
    if isinstance(values, BaseMaskedArray):
        data, mask = values._data, values._mask
        if mask.any():  # the data under the mask is arbitrary
            data = np.where(mask, np.zeros(1, dtype=data.dtype), data)
        array_body(fp, data, h)
        array_body(fp, mask, h)
    elif isinstance(values, pd.Categorical):
        array_body(fp, values.codes, h)
        fp.walk(values.categories, h)
        fp.walk(bool(values.ordered), h)
    elif hasattr(values, "asi8"):  # Datetime/Timedelta/Period arrays, tz-aware included
        array_body(fp, np.asarray(values.asi8), h)
    elif isinstance(values, (pd.arrays.ArrowExtensionArray, pd.arrays.StringArray)):
        try:
            arrow = values.__arrow_array__()
            digest = _arrow_digest(getattr(arrow, "chunks", [arrow]), len(values), fp.seed)
        except Exception as exc:  # noqa: BLE001 - any failure: no fast path (e.g. surrogates)
            logger.debug("no Arrow fast path for a %s column (%r)", values.dtype, exc)
            digest = None
        if digest is not None:
            h.update(b"S")
            h.update(digest)
        else:
            h.update(b"O")
            array_body(fp, np.asarray(values, dtype=object), h)
    elif isinstance(values, pd.arrays.IntervalArray):
        _fill_values(fp, _values(values.left), h)
        _fill_values(fp, _values(values.right), h)
    else:
        array_body(fp, np.asarray(values, dtype=object), h)


class _Streams:
    """Three hashers (lengths or values, data bytes, null mask) fed chunk by chunk."""

    def __init__(self, seed: int) -> None:
        self.main: Any = xxh(seed=seed)  # lengths (strings) or values (primitives)
        self.data: Any = xxh(seed=seed)
        self.mask: Any = xxh(seed=seed)
        self.n = 0
        self._lengths = np.empty(0, dtype=np.int64)

    def add_strings(self, chunk: Any) -> bool:
        """Add a string / large_string / null chunk; False for any other Arrow type."""
        import pyarrow as pa

        n = len(chunk)
        if pa.types.is_null(chunk.type):
            self.main.update(np.zeros(n, dtype=np.int64))
            self.mask.update(np.ones(n, dtype=np.bool_))
            self.n += n
            return True
        if not (pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type)):
            return False
        self._mask(chunk)
        if n == 0:
            return True
        _, offsets_buf, data_buf = chunk.buffers()
        width = 8 if pa.types.is_large_string(chunk.type) else 4
        offsets = np.frombuffer(
            offsets_buf, dtype=f"<i{width}", count=n + 1, offset=chunk.offset * width
        )
        if len(self._lengths) < min(n, _CHUNK):
            self._lengths = np.empty(min(n, _CHUNK), dtype=np.int64)
        for start in range(0, n, _CHUNK):
            stop = min(start + _CHUNK, n)
            out = self._lengths[: stop - start]
            np.subtract(offsets[start + 1 : stop + 1], offsets[start:stop], out=out)
            self.main.update(out)
        first, last = int(offsets[0]), int(offsets[-1])
        if last > first:
            self.data.update(data_buf.slice(first, last - first))
        self.n += n
        return True

    def add_primitive(self, chunk: Any) -> bool:
        """Add a numeric / boolean / temporal chunk (nulls zeroed); False for other types."""
        import pyarrow as pa
        import pyarrow.compute as pc

        t = chunk.type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_temporal(t)):  # fmt: skip
            return False
        self._mask(chunk)
        if chunk.null_count:
            chunk = pc.fill_null(chunk, pa.array([0], pa.int64()).cast(t)[0])
        values = chunk.to_numpy(zero_copy_only=False)
        self.main.update(np.ascontiguousarray(values))
        self.n += len(chunk)
        return True

    def _mask(self, chunk: Any) -> None:
        if chunk.null_count:
            self.mask.update(chunk.is_null().to_numpy(zero_copy_only=False))
        else:
            self.mask.update(np.zeros(len(chunk), dtype=np.bool_))

    def digest(self, kind: bytes) -> bytes:
        return pack_tag(kind, self.n) + self.main.digest() + self.data.digest() + self.mask.digest()


def _arrow_digest(chunks: Any, n: int, seed: int) -> bytes | None:
    """Digest of Arrow chunks of strings or primitives, None if they are of another type."""
    streams = _Streams(seed)
    chunks = list(chunks)
    kinds = [c.type for c in chunks]
    import pyarrow as pa

    if all(
        pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t) for t in kinds
    ):
        if not all(streams.add_strings(c) for c in chunks):
            return None
        return streams.digest(b"s")
    if not all(streams.add_primitive(c) for c in chunks):
        return None
    return streams.digest(b"p")


def object_strings_digest(fp: Fingerprinter, flat: np.ndarray) -> bytes | None:
    """Return the digest of a 1-d object array of ``str`` and missing values, else None.

    The array is converted to Arrow 1M items at a time (type inference, no Python loop).
    Missing values (None, NaN, ``pd.NA``, NaT) become Arrow nulls; each of them is then also
    hashed as itself, so that None, NaN and ``"nan"`` all differ. A chunk that Arrow does not
    infer as strings (numbers, bytes, mixed) aborts the fast path.

    Parameters
    ----------
    fp : Fingerprinter
        The walk in progress (its memo, seed and problem reports).
    flat : numpy.ndarray
        A one-dimensional array of dtype ``object``.

    Returns
    -------
    bytes or None
        The digest of the length, data and null streams plus the missing values; None when
        the fast path does not apply (the caller then hashes element by element).

    Examples
    --------
    >>> from checkpoint_magic.fingerprint.values import Fingerprinter
    >>> fp = Fingerprinter()
    >>> object_strings_digest(fp, np.array(["a", None], dtype=object)) is not None
    True
    >>> object_strings_digest(fp, np.array([b"a"], dtype=object)) is None
    True
    """
    import pyarrow as pa

    streams, missing = _Streams(fp.seed), xxh(seed=fp.seed)
    for start in range(0, flat.shape[0], _CHUNK):
        part = flat[start : start + _CHUNK]
        try:
            chunk = pa.array(part, from_pandas=True)
            if not streams.add_strings(chunk):
                return None
            nulls = chunk.is_null().to_numpy(zero_copy_only=False) if chunk.null_count else None
        except Exception as exc:  # noqa: BLE001 - any failure (e.g. a lone surrogate): no fast path
            logger.debug("no Arrow fast path for an object array (%r)", exc)
            return None
        if nulls is not None:
            for x in part[nulls].tolist():
                fp.walk(x, missing)
    return streams.digest(b"o") + missing.digest()
