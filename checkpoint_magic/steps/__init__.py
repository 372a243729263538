"""Step runs that resume from step N: a class with ``step_1 .. step_N`` methods, in numeric order.

Examples
--------
>>> from checkpoint_magic.steps import step_names
>>> class Run:
...     def step_10(self): ...
...     def step_2(self): ...
>>> step_names(Run)
['step_2', 'step_10']
"""

from __future__ import annotations

from .runner import Checkpoint, RunSummary, StepCheckpoint, step_names

__all__ = ["Checkpoint", "RunSummary", "StepCheckpoint", "step_names"]
