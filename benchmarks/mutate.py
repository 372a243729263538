"""Mutation testing of the critical modules with mutmut 3: one module at a time, its own fast tests.

``make mutate`` runs this script. For each module it mutates, it

1. prepares a scratch project ``build/mutmut/<module>/`` (a copy of ``checkpoint_magic/``,
   ``tests/`` and ``pyproject.toml``) whose ``[tool.mutmut]`` section restricts mutmut to that
   module and to that module's fast tests (plus the module's own doctests), so one module on
   two cores takes minutes, not hours, and the kernel-driving tests never run;
2. runs ``mutmut run`` there, stopped after ``--minutes`` (the mutants not reached are reported
   as "not checked", never counted as killed);
3. prints the score ``killed / checked`` and every surviving mutant as ``file:line``, the
   function, and the mutated line before and after.

Why mutmut 3 and how it fits this package: mutmut copies the sources into ``mutants/`` and
replaces each function by a trampoline that calls the original or one mutant, chosen by the
``MUTANT_UNDER_TEST`` environment variable. Our tests import the package from there because
``tests/conftest.py`` puts the copy's root (``mutants/``) first on ``PYTHONPATH`` for the scripts
it starts, and those fresh processes inherit the variable, so "run the script twice" tests see
the mutant too. Two limits of the trampolines are handled here:

* a function that reads its caller's frame (``sys._getframe``, ``inspect.currentframe``) would
  see the trampoline instead of its caller, so the scratch copy marks it
  ``# pragma: no mutate block`` and the report lists it as not mutated;
* mutmut does not mutate decorated functions (``functools.lru_cache`` and the like) and only
  knows which tests reach a function in-process, so code reached only from scripts run by the
  tests shows up as "no tests" (counted as not killed).

Usage::

    python benchmarks/mutate.py                                  # every default module
    python benchmarks/mutate.py checkpoint_magic/store/manifest.py --minutes 10
    python benchmarks/mutate.py checkpoint_magic/fingerprint/values.py --tests tests/fingerprint
    MUTATE_MODULES="checkpoint_magic/inline.py" make mutate

The default modules are ``only_mutate`` of ``[tool.mutmut]`` in ``pyproject.toml``; the tests of a
module are :data:`TESTS_BY_MODULE` (globs), else ``tests/<package>/test_<module>*.py``. The
environment variables ``MUTATE_MODULES``, ``MUTATE_TESTS`` and ``MUTATE_MINUTES`` set the
same as the arguments. The exit status is 0 whatever the score: this is a measurement.
"""

from __future__ import annotations

import argparse
import ast
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mutmut depends on toml before Python 3.11
    import toml as tomllib

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / "build" / "mutmut"
PACKAGE = "checkpoint_magic"

#: The fast tests that exercise each module (globs, relative to the repository). The module's
#: own doctests are always added. Kernel-driving tests (tests/notebook, tests/savers/test_dump.py)
#: and tests/stress are deliberately absent.
TESTS_BY_MODULE: dict[str, list[str]] = {
    "checkpoint_magic/fingerprint/values.py": ["tests/fingerprint"],
    "checkpoint_magic/fingerprint/stdtypes.py": ["tests/fingerprint"],
    "checkpoint_magic/fingerprint/arrays.py": ["tests/fingerprint"],
    "checkpoint_magic/fingerprint/pandas.py": ["tests/fingerprint"],
    "checkpoint_magic/fingerprint/objects.py": ["tests/fingerprint"],
    "checkpoint_magic/fingerprint/code.py": ["tests/fingerprint"],
    "checkpoint_magic/fingerprint/codegraph.py": ["tests/fingerprint"],
    "checkpoint_magic/store/core.py": ["tests/store", "tests/tools/test_integrity*.py"],
    "checkpoint_magic/store/manifest.py": ["tests/store", "tests/tools/test_integrity*.py"],
    "checkpoint_magic/store/blobs.py": ["tests/store", "tests/tools/test_integrity*.py"],
    "checkpoint_magic/checkpointer.py": ["tests/test_decorator*.py", "tests/test_inline*.py"],
    "checkpoint_magic/decorator.py": ["tests/test_decorator*.py"],
    "checkpoint_magic/inline.py": ["tests/test_inline*.py"],
}

