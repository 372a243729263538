"""``SampleBatch``: one attribute of many samples seen as one array-like."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SampleBatch"]


class SampleBatch(Sequence):
    """An array-like view of one attribute over many samples.

    ``np.asarray(batch)`` stacks the attribute of every sample into one array;
    ``batch[i]`` is the attribute of sample ``i``.

    Parameters
    ----------
    samples
        A sequence of samples.
    sample_attribute
        The attribute to show (``"data"`` by default).

    Examples
    --------
    >>> import numpy as np
    >>> from checkpoint_magic.pipelines import Sample
    >>> batch = SampleBatch([Sample(np.zeros(2)), Sample(np.ones(2))])
    >>> len(batch), batch[1]
    (2, array([1., 1.]))
    >>> np.asarray(batch, dtype=int)
    array([[0, 0],
           [1, 1]])
    """

    def __init__(self, samples: Sequence[Any], sample_attribute: str = "data") -> None:
        self.samples = samples
        self.sample_attribute = sample_attribute

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: Any) -> Any:
        if isinstance(item, slice):
            return SampleBatch(self.samples[item], self.sample_attribute)
        return getattr(self.samples[item], self.sample_attribute)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("A SampleBatch cannot be viewed as an array without a copy.")
        values = [np.asarray(getattr(s, self.sample_attribute)) for s in self.samples]
        if not values:
            return np.array([], dtype=dtype)
        if all(v.shape == values[0].shape for v in values):
            out = np.stack(values)
            return out if dtype is None else out.astype(dtype, copy=False)
        raise ValueError(
            f"The {self.sample_attribute!r} attributes of these samples have different "
            "shapes, so they cannot be stacked into one array; iterate over the batch instead."
        )

    def __repr__(self) -> str:
        return (
            f"SampleBatch(n_samples={len(self.samples)}, "
            f"sample_attribute={self.sample_attribute!r})"
        )
