"""The manifest format's JSON reading: :func:`loads_json` is ``json.loads``, value for value,
error for error, and a manifest line is accepted exactly when ``json.loads`` accepts it."""

from __future__ import annotations

import codecs
import contextlib
import json

import pytest
import xxhash

from checkpoint_magic.store.manifest import MAGIC, decode_manifest, encode_manifest, loads_json

DOCUMENTS = [
    '{"a":1,"b":[1,2.5,"x",null,true,false],"c":{"d":{}}}',
    "[]",
    "{}",
    '{"a": 1} ',  # trailing whitespace: json.loads accepts it
    ' {"a": 1}',  # leading whitespace
    '{"a": 1}\n{"b": 2}',  # extra data
    '{"a": 1}x',
    '{"a": 1',  # truncated
    '{"a" 1}',
    "[1, 2,]",
    '{"a": NaN, "b": Infinity, "c": -Infinity}',  # accepted by json.loads
    '{"a": nan}',
    '["\\ud800", "\\udfff\\ud800", "\\u00e9\\ud83d\\ude00"]',  # lone surrogates, pairs
    '["\\x"]',
    '{"a": "tab\tinside"}',  # a control character: refused in strict mode
    '{"a": 1, "a": 2}',  # duplicate keys: the last wins
    '{"n": 123456789012345678901234567890, "f": 1e400, "g": -0.0, "h": 1E-7}',
    '"just a string"',
    "12",
    "null",
    "",
    "   ",
    "[",
    "{",
    "]",
    "[" * 50 + "]" * 50,
    "\ufeff{}",  # a BOM: refused in text, decoded away in bytes
    "{\"caf\u00e9\": \"\u2603\"}",
]


def _outcome(call, text):
    try:
        return "value", call(text)
    except (ValueError, RecursionError) as exc:
        return type(exc), str(exc)


def _encodings(doc: str) -> list[bytes | str]:
    raw = [doc, doc.encode("utf-8", "surrogatepass")]
    for codec in ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be", "utf-16", "utf-32", "utf-8-sig"):
        with contextlib.suppress(UnicodeEncodeError):  # lone surrogates: UTF-8 with surrogatepass only
            raw.append(doc.encode(codec))
    return raw


@pytest.mark.parametrize("doc", DOCUMENTS)
def test_loads_json_gives_what_json_loads_gives(doc):
    for text in _encodings(doc):
        assert repr(_outcome(loads_json, text)) == repr(_outcome(json.loads, text)), text


@pytest.mark.parametrize(
    "raw",
    [b"{\xff}", b'{"a": "\xc3"}', b"{\x00\x00\x00", b"[\x00", b"{", b"[", b'{"\xed\xa0\x80": 1}', codecs.BOM_UTF8 + b"{}"],
)
def test_loads_json_on_bytes_no_text_encoding_makes_sense_of(raw):
    assert repr(_outcome(loads_json, raw)) == repr(_outcome(json.loads, raw))


def test_deep_nesting_is_the_error_json_loads_raises():
    deep = "[" * 100_000 + "]" * 100_000
    with pytest.raises(RecursionError):
        json.loads(deep)
    with pytest.raises(RecursionError):
        loads_json(deep)
    body = (deep + "\n{}").encode()
    assert decode_manifest(b"CMM1 " + _checksum(body) + b"\n" + body)[1] == (
        "not a JSON object (malformed or too deeply nested)"
    )


def _checksum(body: bytes) -> bytes:
    import xxhash

    return xxhash.xxh3_128_hexdigest(body).encode()


def test_a_manifest_reads_back_as_written():
    manifest = {"outputs": {"r": {"digest": "0" * 32, "size": 3}}, "namespace": "m.f", "key": "k", "x": [1.5, None]}
    assert decode_manifest(encode_manifest(manifest)) == (manifest, None, None)


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