#: Exit codes of mutmut's results, grouped the way the score counts them.
DETECTED = {"killed", "timeout", "caught by type check", "segfault"}
NOT_RUN = {"not checked", "skipped", "check was interrupted by user"}

FRAME_READERS = {"_getframe", "currentframe", "stack"}


@dataclass
class Survivor:
    """One mutant the tests did not kill."""

    status: str
    location: str
    function: str
    before: list[str]
    after: list[str]


@dataclass
class Result:
    """The outcome of one module's run."""

    module: str
    tests: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[Survivor] = field(default_factory=list)
    unmutated: list[str] = field(default_factory=list)
    seconds: float = 0.0
    cut_short: bool = False

    @property
    def detected(self) -> int:
        return sum(n for status, n in self.counts.items() if status in DETECTED)

    @property
    def checked(self) -> int:
        return sum(n for status, n in self.counts.items() if status not in NOT_RUN)


def default_modules() -> list[str]:
    """The modules ``[tool.mutmut] only_mutate`` lists in ``pyproject.toml``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(config.get("tool", {}).get("mutmut", {}).get("only_mutate", []))


def tests_for(module: str) -> list[str]:
    """The test paths of ``module``: :data:`TESTS_BY_MODULE`, else the mirrored test files."""
    patterns = TESTS_BY_MODULE.get(module)
    if patterns is None:
        rel = Path(module).relative_to(PACKAGE)
        patterns = [str(Path("tests", *rel.parent.parts, f"test_{rel.stem}*.py"))]
    return expand(patterns)


def expand(patterns: list[str]) -> list[str]:
    """Expand globs relative to the repository, keeping only paths that exist."""
    found: list[str] = []
    for pattern in patterns:
        for match in sorted(glob.glob(pattern, root_dir=ROOT)):
            if match not in found:
                found.append(match)
    return found


def sync_tree(src: Path, dst: Path) -> None:
    """Make ``dst`` a fresh copy of ``src`` without bytecode caches."""
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(
        src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    )


def toml_value(value: object) -> str:
    """A TOML literal for the strings, numbers, booleans and lists used in ``[tool.mutmut]``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to [tool.mutmut]")


def scratch_pyproject(module: str, tests: list[str]) -> str:
    """The repository's ``pyproject.toml`` with ``[tool.mutmut]`` narrowed to one module."""
    text = (ROOT / "pyproject.toml").read_text()
    settings = dict(tomllib.loads(text).get("tool", {}).get("mutmut", {}))
    # Drop the repository's section; what follows it up to the next table header goes with it.
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    settings["source_paths"] = [PACKAGE]
    settings["also_copy"] = [*settings.get("also_copy", []), "sitecustomize.py"]
    settings["only_mutate"] = [module]
    settings["pytest_add_cli_args_test_selection"] = [*tests, module]
    lines = ["", "[tool.mutmut]"] + [f"{key} = {toml_value(val)}" for key, val in settings.items()]
    return text.rstrip("\n") + "\n" + "\n".join(lines) + "\n"


def reads_callers_frame(node: ast.AST) -> bool:
    """Whether a function calls ``sys._getframe``/``inspect.currentframe``/``inspect.stack``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            func = sub.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in FRAME_READERS:
                return True
    return False


def protect_frame_readers(path: Path) -> list[str]:
    """Mark the functions of ``path`` that read frames ``# pragma: no mutate block``; name them."""
    import libcst as cst  # mutmut's own dependency

    source = path.read_text()
    tree = ast.parse(source)
    names: list[str] = []
    for node in tree.body:
        candidates = node.body if isinstance(node, ast.ClassDef) else [node]
        for fn in candidates:
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and reads_callers_frame(fn):
                names.append(f"{node.name}.{fn.name}" if fn is not node else fn.name)
    if not names:
        return []
    short = {n.rpartition(".")[2] for n in names}

    class Mark(cst.CSTTransformer):
        def leave_FunctionDef(
            self, original: cst.FunctionDef, updated: cst.FunctionDef
        ) -> cst.FunctionDef:
            if updated.name.value not in short or not isinstance(updated.body, cst.IndentedBlock):
                return updated
            header = updated.body.header.with_changes(
                whitespace=cst.SimpleWhitespace("  "),
                comment=cst.Comment("# pragma: no mutate block"),
            )
            return updated.with_changes(body=updated.body.with_changes(header=header))

    path.write_text(cst.parse_module(source).visit(Mark()).code)
    return names


