"""The ``checkpoint-magic`` command line (in process, and as a new user runs it) and the notebook magics."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoint_magic.core.checkpointer import Checkpointer
from checkpoint_magic.core.explain import record_miss
from checkpoint_magic.store.core import Store
from checkpoint_magic.tools import cli
from checkpoint_magic.tools.maintenance import find_entry, list_entries

REPO = Path(__file__).resolve().parents[2]


def commit(store: Store, ns: str, code: str, x: int, value: Any, parts: dict[str, str] | None = None) -> str:
    cp = Checkpointer("function", ns, store)
    inputs = cp.fingerprint_inputs({"x": x})
    assert cp.save(code, inputs, {"return": value}, duration=0.5, code_parts=parts or {ns: code})
    return cp.key(code, inputs)


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Store, dict[str, str]]:
    """A store with two names: ``pkg.fit`` (two code versions) and ``pkg.score``."""
    store = Store(tmp_path / "store")
    keys = {
        "fit1": commit(store, "pkg.fit", "c1", 1, np.arange(10_000)),
        "fit2": commit(store, "pkg.fit", "c2", 1, np.arange(10_000) + 1, {"pkg.fit": "c2"}),
        "score": commit(store, "pkg.score", "s1", 7, {"auc": 0.9}),
    }
    cp = Checkpointer("function", "pkg.fit", store)
    assert cp.load("c1", cp.fingerprint_inputs({"x": 1})) is not None  # one hit
    return store, keys


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------- in process
def test_ls_groups_entries_by_name(capsys, filled):
    store, keys = filled
    code, out, _ = run(capsys, "--store", str(store.root), "ls")
    assert code == 0
    header, fit, score, summary = out.strip().splitlines()
    assert header.split()[:4] == ["NAME", "KIND", "VERSIONS", "ENTRIES"] and "SAVED" in header
    assert fit.split()[:4] == ["pkg.fit", "function", "2", "2"] and "x" in fit.split()
    assert score.split()[:4] == ["pkg.score", "function", "1", "1"]
    assert summary.startswith("2 names, 3 entries")


def test_ls_entries_and_json(capsys, filled):
    store, keys = filled
    code, out, _ = run(capsys, "ls", "-l", "--store", str(store.root))  # options after the command too
    assert code == 0 and all(k[:12] in out for k in keys.values())
    code, out, _ = run(capsys, "ls", "fit", "--store", str(store.root))  # a unique last part of a name
    assert keys["fit1"][:12] in out and keys["score"][:12] not in out
    code, out, _ = run(capsys, "--json", "ls", "--store", str(store.root))
    data = json.loads(out)
    fit = next(n for n in data["namespaces"] if n["namespace"] == "pkg.fit")
    assert (fit["versions"], fit["entries"], fit["hits"]) == (2, 2, 1)
    assert {e["key"] for e in fit["items"]} == {keys["fit1"], keys["fit2"]}
    assert fit["saved"] == pytest.approx(0.5)


def test_ls_of_an_empty_or_missing_store(capsys, tmp_path):
    code, out, _ = run(capsys, "ls", "--store", str(tmp_path / "nothing"))
    assert code == 0 and "no entries" in out
    assert not (tmp_path / "nothing").exists()  # inspecting creates nothing


def test_show_accepts_a_key_prefix(capsys, filled):
    store, keys = filled
    code, out, _ = run(capsys, "show", keys["fit1"][:8], "--store", str(store.root))
    assert code == 0 and keys["fit1"] in out and "pkg.fit" in out and "npy" in out
    code, out, _ = run(capsys, "show", keys["score"], "--json", "--store", str(store.root))
    data = json.loads(out)
    assert data["key"] == keys["score"] and data["manifest"]["namespace"] == "pkg.score"
    code, _, err = run(capsys, "show", "zzzz", "--store", str(store.root))
    assert code == 2 and "no entry key starts with 'zzzz'" in err


def test_du(capsys, filled):
    store, _ = filled
    code, out, _ = run(capsys, "du", "--store", str(store.root))
    assert code == 0 and [line.split()[0] for line in out.splitlines()] == ["AREA", "objects", "entries", "tmp", "state", "total"]
    data = json.loads(run(capsys, "du", "--json", "--store", str(store.root))[1])
    assert data["objects_files"] == 2 and data["entries_files"] == 3 and data["reclaimable_files"] == 0


def test_pin_gc_and_unpin(capsys, filled):
    store, keys = filled
    root = str(store.root)
    code, out, _ = run(capsys, "pin", keys["fit2"][:10], "--store", root)
    assert code == 0 and out.startswith(f"pinned {keys['fit2']}")
    code, out, _ = run(capsys, "gc", "--max-size", "0", "--dry-run", "--store", root)
    assert code == 0 and "would evict" in out and {e.key for e in list_entries(store)} == set(keys.values())
    code, out, _ = run(capsys, "--json", "gc", "--max-size", "0", "--store", root)
    data = json.loads(out)
    assert {e["key"] for e in data["evicted"]} == {keys["fit1"], keys["score"]} and data["over_budget"]
    assert [e.key for e in list_entries(store)] == [keys["fit2"]]
    assert run(capsys, "unpin", keys["fit2"], "--store", root)[1].startswith("unpinned")
    assert run(capsys, "gc", "--max-size", "0", "--store", root)[0] == 0
    assert list_entries(store) == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gc", "--max-size", "10XB"], "invalid size '10XB'"),
        (["gc", "--max-age", "30"], "give a unit"),
        (["gc", "--keep-versions", "0"], "whole number >= 1"),
        (["frobnicate"], "unknown command 'frobnicate'; the commands are: ls, show"),
        (["--json", "lss"], "unknown command 'lss'; did you mean 'ls'?"),
        ([], "required"),
        (["show"], "required"),
    ],
)
def test_usage_errors_exit_2_with_a_message(capsys, tmp_path, argv, message):
    code, _, err = run(capsys, *argv, "--store", str(tmp_path)) if argv else run(capsys)
    assert code == 2 and message in err


def test_verify_exit_codes_and_fix(capsys, filled):
    store, keys = filled
    root = str(store.root)
    assert run(capsys, "verify", "--store", root)[:2] == (0, "ok: 3 entries and 2 blobs checked, 0 problems, 0 leftovers\n")
    [digest] = find_entry(store, keys["fit2"]).blobs
    store.blob_path(digest).write_bytes(b"bit rot")
    code, out, _ = run(capsys, "verify", "--store", root)
    assert code == 1 and "DAMAGED" in out and "corrupt blob" in out and "broken entry" in out
    data = json.loads(run(capsys, "verify", "--json", "--store", root)[1])
    assert not data["ok"] and {p["kind"] for p in data["problems"]} == {"corrupt blob", "broken entry"}
    code, out, _ = run(capsys, "verify", "--fix", "--store", root)
    assert code == 0 and out.splitlines()[-1].startswith("repaired")
    assert run(capsys, "verify", "--store", root)[0] == 0
    assert {e.key for e in list_entries(store)} == {keys["fit1"], keys["score"]}


def test_why_uses_the_last_recorded_miss_else_compares_the_two_newest_entries(capsys, filled):
    store, _ = filled
    root = str(store.root)
    code, out, _ = run(capsys, "why", "fit", "--store", root)
    assert code == 0 and out.strip() == "pkg.fit: the newest entry (just now) differs from the previous one: code changed: pkg.fit"
    record_miss(store, "pkg.fit", "input changed: x", time.time() - 120)
    code, out, _ = run(capsys, "why", "pkg.fit", "--store", root)
    assert out.strip() == "pkg.fit last recomputed (2 min ago) because: input changed: x"
    data = json.loads(run(capsys, "why", "pkg.fit", "--json", "--store", root)[1])
    assert data["reason"] == "input changed: x" and data["source"] == "last miss"
    assert "no recorded miss" in run(capsys, "why", "score", "--store", root)[1]
    code, _, err = run(capsys, "why", "nope", "--store", root)
    assert code == 2 and "no function, block or cell named 'nope'" in err


def test_clear_one_name_then_everything(capsys, filled):
    store, keys = filled
    root = str(store.root)
    code, out, _ = run(capsys, "clear", "score", "--store", root)
    assert code == 0 and "pkg.score" in out and "removed 1 entry" in out
    code, out, _ = run(capsys, "clear", "--grace", "0", "--yes", "--store", root)
    assert "removed 2 entries and 2 blobs" in out
    assert run(capsys, "clear", "--store", root)[1].startswith("nothing to clear")
    assert run(capsys, "du", "--json", "--store", root)[1].count('"objects_bytes": 0') == 1


def test_clear_without_a_name_asks_first_and_refuses_when_nobody_can_answer(capsys, filled, monkeypatch):
    from unittest import mock

    store, keys = filled
    root = str(store.root)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: a script, CI, a pipe
    code, out, err = run(capsys, "clear", "--store", root)
    assert code == 2 and "pass --yes to confirm" in err and "remove all 3 entries" in err
    assert len(list_entries(store)) == 3
    with mock.patch.object(sys.stdin, "isatty", return_value=True), mock.patch("builtins.input", return_value="n") as asked:
        code, out, _ = run(capsys, "clear", "--store", root)
    assert code == 1 and "cancelled: nothing was removed" in out and len(list_entries(store)) == 3
    assert "remove all 3 entries" in asked.call_args.args[0]
    with mock.patch.object(sys.stdin, "isatty", return_value=True), mock.patch("builtins.input", return_value="y"):
        code, out, _ = run(capsys, "clear", "--store", root)
    assert code == 0 and "removed 3 entries" in out and list_entries(store) == []


def test_a_newer_store_format_is_an_error_not_a_crash(capsys, tmp_path):
    (tmp_path / "FORMAT").write_text('{"format": 42}')
    for command in ("ls", "du", "verify", "gc"):
        code, _, err = run(capsys, command, "--store", str(tmp_path))
        assert code == 2 and "newer checkpoint_magic" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FORMAT"]


def test_errors_that_stop_a_command_exit_2_with_one_line_not_a_traceback(capsys, tmp_path, filled, monkeypatch):
    from checkpoint_magic.store import budget

    a_file = tmp_path / "passwd"
    a_file.write_text("root:x:0:0")
    code, out, err = run(capsys, "--store", str(a_file), "ls")  # not a directory (OSError)
    assert code == 2 and out == "" and err.startswith("checkpoint-magic: error: ") and err.count("\n") == 1
    (tmp_path / "bad" / "FORMAT").parent.mkdir()
    (tmp_path / "bad" / "FORMAT").write_text("hello")
    code, _, err = run(capsys, "du", "--store", str(tmp_path / "bad"))  # StoreFormatError
    assert code == 2 and "not a checkpoint_magic FORMAT file" in err and err.count("\n") == 1

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(filled[0].root / "entries"))

    monkeypatch.setattr(budget, "scan_entries", denied)
    code, _, err = run(capsys, "gc", "--max-age", "1d", "--store", str(filled[0].root))
    assert code == 2 and err.strip().endswith("Permission denied: '" + str(filled[0].root / "entries") + "'")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [["--store", ""], ["--store", " "], ["--grace", "-1"], ["--grace", "nan"], ["--grace", "inf"]])
def test_an_empty_store_path_or_a_bad_grace_period_is_a_usage_error(capsys, tmp_path, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "notes.txt").write_text("mine")
    code, _, err = run(capsys, "gc", *argv, *(["--store", str(tmp_path)] if argv[0] == "--grace" else []))
    assert code == 2 and ("--store needs a directory" in err or "invalid grace period" in err)
    assert (tmp_path / "tmp" / "notes.txt").read_text() == "mine"


def test_verify_fix_keeps_entries_whose_signature_fails(capsys, filled, monkeypatch):
    store, keys = filled
    root = str(store.root)
    monkeypatch.setenv("CHECKPOINT_MAGIC_SECRET", "a secret set on a store written without one")
    code, out, _ = run(capsys, "verify", "--fix", "--store", root)
    assert code == 1 and "3 entries with a failing signature kept" in out and "--drop-unsigned" in out
    assert {e.key for e in list_entries(store)} == set(keys.values())
    code, out, _ = run(capsys, "verify", "--drop-unsigned", "--store", root)
    assert code == 0 and out.splitlines()[-1].startswith("repaired") and list_entries(store) == []


def test_clear_keeps_pinned_entries_unless_forced(capsys, filled):
    store, keys = filled
    root = str(store.root)
    run(capsys, "pin", keys["fit1"], "--store", root)
    code, out, _ = run(capsys, "clear", "fit", "--grace", "0", "--store", root)
    assert code == 0 and "removed 1 entry" in out and "kept 1 pinned entry" in out
    code, out, _ = run(capsys, "--json", "clear", "--force", "--yes", "--store", root)
    data = json.loads(out)
    assert data["removed"] == {"pkg.fit": 1, "pkg.score": 1} and data["kept_pinned"] == 0
    assert list_entries(store) == []


# ---------------------------------------------------------------------------------------- as a new user
FILL = """
import time
import numpy as np
from checkpoint_magic import checkpoint

