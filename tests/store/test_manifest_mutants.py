"""Manifest checks that mutation testing (``make mutate``) showed were missing.

Each test kills mutants of :mod:`checkpoint_magic.store.manifest` that survived the rest of
the suite: a signed store must refuse, not crash on, a signature field with arbitrary bytes;
an unsigned entry must be reported as such; a manifest field JSON cannot represent must not
make the commit fail.
"""

from __future__ import annotations

import pathlib

import pytest

from checkpoint_magic.exceptions import SignatureError
from checkpoint_magic.store import Store
from checkpoint_magic.store.manifest import decode_manifest, encode_manifest


def _signed_store(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    store = Store(tmp_path / "store")
    store.write_entry("m.f", "k1", {"outputs": {}, "namespace": "m.f", "key": "k1"})
    return store


def test_non_ascii_signature_is_refused_not_a_crash(tmp_path, monkeypatch):
    # The checksum covers the body only, so the header's signature field can hold any bytes.
    store = _signed_store(tmp_path, monkeypatch)
    path = store.entry_path("m.f", "k1")
    head, _, body = path.read_bytes().partition(b"\n")
    magic, checksum, _sig = head.split(b" ")
    path.write_bytes(b" ".join([magic, checksum, b"sig=\xff\xfe" + b"0" * 62]) + b"\n" + body)
    for hot_only in (True, False):
        with pytest.raises(SignatureError, match="wrong signature"):
            store.read_entry("m.f", "k1", hot_only=hot_only)
    assert path.exists(), "a refused entry is left in place"


def test_unsigned_entry_is_named_unsigned_when_a_secret_is_required(tmp_path, monkeypatch):
    store = Store(tmp_path / "store")
    store.write_entry("m.f", "k1", {"outputs": {}, "namespace": "m.f", "key": "k1"})
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "our secret")
    with pytest.raises(SignatureError, match="not signed"):
        store.read_entry("m.f", "k1")


def test_field_json_cannot_represent_is_written_as_text(tmp_path):
    manifest = {"outputs": {}, "meta": {"source": pathlib.PurePosixPath("/data/in.csv")}}
    decoded, damage, problem = decode_manifest(encode_manifest(manifest))
    assert (damage, problem) == (None, None)
    assert decoded == {"outputs": {}, "meta": {"source": "/data/in.csv"}}