#: Copied to the root of ``mutants/``, which ``tests/conftest.py`` puts first on the ``PYTHONPATH``
#: of the scripts the tests start. While mutmut records which tests reach which function
#: (``MUTANT_UNDER_TEST=stats``) the trampolines of such a script would look for mutmut's
#: configuration in the script's working directory and fail; its hits would be lost anyway,
#: so the script runs the original code. With a mutant active, scripts run the mutant.
SITECUSTOMIZE = """\
import os

if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    os.environ["MUTANT_UNDER_TEST"] = ""
"""


def prepare(module: str, tests: list[str]) -> tuple[Path, list[str]]:
    """Create the scratch project of ``module``; return it and the functions left unmutated."""
    work = SCRATCH / module.removesuffix(".py").replace("/", ".")
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(work / "mutants", ignore_errors=True)
    sync_tree(ROOT / PACKAGE, work / PACKAGE)
    sync_tree(ROOT / "tests", work / "tests")
    (work / "sitecustomize.py").write_text(SITECUSTOMIZE)
    (work / "pyproject.toml").write_text(scratch_pyproject(module, tests))
    return work, protect_frame_readers(work / module)


def run_mutmut(work: Path, minutes: float, max_children: int | None) -> tuple[float, bool]:
    """Run ``mutmut run`` in ``work`` for at most ``minutes``; return (seconds, cut short)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MUTANT_UNDER_TEST")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    cmd = [sys.executable, "-m", "mutmut", "run"]
    if max_children:
        cmd += ["--max-children", str(max_children)]
    start = time.monotonic()
    with open(work / "mutmut.log", "w") as log:
        proc = subprocess.Popen(
            cmd, cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=minutes * 60)
            cut_short = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            cut_short = True
    if proc.returncode not in (0, None) and not cut_short:
        tail = (work / "mutmut.log").read_text(errors="replace")[-3000:]
        raise SystemExit(
            f"mutmut failed in {work} (exit {proc.returncode}); end of mutmut.log:\n{tail}"
        )
    return time.monotonic() - start, cut_short


def collect(work: Path, module: str) -> tuple[dict[str, int], list[Survivor]]:
    """Read mutmut's results for ``module`` in ``work``: counts by status and the survivors."""
    from mutmut.configuration import reset_config
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    meta = work / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}, []
    exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    counts: dict[str, int] = {}
    survivors: list[Survivor] = []
    source_lines = (work / module).read_text().splitlines()
    spans = function_spans(work / module)
    cwd = Path.cwd()
    os.chdir(work)
    reset_config()
    try:
        for name, code in sorted(exit_codes.items(), key=lambda kv: mutant_sort_key(kv[0])):
            status = status_by_exit_code[code]
            counts[status] = counts.get(status, 0) + 1
            if status in DETECTED or status in NOT_RUN:
                continue
            diff = get_diff_for_mutant(name, path=module)
            survivors.append(describe(status, name, diff, module, source_lines, spans))
    finally:
        os.chdir(cwd)
        reset_config()
    return counts, survivors


def mutant_sort_key(name: str) -> tuple[str, int]:
    base, _, number = name.rpartition("__mutmut_")
    return base, int(number) if number.isdigit() else 0


def function_spans(path: Path) -> dict[str, tuple[int, int]]:
    """``{"func" or "Class.method": (first line incl. decorators, last line)}`` of a module."""
    spans: dict[str, tuple[int, int]] = {}
    for node in ast.parse(path.read_text()).body:
        members = (
            [(node.name + ".", m) for m in node.body]
            if isinstance(node, ast.ClassDef)
            else [("", node)]
        )
        for prefix, fn in members:
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([fn.lineno] + [d.lineno for d in fn.decorator_list])
                spans[prefix + fn.name] = (first, fn.end_lineno or fn.lineno)
    return spans


