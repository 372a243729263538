"""Tests of checkpoint_magic.fingerprint.files: which values are paths."""

from __future__ import annotations

import os
import pathlib

from checkpoint_magic.fingerprint import files
from checkpoint_magic.fingerprint.files import path_values


class AttrDict(dict):
    """The common config idiom: attributes are keys (a missing one raises KeyError)."""

    __getattr__ = dict.__getitem__


class Registered:
    """Registered as os.PathLike but without __fspath__: os.fspath refuses it."""


os.PathLike.register(Registered)


class InstanceFspath:
    def __init__(self) -> None:
        self.__fspath__ = lambda: "x"  # on the instance: os.fspath ignores it


def test_path_values_finds_str_and_path_like_in_order():
    p = pathlib.PurePosixPath("d/x.npy")
    assert path_values([1, "a.csv", p, b"raw", None]) == {"a.csv": "a.csv", "d/x.npy": p}


def test_path_values_never_asks_the_value_for_fspath():
    # A __getattr__ raising KeyError (not AttributeError) is an ordinary value, as it was
    # with isinstance(v, (str, os.PathLike)).
    assert path_values([AttrDict(a=1), "f"]) == {"f": "f"}


def test_path_values_same_choice_as_os_fspath():
    # Neither can be turned into a path by os.fspath: neither is a candidate.
    assert path_values([Registered(), InstanceFspath()]) == {}


def test_path_values_sees_a_class_that_gains_fspath():
    # A class is mutable: what it was at an earlier call (not a path) is asked again.
    class Source:
        pass

    assert path_values([Source()]) == {}
    Source.__fspath__ = lambda self: "data.csv"  # type: ignore[attr-defined]
    assert list(path_values([Source()])) == ["data.csv"]


def test_path_candidate_follows_the_working_folder(tmp_path, monkeypatch):
    # Absolute paths are remembered by text, for the working folder they were made in.
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    assert files.path_candidate("data.csv") == str(tmp_path / "a" / "data.csv")
    monkeypatch.chdir(tmp_path / "b")
    assert files.path_candidate("data.csv") == str(tmp_path / "b" / "data.csv")
    monkeypatch.setenv("HOME", str(tmp_path / "a"))
    assert files.path_candidate("~/x.csv") == str(tmp_path / "a" / "x.csv")