@checkpoint
def slow_square(x):
    time.sleep(0.01)
    return np.arange(20_000) * x{edit}

for x in (1, 2, 3):
    slow_square(x)
    slow_square(x)
"""


def _cli(cwd: Path, *args: str, module: bool = False) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("checkpoint-magic")
    command = [sys.executable, "-m", "checkpoint_magic"] if module or not script.exists() else [str(script)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHECKPOINT_MAGIC_")}
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_console_script_on_a_store_filled_by_a_script(script, tmp_path):
    script.run(FILL.format(edit=""))
    script.run(FILL.format(edit=" + 0  # edited"))  # the code changed: new entries
    ls = _cli(tmp_path, "ls")
    assert ls.returncode == 0, ls.stderr
    row = next(line for line in ls.stdout.splitlines() if line.startswith("__main__.slow_square"))
    assert row.split()[1:4] == ["function", "2", "6"]  # kind, code versions, entries
    data = json.loads(_cli(tmp_path, "ls", "--json").stdout)
    [ns] = data["namespaces"]
    assert ns["hits"] == 6 and ns["versions"] == 2 and ns["inputs"] == ["x"]
    key = max(ns["items"], key=lambda e: e["created"])["key"]
    show = _cli(tmp_path, "show", key[:7])
    assert show.returncode == 0 and key in show.stdout and "npy" in show.stdout
    why = _cli(tmp_path, "why", "slow_square")
    assert why.returncode == 0 and "code changed: __main__.slow_square" in why.stdout, why.stdout
    du = _cli(tmp_path, "du", module=True)  # python -m checkpoint_magic works the same
    assert du.returncode == 0 and du.stdout.startswith("AREA")
    assert _cli(tmp_path, "pin", key).returncode == 0
    gc = _cli(tmp_path, "--json", "gc", "--max-size", "1KB")
    assert gc.returncode == 0 and len(json.loads(gc.stdout)["evicted"]) == 5
    assert _cli(tmp_path, "verify").stdout.startswith("ok: 1 entries")
    clear = _cli(tmp_path, "clear", "--yes")  # the one entry left is pinned
    assert clear.returncode == 0 and "kept 1 pinned entry (`clear --force` removes them)" in clear.stdout
    assert "kept for the grace period" not in clear.stdout  # gc freed the evicted entries' blobs at once
    clear = _cli(tmp_path, "clear", "--force", "--grace", "0", "-y")
    assert clear.returncode == 0 and "removed 1 entry and 1 blob" in clear.stdout
    help_ = _cli(tmp_path, "--help")
    assert help_.returncode == 0 and "running their code" in help_.stdout


def test_gc_leaves_a_directory_that_is_not_a_store_alone(tmp_path):
    """The reviewer's repro: files two hours old where a store keeps its folders, `--store DIR gc`."""
    files = [tmp_path / "d" / "tmp" / "notes.txt", tmp_path / "d" / "objects" / "ab" / "report.csv", tmp_path / "d" / "state" / "x" / "y.pin"]
    for path in files:
        path.parent.mkdir(parents=True)
        path.write_text("mine")
        os.utime(path, (time.time() - 7200, time.time() - 7200))
    for command in (["gc"], ["gc", "--grace", "0", "--max-size", "0"], ["verify", "--fix"], ["clear", "--force"]):
        done = _cli(tmp_path, "--store", str(tmp_path / "d"), *command, module=True)
        assert done.returncode == 2 and "not a checkpoint store" in done.stderr and "Traceback" not in done.stderr
    assert all(path.read_text() == "mine" for path in files)