def describe(
    status: str,
    name: str,
    diff: str,
    module: str,
    source_lines: list[str],
    spans: dict[str, tuple[int, int]],
) -> Survivor:
    """Turn mutmut's per-function diff into ``file:line`` and the changed lines."""
    mangled = name.rpartition(".")[2].rpartition("__mutmut_")[0]
    function = (
        mangled.removeprefix("x_") if mangled.startswith("x_") else ".".join(mangled.split("ǁ")[1:])
    )
    first, last = spans.get(function, (1, len(source_lines)))
    before = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("-") and not line.startswith("---")
    ]
    after = [
        line[1:]
        for line in diff.splitlines()
        if line.startswith("+") and not line.startswith("+++")
    ]
    # The diff counts lines from the function's first line; find the first removed line.
    guess = first
    diff_lines = diff.splitlines()
    for i, line in enumerate(diff_lines):
        hunk = re.match(r"@@ -(\d+)", line)
        if hunk:
            rest = diff_lines[i + 1 :]
            context = next((k for k, text in enumerate(rest) if text.startswith("-")), 0)
            added_before = sum(1 for text in rest[:context] if text.startswith("+"))
            guess = first + int(hunk.group(1)) - 1 + context - added_before
            break
    line_no = guess
    if before:
        wanted = before[0].strip()
        matches = [i for i in range(first, last + 1) if source_lines[i - 1].strip() == wanted]
        if matches:
            line_no = min(matches, key=lambda i: abs(i - guess))
    return Survivor(status, f"{module}:{line_no}", function, before, after)


def report(result: Result) -> str:
    """The text report of one module."""
    lines = [f"== {result.module}  (tests: {' '.join(result.tests)})"]
    checked = result.checked
    score = (
        f"{result.detected}/{checked} = {100 * result.detected / checked:.1f}%"
        if checked
        else "n/a"
    )
    lines.append(
        f"score: {score} killed; {result.seconds / 60:.1f} min"
        + ("; CUT SHORT by --minutes, the rest is 'not checked'" if result.cut_short else "")
    )
    lines.append("counts: " + ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())))
    if result.unmutated:
        lines.append(
            "not mutated (they read their caller's frame, which mutmut's trampoline would replace): "
            + ", ".join(result.unmutated)
        )
    for s in result.survivors:
        lines.append(f"  {s.location}  [{s.status}] in {s.function}()")
        for text in s.before:
            lines.append(f"      - {text.strip()}")
        for text in s.after:
            lines.append(f"      + {text.strip()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "modules", nargs="*", help="module files to mutate (default: [tool.mutmut] only_mutate)"
    )
    parser.add_argument(
        "--tests", nargs="+", help="test paths/globs for every module given (default: per module)"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        default=float(os.environ.get("MUTATE_MINUTES", 20)),
        help="stop each module's run after this long (default 20, or MUTATE_MINUTES)",
    )
    parser.add_argument(
        "--max-children", type=int, default=None, help="parallel mutants (default: CPU count)"
    )
    args = parser.parse_args(argv)

    modules = (
        args.modules
        or os.environ.get("MUTATE_MODULES", "").replace(",", " ").split()
        or default_modules()
    )
    test_patterns = (
        args.tests or os.environ.get("MUTATE_TESTS", "").replace(",", " ").split() or None
    )
    results = []
    for module in modules:
        if not (ROOT / module).is_file():
            raise SystemExit(f"{module}: no such file (give module paths relative to {ROOT})")
        tests = expand(test_patterns) if test_patterns else tests_for(module)
        if not tests:
            raise SystemExit(f"{module}: no tests found; name them with --tests or MUTATE_TESTS")
        print(
            f"mutating {module} against {' '.join(tests)} (at most {args.minutes:g} min)...",
            flush=True,
        )
        work, unmutated = prepare(module, tests)
        seconds, cut_short = run_mutmut(work, args.minutes, args.max_children)
        counts, survivors = collect(work, module)
        result = Result(module, tests, counts, survivors, unmutated, seconds, cut_short)
        text = report(result)
        (work / "report.txt").write_text(text + "\n")
        print(text, flush=True)
        results.append(result)
    if len(results) > 1:
        print("\n== summary")
        for r in results:
            print(
                f"  {r.module}: {r.detected}/{r.checked} killed"
                + (" (cut short)" if r.cut_short else "")
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
