"""Fingerprints: what a computation depends on, reduced to stable xxh3-128 digests.

``encoding`` is the framing leaf; ``values`` walks values (builtins, numpy, containers) and is
extended, through :func:`~checkpoint_magic.fingerprint.values.register` called right here, by
``pandas`` and ``objects`` (code, estimators, any other object); ``code`` fingerprints functions
by their normalized AST and running bytecode (``bytecode``), following the user code they reach
(``codegraph``, cached by ``codecache``; ``origin`` tells user code from installed code).
Nothing here touches the store.
"""

from . import objects, pandas, values

values.register(resolver=pandas.handler_for, string_array_digest=pandas.object_strings_digest)
values.register(exact=objects.EXACT, resolver=objects.handler_for, fallback=objects.fill_reduce)
