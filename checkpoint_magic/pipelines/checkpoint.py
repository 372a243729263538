"""``CheckpointWrapper``: save each sample's result, and the fitted model, to disk; reuse them.

One file per sample key under ``features_dir``; only samples without a valid file are
computed (in one batched call), the others come back as delayed samples reading their file.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from sklearn.utils.metaestimators import available_if

from ..exceptions import InvalidArgumentError, StoreWriteWarning, UncachedWarning, warn_user
from ..ui.progress import progress_bar
from .base import (
    BaseWrapper,
    clone_estimator,
    estimator_has,
    estimator_requires_fit,
    rebind_main_classes,
    unwrap,
)
from .files import (
    check_attempts,
    check_extension,
    checked_relative_path,
    load_hdf5,
    load_pickle,
    save_hdf5,
    save_pickle,
)
from .producer import (
    StaleCheckpointWarning,
    describe_changes,
    encode_header,
    safe_describe,
    sidecar_path,
)
from .remote import FileOps, file_ops, is_url
from .sample import Constant, DelayedSample, SampleSet, is_sample, is_sample_set

__all__ = ["CheckpointWrapper"]

logger = logging.getLogger(__name__)


class MissingKeyError(InvalidArgumentError, AttributeError):
    """A sample to checkpoint has no ``key`` (also an ``AttributeError``)."""


def _write_bytes(data: bytes, path: str) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _sample_key(sample: Any, index: int) -> str:
    try:
        key = sample.key
    except AttributeError:
        raise MissingKeyError(
            f"Sample {index} has no `key`: CheckpointWrapper names each sample's file by its "
            "key. Build the samples with a unique string key, e.g. "
            "Sample(x, key=str(i))."
        ) from None
    return checked_relative_path(key, "key")


def _check_unique(samples: Sequence[Any], paths: Sequence[str]) -> None:
    """Refuse two samples of one call that map to one file (the second would load the first)."""
    seen: dict[str, int] = {}
    url = bool(paths) and is_url(paths[0])  # object names are case-sensitive everywhere
    for i, path in enumerate(paths):
        name = path if url else os.path.normcase(os.path.normpath(path))
        first = seen.setdefault(name, i)
        if first != i:
            raise InvalidArgumentError(
                f"samples {first} (key {samples[first].key!r}) and {i} (key "
                f"{samples[i].key!r}) map to the same checkpoint file {path!r}: each sample "
                "of one call needs its own key (and hash_fn(key) bucket)."
            )


class CheckpointWrapper(BaseWrapper):
    """Checkpoint the results of an estimator per sample, and its fitted model.

    Parameters
    ----------
    estimator : estimator object
        A sample-aware estimator, usually a
        :class:`~checkpoint_magic.pipelines.SampleWrapper`: it takes samples and returns
        samples.
    features_dir : str or os.PathLike, default=None
        Directory of the per-sample files, or a URL prefix (``s3://bucket/features``,
        through fsspec: see :mod:`~checkpoint_magic.pipelines.remote`). ``None``:
        ``transform`` is not checkpointed.
    model_path : str or os.PathLike, default=None
        File (or URL) of the fitted model (cloudpickle). ``None``: the model is not
        checkpointed. Parent directories are created.
    extension : str, default=".h5"
        Suffix of the per-sample files: ``""`` or a suffix that starts with ``.``
        (``".h5"``, ``".tar.gz"``), without path separators or ``..``.
    save_func, load_func : callable, default=None
        ``save_func(data, path)`` and ``load_func(path) -> data``; HDF5 through h5py
        (:func:`~checkpoint_magic.pipelines.files.save_hdf5`) by default. ``save_func``
        writes to a temporary path that ends with ``extension``.
    sample_attribute : str, default="data"
        The attribute of the result samples that is saved and loaded.
    hash_fn : callable, default=None
        ``hash_fn(key) -> str``: an extra sub-directory per key (e.g.
        :func:`~checkpoint_magic.pipelines.hash_string`), to spread many files.
    attempts : int, default=10
        How many times a save (or a load) is tried before giving up; network filesystems
        fail now and then.
    force : bool, default=False
        Recompute (and refit) even when the files exist, and overwrite them.
    progress : bool, default=None
        Show a progress bar (``tqdm.auto``): ``True``, ``False``, or ``None`` for the
        ``CHECKPOINT_MAGIC_PROGRESS`` environment variable, else automatically (in a
        notebook or a terminal, for runs longer than a few seconds).

    Attributes
    ----------
    estimator_ : estimator object
        The fitted (or loaded) copy of ``estimator``, set by :meth:`fit` when the
        estimator requires fitting.

    Notes
    -----
    Every file is bound to its producer (see
    :mod:`~checkpoint_magic.pipelines.producer`): a feature file to the class, code,
    ``get_params(deep=True)`` and whole fitted state of the wrapped estimator, a model
    file to its class, code and parameters. A file made by another configuration (or
    without a record) is recomputed and replaced, with one
    :class:`~checkpoint_magic.pipelines.StaleCheckpointWarning` per call naming what
    changed. HDF5 files keep the record in their user block and model files before the
    pickle; with a custom ``save_func`` it is a hidden ``.<file name>.producer`` file.

    A sample's file is ``features_dir/[hash_fn(key)/]key + extension``. Keys must be
    normalised relative paths that stay inside ``features_dir`` (no absolute path, no
    ``..``, no ``.`` or empty component: ``"a"``, not ``"./a"``), and the samples of one
    call (of one sample set) must name different files; a bad key, or two samples of one
    batch with the same file, is an error before anything is computed or written. A key
    that appears in several sample sets of one call names one sample: the sets after the
    first load its file, as a later call would. Keys that differ only by letter case share
    a file on case-insensitive filesystems (macOS, Windows). Results that are ``None`` (or
    whose ``sample_attribute`` is ``None``) are returned as they are and not saved, so they
    are recomputed next time. Samples loaded from disk get the metadata of the *input*
    sample and the saved attribute; metadata that the estimator itself added is not saved.
    Writes are atomic (temporary file, then ``os.replace``; at a URL, one upload of a local
    temporary file), so several processes may checkpoint into the same directory. If a save still fails after ``attempts`` tries, a
    :class:`~checkpoint_magic.exceptions.StoreWriteWarning` is emitted, the result is
    returned unsaved, and the remaining results of that call are not saved either.

    Examples
    --------
    >>> import os, tempfile, numpy as np
    >>> from sklearn.preprocessing import FunctionTransformer
    >>> from checkpoint_magic.pipelines import CheckpointWrapper, Sample, SampleWrapper
    >>> samples = [Sample(np.full(2, i), key=str(i)) for i in range(3)]
    >>> with tempfile.TemporaryDirectory() as d:
    ...     wrapper = CheckpointWrapper(SampleWrapper(FunctionTransformer(np.sqrt)), d)
    ...     first = wrapper.transform(samples)                # computes and saves
    ...     again = wrapper.transform(samples)                # loads lazily
    ...     print(sorted(os.listdir(d)), again[2], again[2].data)
    ['0.h5', '1.h5', '2.h5'] DelayedSample(key='2') [1.41421356 1.41421356]
    """

    def __init__(
        self,
        estimator: Any,
        features_dir: str | os.PathLike[str] | None = None,
        model_path: str | os.PathLike[str] | None = None,
        extension: str = ".h5",
        save_func: Callable[[Any, str], Any] | None = None,
        load_func: Callable[[str], Any] | None = None,
        sample_attribute: str = "data",
        hash_fn: Callable[[str], str] | None = None,
        attempts: int = 10,
        force: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.estimator = estimator
        self.features_dir = features_dir
        self.model_path = model_path
        self.extension = extension
        self.save_func = save_func
        self.load_func = load_func
        self.sample_attribute = sample_attribute
        self.hash_fn = hash_fn
        self.attempts = attempts
        self.force = force
        self.progress = progress

    # ---------------------------------------------------------------- paths

    def make_path(self, sample: Any, index: int = 0) -> str | None:
        """Return the checkpoint file of ``sample`` (``None`` without ``features_dir``).

        Parameters
        ----------
        sample : Sample
            A sample with a ``key`` attribute.
        index : int, default=0
            Position of the sample in its batch, named in the error when it has no ``key``.

        Returns
        -------
        str or None
            ``features_dir/[hash_fn(key)/]key + extension``, or ``None`` when
            ``features_dir`` is ``None``.

        Raises
        ------
        InvalidArgumentError
            If the sample has no ``key``, its key (or ``hash_fn(key)``) is not a safe,
            normalised relative path, or ``extension`` is not a plain file suffix.
        """
        if self.features_dir is None:
            return None
        base = os.fspath(self.features_dir)
        return self._path(sample, index, base, check_extension(self.extension), file_ops(base))

    def _path(self, sample: Any, index: int, base: str, extension: str, ops: FileOps) -> str:
        key = _sample_key(sample, index)
        if self.hash_fn is not None:
            bucket = checked_relative_path(self.hash_fn(key), "hash_fn(key)")
            return ops.join(base, bucket, key + extension)
        return ops.join(base, key + extension)

    # ---------------------------------------------------------------- model

    def _load_model(self) -> Any:
        path = os.fspath(self.model_path)  # type: ignore[arg-type]
        model = file_ops(path).loader(load_pickle, path, check_attempts(self.attempts))()
        rebind_main_classes(model)  # its producer record matched: the live classes' code
        if type(model) is not type(self.estimator):
            raise InvalidArgumentError(
                f"model_path {path!r} holds a {type(model).__name__}, but this "
                f"CheckpointWrapper wraps a {type(self.estimator).__name__}. Delete the file "
                "(or pass force=True) to fit again, or point model_path elsewhere."
            )
        logger.debug("Loaded the fitted model from %s", path)
        return model

    def _save_model(self, model: Any, header: bytes | None) -> None:
        path = os.fspath(self.model_path)  # type: ignore[arg-type]
        try:
            file_ops(path).save(
                functools.partial(save_pickle, header=header),
                model,
                path,
                attempts=check_attempts(self.attempts),
            )
        except Exception as exc:  # storage failed: warn, keep the fitted model in memory
            warn_user(
                f"Could not save the fitted model to {path!r} after {self.attempts} "
                f"attempts ({type(exc).__name__}: {exc}); it stays fitted in memory but will "
                "be fitted again next time.",
                StoreWriteWarning,
            )
        else:
            logger.debug("Saved the fitted model to %s", path)

    def _model_is_current(self, digest: str | None, description: dict[str, Any]) -> bool:
        """Whether ``model_path`` holds a model made by this configuration (warn if stale)."""
        path = os.fspath(self.model_path)  # type: ignore[arg-type]
        ops = file_ops(path)
        found = ops.read_digest(path)
        if found is None:
            return False
        if digest is not None and found == digest:
            return True
        old = ops.read_description(path) if found else None
        warn_user(
            f"The model at {path!r} was fitted by another configuration "
            f"({describe_changes(old, description)}); fitting again and replacing it.",
            StaleCheckpointWarning,
        )
        return False

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> CheckpointWrapper:
        """Load the model from ``model_path`` if this configuration made it, else fit and save.

        The model file records its producer (the estimator's class, code and
        ``get_params(deep=True)``); a file fitted by another configuration is fitted
        again and replaced, with a
        :class:`~checkpoint_magic.pipelines.producer.StaleCheckpointWarning` naming
        what changed. Nothing happens when the estimator requires no fitting (a fitted
        copy from an earlier ``fit`` is dropped all the same, so a replaced estimator is
        never shadowed by a stale one).

        Parameters
        ----------
        X
            Samples (or sample sets), passed to the estimator's ``fit``.
        y, **fit_params
            Passed to the estimator's ``fit`` (``y`` only when not ``None``).

        Returns
        -------
        CheckpointWrapper
            ``self``.
        """
        self.__dict__.pop("estimator_", None)  # never keep the fit of an earlier estimator
        if not estimator_requires_fit(self.estimator):
            return self
        digest: str | None = None
        header: bytes | None = None
        description: dict[str, Any] = {}
        if self.model_path is not None:
            bound = safe_describe(self.estimator, fitted_state=False)
            if bound is not None:
                digest, description = bound
                header = encode_header(digest, description)
            if not self.force and self._model_is_current(digest, description):
                self.estimator_ = self._load_model()
                return self
        estimator = clone_estimator(self.estimator)
        desc = f"fit {type(unwrap(self.estimator)).__name__}"
        with progress_bar(1, desc, self.progress, unit="fit") as bar:
            fitted = (
                estimator.fit(X, **fit_params) if y is None else estimator.fit(X, y, **fit_params)
            )
            bar.update(1)
        self.estimator_ = estimator if fitted is None else fitted
        if self.model_path is not None:
            self._save_model(self.estimator_, header)
        return self

    # ---------------------------------------------------------------- features

    def _loaded_sample(
        self, sample: Any, path: str, load_func: Callable[[str], Any], attempts: int, ops: FileOps
    ) -> Any:
        loader = ops.loader(load_func, path, attempts)
        if self.sample_attribute == "data":
            return DelayedSample(loader, parent=sample)
        data_loader = sample.load if isinstance(sample, DelayedSample) else Constant(sample.data)
        return DelayedSample(
            data_loader, parent=sample, delayed_attributes={self.sample_attribute: loader}
        )

    def _saved_value(self, result: Any) -> Any:
        try:
            return getattr(result, self.sample_attribute)
        except AttributeError:
            raise InvalidArgumentError(
                f"CheckpointWrapper saves the {self.sample_attribute!r} attribute of each "
                f"result, but the wrapped estimator returned a {type(result).__name__}. Wrap "
                "the estimator so that it returns samples, e.g. "
                "CheckpointWrapper(SampleWrapper(estimator), ...) or "
                "wrap(['sample', 'checkpoint'], estimator, ...)."
            ) from None

    def _save_func(self, header: bytes | None) -> Callable[[Any, str], Any]:
        if self.save_func is None:
            return functools.partial(save_hdf5, header=header)
        return self.save_func

    def _record_path(self, path: str) -> str:
        """Where the producer record of ``path`` is read: the file, or its sidecar."""
        return path if self.save_func is None else sidecar_path(path)

    def _save_one(
        self, value: Any, path: str, header: bytes | None, attempts: int, ops: FileOps
    ) -> None:
        """Save one result with its producer record (the record last, for custom savers)."""
        if self.save_func is None:
            ops.save(self._save_func(header), value, path, attempts=attempts, suffix=self.extension)
            return
        record = sidecar_path(path)
        ops.remove(record)  # a crash before the new record leaves no record: recomputed
        ops.save(self.save_func, value, path, attempts=attempts, suffix=self.extension)
        if header is not None:
            ops.save(_write_bytes, header, record, attempts=attempts)

    def _checkpoint(
        self,
        method: Callable[[Any], Any],
        samples: list[Any],
        paths: list[str],
        producer: tuple[str, dict[str, Any]] | None,
        stale: list[tuple[str, dict[str, Any] | None]],
        bar: Any,
    ) -> list[Any]:
        """Compute the samples without a current file (one call), save them, load the others."""
        digest = None if producer is None else producer[0]
        ops = file_ops(self.features_dir)
        missing = []
        default_codec = self.save_func is None
        recompute_all = self.force or digest is None
        for i, path in enumerate(paths):
            if recompute_all:
                missing.append(i)
                continue
            found = ops.read_digest(path if default_codec else sidecar_path(path))
            if found == digest and (default_codec or ops.isfile(path)):
                continue
            missing.append(i)
            if found is not None and (default_codec or ops.isfile(path)):
                # read what made the first stale file now, before it is replaced
                old = ops.read_description(self._record_path(path)) if not stale and found else None
                stale.append((path, old))
        results: list[Any] = [None] * len(samples)
        if missing:
            logger.debug("%d of %d samples to compute", len(missing), len(samples))
            bar.set_postfix_str(f"computing {len(missing)}")
            computed = method([samples[i] for i in missing])
            computed = computed if isinstance(computed, list) else list(computed)
            if len(computed) != len(missing):
                raise InvalidArgumentError(
                    f"The wrapped estimator returned {len(computed)} results for "
                    f"{len(missing)} samples; it must return one result per sample."
                )
            header = None if producer is None else encode_header(*producer)
            attempts = check_attempts(self.attempts)
            failure: BaseException | None = None
            unsaved = 0
            for i, result in zip(missing, computed, strict=True):
                results[i] = result
                bar.update(1)
                value = None if result is None else self._saved_value(result)
                if value is None:  # a failed sample: never saved, computed again next time
                    ops.remove(paths[i])
                    continue
                if failure is not None:
                    unsaved += 1
                    continue
                try:
                    self._save_one(value, paths[i], header, attempts, ops)
                except Exception as exc:  # storage failed: warn once below, keep the result
                    failure = exc
                    unsaved += 1
            if failure is not None:
                warn_user(
                    f"Could not save {unsaved} of {len(missing)} computed results under "
                    f"{os.fspath(self.features_dir)!r} (after {attempts} attempts: "  # type: ignore[arg-type]
                    f"{type(failure).__name__}: {failure}). They are returned but will be "
                    "computed again next time.",
                    StoreWriteWarning,
                )
        if len(missing) < len(samples):
            load_func = self.load_func if self.load_func is not None else load_hdf5
            attempts = check_attempts(self.attempts)
            todo = set(missing)
            for i, (sample, path) in enumerate(zip(samples, paths, strict=True)):
                if i not in todo:
                    results[i] = self._loaded_sample(sample, path, load_func, attempts, ops)
            bar.update(len(samples) - len(missing))
        return results

    def _warn_stale(
        self,
        stale: list[tuple[str, dict[str, Any] | None]],
        total: int,
        description: dict[str, Any],
    ) -> None:
        if not stale:
            return
        old = stale[0][1]
        warn_user(
            f"{len(stale)} of {total} checkpoint files under "
            f"{os.fspath(self.features_dir)!r} were made by another configuration "  # type: ignore[arg-type]
            f"({describe_changes(old, description)}); they were computed again and replaced.",
            StaleCheckpointWarning,
        )

    @available_if(estimator_has("transform"))
    def transform(self, X: Any) -> Any:
        """Transform samples, computing only those without a checkpoint file.

        Parameters
        ----------
        X
            Samples, or sample sets (whose samples are checkpointed one by one; the
            estimator is called once per set).

        Returns
        -------
        list
            In input order: the computed results, and :class:`~.sample.DelayedSample`
            objects that load the existing files.

        Raises
        ------
        InvalidArgumentError
            When ``X`` mixes sample sets and other objects, or sample keys are missing or clash.
        """
        estimator = self._fitted_estimator()
        if self.features_dir is None:
            return estimator.transform(X)
        samples = X if isinstance(X, list) else list(X)
        if not samples:
            return []
        producer = safe_describe(estimator, fitted_state=True)  # once per call
        if producer is None:
            warn_user(
                f"The configuration of {type(unwrap(estimator)).__name__} cannot be "
                "fingerprinted, so its checkpoint files cannot be checked: every sample is "
                "computed (and saved without a producer record). Make its parameters "
                "picklable values to checkpoint it.",
                UncachedWarning,
            )
        stale: list[tuple[str, dict[str, Any] | None]] = []
        desc = f"transform {type(unwrap(estimator)).__name__}"
        if is_sample_set(samples[0]):
            sets: list[tuple[Any, list[Any], list[str]]] = []
            for sset in samples:
                if not is_sample_set(sset):
                    raise InvalidArgumentError(
                        "CheckpointWrapper.transform got a mix of SampleSets and other objects."
                    )
                members = list(sset)
                paths = self._paths(members)  # validate every key first
                _check_unique(members, paths)
                sets.append((sset, members, paths))
            total = sum(len(members) for _, members, _ in sets)
            with progress_bar(total, desc, self.progress) as bar:
                out = [
                    SampleSet(
                        self._checkpoint(estimator.transform, members, paths, producer, stale, bar),
                        parent=sset,
                    )
                    for sset, members, paths in sets
                ]
        else:
            paths = self._paths(samples)
            _check_unique(samples, paths)
            total = len(samples)
            with progress_bar(total, desc, self.progress) as bar:
                out = self._checkpoint(estimator.transform, samples, paths, producer, stale, bar)
        if producer is not None:
            self._warn_stale(stale, total, producer[1])
        return out

    def _paths(self, samples: Sequence[Any]) -> list[str]:
        base = os.fspath(self.features_dir)  # type: ignore[arg-type]
        extension = check_extension(self.extension)  # once per call, not per sample
        ops = file_ops(base)
        paths = []
        for i, s in enumerate(samples):
            if not is_sample(s):
                raise InvalidArgumentError(
                    f"CheckpointWrapper.transform expects samples with a `key`, but item {i} "
                    f"is a {type(s).__name__}."
                )
            paths.append(self._path(s, i, base, extension, ops))
        return paths

    @available_if(estimator_has("predict"))
    def predict(self, X: Any) -> Any:
        """``predict`` of the (fitted) estimator; not checkpointed.

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples.

        Returns
        -------
        list of Sample or SampleSet
            What the wrapped estimator's ``predict`` returns.
        """
        return self._fitted_estimator().predict(X)

    @available_if(estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        """``predict_proba`` of the (fitted) estimator; not checkpointed.

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples.

        Returns
        -------
        list of Sample or SampleSet
            What the wrapped estimator's ``predict_proba`` returns.
        """
        return self._fitted_estimator().predict_proba(X)

    @available_if(estimator_has("decision_function"))
    def decision_function(self, X: Any) -> Any:
        """``decision_function`` of the (fitted) estimator; not checkpointed.

        Parameters
        ----------
        X : list of Sample or SampleSet
            The input samples.

        Returns
        -------
        list of Sample or SampleSet
            What the wrapped estimator's ``decision_function`` returns.
        """
        return self._fitted_estimator().decision_function(X)
