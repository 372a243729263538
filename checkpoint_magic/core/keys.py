"""Entry keys: what a key is made of (scheme version, kind, namespace, code and inputs).

A key names an entry in the store: two calls have the same key exactly when they have the
same code fingerprint and the same inputs by name, for the same kind and namespace, under
the same fingerprint scheme. :func:`make_key` builds one; a
:class:`~checkpoint_magic.core.checkpointer.Checkpointer` keeps its :func:`key_prefix` and
calls :func:`key_from` on every call.
"""

from __future__ import annotations

from collections.abc import Mapping

import xxhash

from ..fingerprint.values import HASH_SCHEME_VERSION

__all__ = ["key_from", "key_prefix", "make_key"]


def make_key(kind: str, namespace: str, code_fp: str, input_fps: Mapping[str, str]) -> str:
    """Return the entry key: xxh3-128 over the scheme version, kind, namespace, code and inputs.

    Input order does not matter; input names do.

    Parameters
    ----------
    kind : str
        What is cached (``"function"``, ``"block"``, ``"cell"``, ``"step"``...).
    namespace : str
        The name entries are grouped under.
    code_fp : str
        The code fingerprint.
    input_fps : Mapping of str to str
        The input fingerprints by name.

    Returns
    -------
    str
        32 hexadecimal digits.

    Examples
    --------
    >>> a = make_key("function", "m.f", "c", {"a": "1", "b": "2"})
    >>> a == make_key("function", "m.f", "c", {"b": "2", "a": "1"})
    True
    >>> make_key("function", "m.f", "c", {"a": "1"}) == make_key("function", "m.f", "c", {"b": "1"})
    False
    """
    return key_from(key_prefix(kind, namespace), code_fp, input_fps)


def key_prefix(kind: str, namespace: str) -> str:
    """The part of a key that is the same for every call of one namespace.

    Parameters
    ----------
    kind : str
        What is cached (``"function"``, ``"block"``, ``"cell"``, ``"step"``...).
    namespace : str
        The name entries are grouped under.

    Returns
    -------
    str
        Pass it to :func:`key_from`.
    """
    return f"checkpoint_magic-key\0{HASH_SCHEME_VERSION}\0{kind}\0{namespace}\0"


def key_from(prefix: str, code_fp: str, input_fps: Mapping[str, str]) -> str:
    """The key of a call, from its namespace's :func:`key_prefix` (what :func:`make_key` does).

    Parameters
    ----------
    prefix : str
        ``key_prefix(kind, namespace)``.
    code_fp : str
        The code fingerprint.
    input_fps : Mapping of str to str
        The input fingerprints by name.

    Returns
    -------
    str
        32 hexadecimal digits.

    Examples
    --------
    >>> key_from(key_prefix("function", "m.f"), "c", {"a": "1"}) == make_key(
    ...     "function", "m.f", "c", {"a": "1"}
    ... )
    True
    """
    parts = [prefix, code_fp, "\0"]
    for name in sorted(input_fps):
        parts.append(f"{len(name)}:{name}={input_fps[name]}\0")
    return xxhash.xxh3_128_hexdigest("".join(parts).encode())  # one call: the same digest
