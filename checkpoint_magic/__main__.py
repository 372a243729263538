"""``python -m checkpoint_magic``: the ``checkpoint-magic`` command line.

The commands live in :mod:`checkpoint_magic.tools.cli`.
"""

from __future__ import annotations

from .tools.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
