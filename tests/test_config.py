"""Settings read from the environment (``checkpoint_magic.config``)."""

from __future__ import annotations

import os

import pytest

from checkpoint_magic import config


@pytest.fixture(autouse=True)
def _no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(config.ENV_SECRET, raising=False)


def test_secret_key_follows_every_change_of_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config.secret_key() is None
    monkeypatch.setenv(config.ENV_SECRET, "s3cr\u00e9t")
    assert config.secret_key() == "s3cr\u00e9t".encode()
    os.environ[config.ENV_SECRET] = "other"
    assert config.secret_key() == b"other"
    os.environ[config.ENV_SECRET] = ""  # empty: unset
    assert config.secret_key() is None
    del os.environ[config.ENV_SECRET]
    assert config.secret_key() is None
    os.environ.update({config.ENV_SECRET: "again"})
    assert config.secret_key() == b"again"
    os.environ.pop(config.ENV_SECRET)
    assert config.secret_key() is None


def test_secret_key_reads_a_replaced_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "environ", {config.ENV_SECRET: "from a plain dict"})
    assert config.secret_key() == b"from a plain dict"
    monkeypatch.setattr(os, "environ", {})
    assert config.secret_key() is None


def test_an_unset_secret_is_answered_without_a_lookup_through_the_mapping(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The hit path's shortcut: ``os.environ.get`` of an unset name raises inside (~0.5 us)."""
    calls = []
    environ_type = type(os.environ)
    original = environ_type.__getitem__

    def counted(self: os._Environ[str], key: str) -> str:
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(environ_type, "__getitem__", counted)
    assert config.secret_key() is None
    assert config.ENV_SECRET not in calls
    monkeypatch.setenv(config.ENV_SECRET, "set")
    assert config.secret_key() == b"set"  # a set secret is read through os.environ
    assert config.ENV_SECRET in calls
