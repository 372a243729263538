"""Assertions shared by the value-fingerprint tests (``distinct``, ``warns_about``)."""

from __future__ import annotations

import pytest

from checkpoint_magic.exceptions import ComplexParamsIdentifyWarning
from checkpoint_magic.fingerprint.values import fingerprint


def distinct(*values) -> bool:
    fps = [fingerprint(v) for v in values]
    return len(set(fps)) == len(fps)


def warns_about(*fragments: str):
    """Context manager: exactly one ComplexParamsIdentifyWarning containing every fragment."""

    class _Check:
        def __enter__(self):
            self.cm = pytest.warns(ComplexParamsIdentifyWarning)
            self.record = self.cm.__enter__()
            return self.record

        def __exit__(self, *exc):
            self.cm.__exit__(*exc)
            ours = [w for w in self.record if issubclass(w.category, ComplexParamsIdentifyWarning)]
            assert len(ours) == 1, [str(w.message) for w in ours]
            for fragment in fragments:
                assert fragment in str(ours[0].message), str(ours[0].message)
            return False

    return _Check()
