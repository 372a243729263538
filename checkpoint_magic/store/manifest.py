"""The manifest file format: one checksummed, optionally signed record per store entry.

A manifest file is ``CMM1 <xxh3-128 of body> [sig=<HMAC-SHA256 of body>]``, a newline, then
the body: a first JSON line with what a hit needs (outputs, created, duration, meta) and a
second with the rest (code, code parts, inputs, sizes...). A lookup parses only the first
line; the checksum and the signature cover both. The body names every blob by its hash, so
a signature over it covers the blobs too.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import xxhash

__all__ = ["decode_manifest", "encode_manifest", "manifest_body", "sign"]

MAGIC = b"CMM1"

#: Manifest fields a hit needs; they are written on their own JSON line so a lookup parses
#: only them. Everything else (code parts, inputs, sizes...) is on the second line.
_HOT_KEYS = ("created", "duration", "meta", "outputs")


def manifest_body(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a manifest's checksum and signature cover: a hot JSON line, then the rest."""
    hot = {k: manifest[k] for k in _HOT_KEYS if k in manifest}
    cold = {k: v for k, v in manifest.items() if k not in hot}
    dump = functools.partial(json.dumps, sort_keys=True, separators=(",", ":"), default=str)
    return (dump(hot) + "\n" + dump(cold)).encode("utf-8")


def encode_manifest(manifest: Mapping[str, Any], secret: bytes | None = None) -> bytes:
    """A manifest file's bytes: ``CMM1 <xxh3 of body> [sig=<hmac>]``, a newline, the body.

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
    data: bytes, secret: bytes | None = None, *, hot_only: bool = False
) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """``(manifest, damage, signature problem)`` of a manifest file's bytes; removes nothing.

    ``damage`` says why the bytes are not a valid manifest (the manifest is then ``None``);
    ``signature problem`` is set when ``secret`` is given and the entry is unsigned or its
    signature is wrong. With ``hot_only`` only the fields a hit needs are parsed.
    """
    head, sep, body = data.partition(b"\n")
    parts = head.split(b" ")
    if not sep or len(parts) not in (2, 3) or parts[0] != MAGIC:
        return None, "not a manifest (bad header or truncated)", None
    if xxhash.xxh3_128_hexdigest(body).encode("ascii") != parts[1]:
        return None, "checksum mismatch (flipped or truncated bytes)", None
    hot, _, cold = body.partition(b"\n")
    try:
        manifest = json.loads(hot)
        if not hot_only and isinstance(manifest, dict):
            manifest.update(json.loads(cold) if cold else {})
    except ValueError:
        manifest = None
    if not isinstance(manifest, dict):
        return None, "not a JSON object", None
    problem = None
    if secret is not None:
        # Compared as bytes: the header is not covered by the checksum and may hold any bytes.
        sig = parts[2][4:] if len(parts) == 3 and parts[2].startswith(b"sig=") else b""
        if not sig:
            problem = "not signed, and CHECKPOINT_MAGIC_SECRET requires signed entries"
        elif not hmac.compare_digest(sig, sign(secret, body).encode("ascii")):
            problem = "wrong signature (tampered, or signed with another secret)"
    return manifest, None, problem


def sign(secret: bytes, body: bytes) -> str:
    """HMAC-SHA256 of a manifest body (which lists every blob digest it refers to)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()
