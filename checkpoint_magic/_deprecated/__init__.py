"""Old module paths kept for one release (``checkpoint_magic.hashing`` and friends).

The package ``__init__`` appends this folder to ``checkpoint_magic.__path__``, so
``import checkpoint_magic.hashing`` finds ``hashing.py`` here: each such module warns with a
:class:`DeprecationWarning` and puts the module it moved to in its place in ``sys.modules``,
so everything, private names and ``mock.patch`` targets included, keeps working.
"""

from __future__ import annotations

import importlib
import sys
import warnings

MOVED = {
    "hashing": "checkpoint_magic.fingerprint.values",
    "codehash": "checkpoint_magic.fingerprint.code",
    "serializers": "checkpoint_magic.store.codecs.serializers",
    "cli": "checkpoint_magic.tools.cli",
    "magics": "checkpoint_magic.notebook.magic",
    "checkpointer": "checkpoint_magic.core.checkpointer",
}


def redirect(old: str) -> None:
    """Replace the module ``checkpoint_magic.<old>`` by the module it moved to, with a warning.

    Parameters
    ----------
    old : str
        The old module name, a key of :data:`MOVED`.
    """
    new = MOVED[old]
    warnings.warn(
        f"checkpoint_magic.{old} is deprecated and will be removed in the next release; "
        f"import {new} instead.",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[f"checkpoint_magic.{old}"] = importlib.import_module(new)
