"""Samples, checkpointing and Dask for scikit-learn pipelines (the bob.pipelines API).

By convention this package is imported as ``mario`` (it works with pipes)::

    import checkpoint_magic.pipelines as mario

Code written for ``bob.pipelines`` runs with only that import changed.

Samples
-------
A :class:`Sample` carries one piece of data and its metadata; scikit-learn estimators
wrapped in a :class:`SampleWrapper` take lists of samples and return new samples with the
same metadata. Metadata can feed extra arguments of ``transform`` and ``fit``:

>>> import numpy as np
>>> import checkpoint_magic.pipelines as mario
>>> from sklearn.base import BaseEstimator, TransformerMixin
>>> class AddOffset(TransformerMixin, BaseEstimator):
...     def fit(self, X):
...         return self
...     def transform(self, X, offsets):
...         return np.array(X) + np.array(offsets)[:, None]
>>> samples = [mario.Sample(np.zeros(2), offset=i, key=str(i)) for i in range(3)]
>>> transformer = mario.SampleWrapper(AddOffset(), [("offsets", "offset")])
>>> transformer.transform(samples)[2]
Sample(data=array([2., 2.]), offset=2, key='2')

Checkpointing
-------------
:class:`CheckpointWrapper` saves the result of each sample to
``features_dir/<key>.h5`` and, on later calls, computes only the samples without a file;
the others are :class:`DelayedSample` objects that read their file when their data is
used. Its ``fit`` saves the fitted model to ``model_path`` (or loads it from there).
Each file records what produced it (the estimator's class, code, parameters and, for
features, fitted state): a file made by another configuration is recomputed, with a
:class:`StaleCheckpointWarning` saying what changed.
Samples need a unique, relative ``key``:

>>> import os, tempfile
>>> with tempfile.TemporaryDirectory() as features_dir:
...     checkpointed = mario.CheckpointWrapper(transformer, features_dir=features_dir)
...     _ = checkpointed.transform(samples)
...     sorted(os.listdir(features_dir))
['0.h5', '1.h5', '2.h5']

:func:`wrap` builds the layers in one call, and wraps every step of a
:class:`~sklearn.pipeline.Pipeline` (``features_dir/<step name>``,
``model_path/<step name>.pkl``)::

    pipeline = mario.wrap(["sample", "checkpoint"], make_pipeline(PCA(), LDA()),
                          features_dir="features", model_path="models",
                          fit_extra_arguments=[("y", "target")])

Dask: for data that outgrows one machine
----------------------------------------
Add ``"dask"`` to run every step over a ``dask.bag``: ``wrap`` inserts a first step,
:class:`ToDaskBag`, that splits the samples into partitions, and wraps each step in a
:class:`DaskWrapper`. ``transform`` then returns a lazy bag; ``.compute()`` runs it on the
active Dask scheduler. Fitting a step gathers its input in one task. The results and the
checkpoint files are the same as without Dask. Install the extra first
(``pip install 'checkpoint_magic[dask]'``); without it everything else works::

    from dask.distributed import Client, LocalCluster

    pipeline = mario.wrap(["sample", "checkpoint", "dask"], pipeline,
                          features_dir="/shared/project/features",
                          model_path="/shared/project/models", npartitions=64)
    client = Client(LocalCluster())                 # this machine, one worker per core
    # client = Client("tcp://scheduler-host:8786")  # or a real cluster
    pipeline.fit(samples)                            # fits on the cluster
    features = pipeline.transform(samples).compute() # runs on the cluster

**A shared ``features_dir`` on a cluster.** Every worker writes and reads the checkpoint
files itself, so ``features_dir`` and ``model_path`` must be on a filesystem that every
worker *and* the client can see at the *same absolute path* (NFS, Lustre, GPFS, CephFS, a
mounted bucket...). Use absolute paths: a relative path is resolved in each worker's own
working directory. Concurrent workers are safe: every file is written to a temporary file
in the same directory and moved into place with ``os.replace``, which is atomic on one
filesystem, so a reader sees a whole file or none, and two workers computing the same key
leave one valid file. Saves and loads are retried (``attempts``) because network
filesystems fail transiently; if HDF5 file locking is not supported by the filesystem, set
``HDF5_USE_FILE_LOCKING=FALSE`` in the workers' environment. The classes of your
estimators must be importable on the workers (install your package there, or use
``client.upload_file``).

Contents
--------
:class:`Sample`, :class:`DelayedSample`, :class:`SampleSet`, :class:`DelayedSampleSet`,
:class:`DelayedSampleSetCached`, :class:`SampleBatch`
    Data with metadata.
:class:`SampleWrapper`, :class:`CheckpointWrapper`, :class:`DaskWrapper`,
:class:`ToDaskBag`
    scikit-learn meta-estimators.
:func:`wrap`, :func:`estimator_requires_fit`, :func:`hash_string`, :func:`dask_tags`,
:func:`bob_tags`, :func:`getattr_nested`, :func:`is_instance_nested`,
:func:`is_pipeline_wrapped`, :func:`flatten_samplesets`,
:func:`check_parameter_for_validity`, :func:`check_parameters_for_validity`
    Helpers (the names bob.pipelines uses).
:func:`progress_bar`, :func:`compute_with_progress`
    Progress bars (``tqdm.auto``) for long runs; ``CHECKPOINT_MAGIC_PROGRESS=0|1``.
:class:`StaleCheckpointWarning`
    A checkpoint file made by another configuration was recomputed and replaced.
"""

from __future__ import annotations

from ..ui.progress import compute_with_progress, progress_bar
from .base import bob_tags, estimator_requires_fit, getattr_nested, is_wrapped, unwrap
from .checkpoint import CheckpointWrapper
from .dask import DaskWrapper, ToDaskBag, dask_tags
from .files import hash_string
from .producer import StaleCheckpointWarning
from .sample import (
    DelayedSample,
    DelayedSampleSet,
    DelayedSampleSetCached,
    Sample,
    SampleBatch,
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
