"""Samples, checkpointing and Dask for scikit-learn pipelines (the bob.pipelines API).

Imported as ``mario`` by convention, so code written for ``bob.pipelines`` runs with only
that import changed. The user manual is the README section "scikit-learn pipelines, sample
by sample".

Examples
--------
>>> import os, tempfile
>>> import numpy as np
>>> import checkpoint_magic.pipelines as mario
>>> from sklearn.preprocessing import FunctionTransformer
>>> samples = [mario.Sample(np.full(2, i), key=str(i)) for i in range(3)]
>>> features_dir = tempfile.mkdtemp()
>>> pipeline = mario.wrap(["sample", "checkpoint"], FunctionTransformer(np.negative),
...                       features_dir=features_dir)
>>> pipeline.transform(samples)[2].data
array([-2, -2])
>>> sorted(os.listdir(features_dir))
['0.h5', '1.h5', '2.h5']
"""

from __future__ import annotations

from ..ui.progress import compute_with_progress, progress_bar
from .base import bob_tags, estimator_requires_fit, getattr_nested, is_wrapped, unwrap
from .batch import SampleBatch
from .checkpoint import CheckpointWrapper
from .dask import DaskWrapper, ToDaskBag, dask_tags
from .files import hash_string
from .producer import StaleCheckpointWarning
from .sample import (
    DelayedSample,
    DelayedSampleSet,
    DelayedSampleSetCached,
    Sample,
    SampleSet,
    is_sample,
    is_sample_set,
    sample_metadata,
)
from .utils import (
    check_parameter_for_validity,
    check_parameters_for_validity,
    flatten_samplesets,
    is_instance_nested,
    is_pipeline_wrapped,
)
from .wrappers import SampleWrapper
from .wrapping import wrap

__all__ = [
    "CheckpointWrapper",
    "DaskWrapper",
    "DelayedSample",
    "DelayedSampleSet",
    "DelayedSampleSetCached",
    "Sample",
    "SampleBatch",
    "SampleSet",
    "SampleWrapper",
    "StaleCheckpointWarning",
    "ToDaskBag",
    "bob_tags",
    "check_parameter_for_validity",
    "check_parameters_for_validity",
    "compute_with_progress",
    "dask_tags",
    "estimator_requires_fit",
    "flatten_samplesets",
    "getattr_nested",
    "hash_string",
    "is_instance_nested",
    "is_pipeline_wrapped",
    "is_sample",
    "is_sample_set",
    "is_wrapped",
    "progress_bar",
    "sample_metadata",
    "unwrap",
    "wrap",
]