# ---------------------------------------------------------------------------------------- notebook
@pytest.fixture
def ip() -> Any:
    from IPython.testing.globalipapp import get_ipython

    from checkpoint_magic.notebook import inspection as magics_inspect

    shell = get_ipython()
    had = "checkpoint_store" in shell.magics_manager.magics["line"]
    magics_inspect.register(shell)
    yield shell
    if not had:
        magics_inspect.unregister(shell)


def test_store_magic_renders_the_cli_tables_as_html(ip, filled):
    store, keys = filled
    result = ip.run_line_magic("checkpoint_store", f"ls --store {store.root}")
    html = result._repr_html_()
    assert "<table" in html and "pkg.fit" in html and "VERSIONS" in html
    assert "pkg.fit" in repr(result)  # plain text outside a notebook
    data = ip.run_line_magic("checkpoint_store", f"ls --json --store {store.root}")
    assert {n["namespace"] for n in data["namespaces"]} == {"pkg.fit", "pkg.score"}
    gc = ip.run_line_magic("checkpoint_store", f"gc --max-size 1GB --dry-run --store {store.root}")
    assert "would free 0 entries" in repr(gc)
    why = ip.run_line_magic("checkpoint_why", f"fit --store {store.root}")
    assert "code changed: pkg.fit" in why._repr_html_()
    # The store's HTML view is registered with IPython's formatter by the notebook layer.
    html = ip.display_formatter.formatters["text/html"].lookup(store)(store)
    assert "<table" in html and "pkg.score" in html


