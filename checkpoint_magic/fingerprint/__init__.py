"""Fingerprints: what a computation depends on, reduced to stable xxh3-128 digests.

``values`` walks values (builtins, numpy, containers; ``pandas`` and ``objects`` extend it);
``code`` fingerprints functions by their normalized AST and running bytecode, following the
user code they reach (``codegraph``). Nothing here touches the store.
"""
