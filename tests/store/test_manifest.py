"""The manifest's lines are parsed as ``json.loads`` would: the hit path's faster parse
accepts and refuses exactly the same bodies (whitespace, extra data, bad UTF-8, nesting)."""

from __future__ import annotations

import json

import pytest
import xxhash

from checkpoint_magic.store.manifest import MAGIC, decode_manifest, encode_manifest


def _file(body: bytes) -> bytes:
    """A manifest file around ``body`` with a valid checksum (as a forger could write)."""
    return MAGIC + b" " + xxhash.xxh3_128_hexdigest(body).encode("ascii") + b"\n" + body


HOT = b'{"key":"k1","namespace":"m.f","outputs":{}}'


@pytest.mark.parametrize(
    "hot",
    [
        HOT,
        b" " + HOT,  # whitespace around the value: json.loads accepts it
        HOT + b" \t\r",
        b'{ "key" : "k1", "namespace":"m.f", "outputs" : {} }',
        HOT + b" []",  # extra data
        HOT[:-1],  # truncated
        b'{"key":"k1","namespace":"m.f","outputs":{},"x":"\xff"}',  # not UTF-8
        b"[" * 100_000 + b"]" * 100_000,  # too deeply nested
        b"[1, 2]",  # not an object
        b"",
    ],
    ids=[
        "as-written",
        "lead",
        "trail",
        "spaces",
        "extra",
        "truncated",
        "utf8",
        "deep",
        "list",
        "empty",
    ],
)
@pytest.mark.parametrize("hot_only", [True, False])
def test_a_line_is_accepted_exactly_when_json_loads_accepts_it(hot, hot_only):
    try:
        expected = json.loads(hot)
    except (ValueError, RecursionError):
        expected = None
    if not isinstance(expected, dict):
        expected = None
    manifest, damage, problem = decode_manifest(
        _file(hot + b"\n{}"), hot_only=hot_only, namespace="m.f", key="k1"
    )
    assert problem is None
    assert manifest == expected
    assert (damage is None) == (expected is not None)


def test_the_cold_line_is_parsed_the_same_way():
    body = b'{"outputs":{}}\n {"key":"k1","namespace":"m.f","code":"c"} '
    manifest, damage, _ = decode_manifest(_file(body), namespace="m.f", key="k1")
    assert damage is None and manifest == {
        "outputs": {},
        "key": "k1",
        "namespace": "m.f",
        "code": "c",
    }
    manifest, damage, _ = decode_manifest(_file(body + b"x"), namespace="m.f", key="k1")
    assert manifest is None and "not a JSON object" in damage


def test_a_written_manifest_round_trips_through_the_fast_parse():
    manifest = {"outputs": {"return": {"codec": "pickle", "inline": "gAU="}}, "meta": {"é": 1.5}}
    bound = {**manifest, "key": "k1", "namespace": "m.f"}
    assert decode_manifest(encode_manifest(bound), namespace="m.f", key="k1") == (bound, None, None)
    hot, _, _ = decode_manifest(encode_manifest(bound), hot_only=True, namespace="m.f", key="k1")
    assert hot == bound