def test_store_html_view_is_registered_and_removed_with_the_extension(filled):
    from IPython.testing.globalipapp import get_ipython

    from checkpoint_magic.notebook import inspection as magics_inspect

    store, _ = filled
    shell = get_ipython()
    html = shell.display_formatter.formatters["text/html"]
    magics_inspect.register(shell)
    assert html.lookup_by_type(type(store)) is magics_inspect.store_html
    magics_inspect.unregister(shell)
    assert type(store) not in html.type_printers


@pytest.mark.parametrize(
    "magic, line, message",
    [
        ("checkpoint_store", "", "required"),
        ("checkpoint_store", "bogus", "invalid choice"),
        ("checkpoint_store", "du --fix", "unrecognized arguments: --fix"),
        ("checkpoint_store", "show", "required: KEY"),
        ("checkpoint_store", "du extra", "unrecognized arguments: extra"),
        ("checkpoint_store", "show zzzz", "no entry key starts with"),
        ("checkpoint_store", "gc --max-size lots", "invalid size"),
        ("checkpoint_store", "gc --max-age 30", "give a unit"),  # the CLI's own validation
        ("checkpoint_store", "gc --keep-versions 0", "whole number >= 1"),
        ("checkpoint_store", "gc --grace -5", "invalid grace period"),
        ("checkpoint_why", "", "required"),
    ],
)
def test_store_magic_bad_input_is_a_usage_error(ip, filled, magic, line, message):
    from IPython.core.error import UsageError

    store, _ = filled
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic(magic, f"{line} --store {store.root}")


