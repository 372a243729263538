"""The manifest file format: one checksummed, optionally signed record per store entry.

A manifest file is ``CMM1 <xxh3-128 of body> [sig=<HMAC-SHA256 of body>]``, a newline, then
the body: a first JSON line with what a hit needs (outputs, created, duration, meta, the
optional ``output_fps`` of lineage) and the key and namespace it was written for, and a
second with the rest (code, code parts, inputs, sizes, the optional ``lineage``...). A lookup parses only the first line; the checksum and the signature cover both.
In a signed store the body names every blob also by a cryptographic digest, so the
signature covers the blobs' bytes.

Nothing large is parsed before it is checked: a manifest over :data:`MANIFEST_MAX_BYTES` is
damaged, the signature (when required) is checked before any JSON is parsed, and JSON too
deeply nested to parse is damage, not a ``RecursionError``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import xxhash

__all__ = [
    "MANIFEST_MAX_BYTES",
    "decode_manifest",
    "encode_manifest",
    "loads_json",
    "manifest_body",
    "sign",
]

MAGIC = b"CMM1"
#: A manifest larger than this is damaged (it is never read whole into memory).
MANIFEST_MAX_BYTES = 16 << 20

#: Manifest fields a hit needs; they are written on their own JSON line so a lookup parses
#: only them. Everything else (code parts, inputs, sizes...) is on the second line. The
#: optional ``output_fps`` (value digests of outputs, :mod:`checkpoint_magic.core.lineage`)
#: is there so that a hit learns them; readers that do not know it ignore it.
_HOT_KEYS = ("created", "duration", "key", "meta", "namespace", "output_fps", "outputs")

# What json.loads runs (its default decoder's C scanner, set up the same way).
_scan_json = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def loads_json(text: bytes | str) -> Any:
    """``json.loads(text)``, without its per-call overhead for an object or array.

    ``json.loads`` first guesses the encoding of bytes, decodes them, skips whitespace with
    regular expressions, then runs the C scanner; for a document starting with ``{`` or
    ``[`` (as every manifest line and index column does) the guess is UTF-8 and there is no
    leading whitespace, so this runs the same scanner on the same text directly: half the
    time for a manifest line. Anything else, trailing text or an error goes through
    ``json.loads`` itself, so the value or exception is always exactly its.

    Parameters
    ----------
    text : bytes or str
        A JSON document.

    Returns
    -------
    object
        What ``json.loads(text)`` returns.

    Raises
    ------
    ValueError
        As ``json.loads`` (``json.JSONDecodeError``, ``UnicodeDecodeError``).

    Examples
    --------
    >>> loads_json(b'{"a": [1, 2.5, "x"]}'), loads_json("[true, null] ")
    ({'a': [1, 2.5, 'x']}, [True, None])
    """
    if isinstance(text, str):
        s = text if text[:1] in ("{", "[") else None
    elif text[:1] in (b"{", b"[") and text[1:2] != b"\x00":  # not UTF-16/32 to json.loads
        s = text.decode("utf-8", "surrogatepass")  # as json.loads decodes UTF-8
    else:
        s = None
    if s is not None:
        try:
            value, end = _scan_json(s, 0)
        except StopIteration:  # nothing parsed: json.loads raises its own error for it
            return json.loads(text)
        if end == len(s):
            return value
    return json.loads(text)  # trailing whitespace, extra data, other encodings: its way


def manifest_body(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a manifest's checksum and signature cover: a hot JSON line, then the rest.

    Parameters
    ----------
    manifest : mapping
        The manifest's fields (JSON-serializable; other values are written as ``str``).

    Returns
    -------
    bytes
        Two lines of canonical JSON (sorted keys, no spaces); the same manifest always
        gives the same bytes.
    """
    hot = {k: manifest[k] for k in _HOT_KEYS if k in manifest}
    cold = {k: v for k, v in manifest.items() if k not in hot}
    dump = functools.partial(json.dumps, sort_keys=True, separators=(",", ":"), default=str)
    return (dump(hot) + "\n" + dump(cold)).encode("utf-8")


def encode_manifest(manifest: Mapping[str, Any], secret: bytes | None = None) -> bytes:
    """A manifest file's bytes: ``CMM1 <xxh3 of body> [sig=<hmac>]``, a newline, the body.

    Parameters
    ----------
    manifest : mapping
        The manifest's fields.
    secret : bytes, optional
        The store's signing secret; the header then carries an HMAC of the body.

    Returns
    -------
    bytes
        The header line, then :func:`manifest_body`.

    Examples
    --------
    >>> data = encode_manifest({"outputs": {}, "namespace": "m.f"})
    >>> decode_manifest(data)[0] == {"outputs": {}, "namespace": "m.f"}
    True
    >>> decode_manifest(data[:-3])[1]
    'checksum mismatch (flipped or truncated bytes)'
    """
    body = manifest_body(manifest)
    head = MAGIC + b" " + xxhash.xxh3_128_hexdigest(body).encode("ascii")
    if secret is not None:
        head += b" sig=" + sign(secret, body).encode("ascii")
    return head + b"\n" + body


def decode_manifest(
    data: bytes,
    secret: bytes | None = None,
    *,
    hot_only: bool = False,
    namespace: str | None = None,
    key: str | None = None,
    parse_refused: bool = False,
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(manifest, damage, signature problem)`` of a manifest file's bytes; removes nothing.

    ``damage`` says why the bytes are not a valid manifest (the manifest is then ``None``):
    oversized, bad header, checksum mismatch, malformed JSON, or, when ``namespace``/``key``
    are given, a manifest written for another entry. ``signature problem`` is set when
    ``secret`` is given and the entry is unsigned or its signature is wrong; such a body is
    not parsed unless ``parse_refused`` (the tools list refused entries). With ``hot_only``
    only the fields a hit needs are parsed.

    Parameters
    ----------
    data : bytes
        A manifest file's bytes.
    secret : bytes, optional
        The store's signing secret: the signature is then required and checked.
    hot_only : bool, default False
        Parse only the first JSON line (what a hit needs).
    namespace, key : str, optional
        The entry the file was found under; a manifest written for another is damage.
    parse_refused : bool, default False
        Parse a body whose signature is missing or wrong anyway (for listing tools).

    Returns
    -------
    manifest : dict or None
        The fields, ``None`` if damaged or refused.
    damage : str or None
        Why the bytes are not a valid manifest.
    signature_problem : str or None
        Why a signed store refuses the entry.

    Examples
    --------
    >>> data = encode_manifest({"outputs": {}, "namespace": "m.f", "key": "k1"})
    >>> decode_manifest(data, namespace="m.f", key="k2")[1]
    'written for entry m.f/k1, found under m.f/k2'
    """
    if len(data) > MANIFEST_MAX_BYTES:
        return None, f"larger than {MANIFEST_MAX_BYTES} bytes", None
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) not in (2, 3) or parts[0] != MAGIC:
        return None, "not a manifest (bad header or truncated)", None
    if xxhash.xxh3_128_hexdigest(body).encode("ascii") != parts[1]:
        return None, "checksum mismatch (flipped or truncated bytes)", None
    problem = None
    if secret is not None:
        # Compared as bytes: the header is not covered by the checksum and may hold any bytes.
        sig = parts[2][4:] if len(parts) == 3 and parts[2].startswith(b"sig=") else b""
        if not sig:
            problem = "not signed, and CHECKPOINT_MAGIC_SECRET requires signed entries"
        elif not hmac.compare_digest(sig, sign(secret, body).encode("ascii")):
            problem = "wrong signature (tampered, or signed with another secret)"
        if problem is not None and not parse_refused:
            return None, None, problem
    hot, _, cold = body.partition(b"\n")
    try:
        manifest = loads_json(hot)
        if isinstance(manifest, dict) and (not hot_only or "key" not in manifest):
            # Manifests written before the key moved to the hot line keep it in the cold one.
            extra = loads_json(cold) if cold else {}
            if isinstance(extra, dict):
                manifest.update(extra)
    except (ValueError, RecursionError):
        manifest = None
    if not isinstance(manifest, dict):
        return None, "not a JSON object (malformed or too deeply nested)", problem
    if key is not None and (manifest.get("key"), manifest.get("namespace")) != (key, namespace):
        found = f"{manifest.get('namespace')}/{manifest.get('key')}"
        return None, f"written for entry {found}, found under {namespace}/{key}", problem
    return manifest, None, problem


def sign(secret: bytes, body: bytes) -> str:
    """HMAC-SHA256 of a manifest body (which lists every blob digest it refers to).

    Parameters
    ----------
    secret : bytes
        The signing secret.
    body : bytes
        What :func:`manifest_body` returned.

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> len(sign(b"secret", b"body"))
    64
    """
    return hmac.new(secret, body, hashlib.sha256).hexdigest()
