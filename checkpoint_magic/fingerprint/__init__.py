"""Fingerprints: what a computation depends on, reduced to stable xxh3-128 digests.

``encoding`` is the framing leaf; ``values`` walks values by a table of handlers, filled right
here with :func:`~checkpoint_magic.fingerprint.values.register`, in this order: ``stdtypes``
(builtins, containers), ``arrays`` (numpy), ``pandas``, ``objects`` (code, classes, modules,
enums, estimators, any other object), and last the subclasses of builtins. ``code``
fingerprints functions by their normalized AST and running bytecode (``bytecode``), following
the user code they reach (``codegraph``, cached by ``codecache``; ``origin`` tells user code
from installed code). Nothing here touches the store.
"""

from . import arrays, objects, pandas, stdtypes, values

values.register(exact=stdtypes.EXACT)
values.register(exact=arrays.EXACT, resolver=arrays.handler_for)
values.register(resolver=pandas.handler_for, string_array_digest=pandas.object_strings_digest)
values.register(exact=objects.EXACT, resolver=objects.handler_for, fallback=objects.fill_reduce)
values.register(resolver=stdtypes.subclass_handler_for)  # after objects: an IntEnum is an int