def test_unregister_removes_only_what_register_added(ip):
    from checkpoint_magic.notebook import inspection as magics_inspect

    magics_inspect.unregister(ip)
    assert "checkpoint_store" not in ip.magics_manager.magics["line"]
    assert "checkpoint_why" not in ip.magics_manager.magics["line"]
    magics_inspect.register(ip)
    assert "checkpoint_why" in ip.magics_manager.magics["line"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("verify --fix --store=", "--store needs a directory"),
        ("ls --store /dev/null/nowhere", "Not a directory"),  # an OSError
        ("gc --grace 0 --store {empty}", "not a checkpoint store"),
    ],
)
def test_store_magic_errors_that_stop_a_command_are_usage_errors(ip, tmp_path, line, message):
    from IPython.core.error import UsageError

    (tmp_path / "tmp").mkdir()
    (tmp_path / "tmp" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=message):
        ip.run_line_magic("checkpoint_store", line.format(empty=tmp_path))
    assert (tmp_path / "tmp" / "notes.txt").read_text() == "mine"


def test_command_bodies_are_plain_functions(filled):
    """The magics (and Python code) call the commands without argparse."""
    from checkpoint_magic.tools.cli import call, du_output, ls_output, why_output

    store, _ = filled
    grouped = ls_output(store)
    assert {n["namespace"] for n in grouped.data["namespaces"]} == {"pkg.fit", "pkg.score"}
    assert "KEY" in ls_output(store, entries=True).blocks[0].headers
    assert du_output(store).data["objects_files"] >= 1
    assert "code changed: pkg.fit" in why_output(store, "fit").data["reason"]
    assert call("ls", store, {"target": "fit", "json": True, "store": "ignored"}).data == ls_output(store, "fit").data


def test_ls_without_json_shows_the_same_table_from_the_index_totals(filled, monkeypatch):
    """The grouped view reads the index's totals per name (no entry built); --json lists them."""
    import types

    from checkpoint_magic.tools import listing
    from checkpoint_magic.tools.output import render_text

    store, _ = filled
    monkeypatch.setattr(listing, "time", types.SimpleNamespace(time=lambda: 2e9))  # one "now"
    full, quick = listing.ls_output(store), listing.ls_output(store, json=False)
    assert render_text(quick.blocks) == render_text(full.blocks)
    assert [{k: v for k, v in ns.items() if k != "items"} for ns in full.data["namespaces"]] == (
        quick.data["namespaces"]
    )
    assert all("items" not in ns for ns in quick.data["namespaces"])
    # The command line prints the grouped view without building entries; --json has them all.
    import checkpoint_magic.tools.maintenance as maintenance

    built: list[int] = []
    monkeypatch.setattr(maintenance, "list_entries", lambda *a, **k: built.append(1) or [])
    assert cli.main(["ls", "--store", str(store.root)]) == 0 and built == []
