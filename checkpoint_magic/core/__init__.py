"""The core every front end shares: key, lookup, restore and run-and-commit of a step.

The key, lookup, restore and run-and-commit of a step (``checkpointer``), why a step ran again
(``explain``), the inputs beyond arguments (``inputs``: data globals, files, mutated arguments),
what a block or cell reads and binds (``names``, ``namespace``), and watch/produce paths such as
``f.a`` or ``d['k']`` (``targets``)."""
