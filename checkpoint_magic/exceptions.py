"""Error and warning classes of checkpoint_magic.

Every error derives from :class:`CheckpointError`; each subclass also inherits the
builtin exception it refines, so ``except ValueError`` keeps working for callers who
do not know this library. Recoverable problems are :class:`CheckpointWarning`
subclasses (themselves ``UserWarning``): the computation goes on, uncached if need be.

Examples
--------
>>> from checkpoint_magic.exceptions import InvalidArgumentError, CheckpointError
>>> issubclass(InvalidArgumentError, ValueError), issubclass(InvalidArgumentError, CheckpointError)
(True, True)
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = [
    "CheckpointError",
    "CheckpointWarning",
    "ComplexParamsIdentifyWarning",
    "CorruptEntryWarning",
    "FingerprintError",
    "InvalidArgumentError",
    "MissingProducedNameError",
    "MutationNotReplayedWarning",
    "SignatureError",
    "StaleCheckpointWarning",
    "StoreFormatError",
    "StoreWriteWarning",
    "UncachedWarning",
    "UnknownNameError",
    "warn_user",
]


class CheckpointError(Exception):
    """Root of every error raised by checkpoint_magic."""


class InvalidArgumentError(CheckpointError, ValueError):
    """An argument given to a checkpoint_magic API is not valid (the message says how to fix it)."""


class UnknownNameError(CheckpointError, NameError):
    """A watched name does not exist where the checkpoint looks for it."""


class MissingProducedNameError(CheckpointError, NameError):
    """A name declared in ``produce`` was not set by the checkpointed code."""


class FingerprintError(CheckpointError, TypeError):
    """A value could not be fingerprinted at all."""


class StoreFormatError(CheckpointError, RuntimeError):
    """The store on disk was written in a format this version cannot read or write."""


class SignatureError(CheckpointError, RuntimeError):
    """An entry's signature is missing or wrong while signed entries are required."""


class CheckpointWarning(UserWarning):
    """Root of every warning emitted by checkpoint_magic."""


class ComplexParamsIdentifyWarning(CheckpointWarning):
    """A value could not be fingerprinted reliably.

    The warning names the attribute (for example ``f.conn``) and says what to watch
    instead. The name is the one used by the Lutil ``checkpoints`` documentation.
    """


class CorruptEntryWarning(CheckpointWarning):
    """A stored entry was unreadable, corrupt or refused; it is treated as a miss."""


class StoreWriteWarning(CheckpointWarning):
    """A result could not be stored; it is still returned to the caller."""


class StaleCheckpointWarning(CheckpointWarning):
    """A checkpoint file was made by another configuration; it is recomputed and replaced."""


class UncachedWarning(CheckpointWarning):
    """Fingerprinting failed; the computation runs without the cache."""


class MutationNotReplayedWarning(CheckpointWarning):
    """The computation mutates an argument whose state cannot be copied back on a hit."""


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _user_stacklevel() -> int:
    """Return the ``stacklevel`` that points a warning at the first frame outside this package."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        filename = frame.f_code.co_filename
        if not (filename.startswith(_PACKAGE_DIR) or filename.startswith("<frozen")):
            return level
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return 1


def warn_user(message: str, category: type[Warning] = CheckpointWarning) -> None:
    """Emit ``message`` as a warning attributed to the user's line, not to this package.

    The warning's ``stacklevel`` points at the first frame outside checkpoint_magic, so
    ``-W error::...`` and warning filters by module see the user's code.

    Parameters
    ----------
    message : str
        What happened and how to fix it.
    category : type of Warning, default CheckpointWarning
        Usually a :class:`CheckpointWarning` subclass.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_user("something is off", CorruptEntryWarning)
    >>> caught[0].category.__name__
    'CorruptEntryWarning'
    """
    # Level 1 of _user_stacklevel is this function's own frame, as for warnings.warn here.
    warnings.warn(message, category, stacklevel=_user_stacklevel())
