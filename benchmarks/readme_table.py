"""Regenerate the README's benchmark table from the tables the last ``make bench`` wrote.

Every row of ``benchmarks/results/{core,scale,s3}.md`` but the context ones (``INFO``): a
target met or not (``PASS``, ``FAIL``), a benchmark that crashed (``ERROR``) or could not run
(``SKIP``), and the target lines of ``signed_read.md``, go between the README's markers::

    <!-- make bench: begin -->
    ...
    <!-- make bench: end -->

together with the line saying when, where and under what load each script ran, so the
README never shows a figure typed by hand. ``make bench`` runs it last; run it alone after a
single script (``python benchmarks/readme_table.py``) to refresh the table from the result
files as they are. ``--check`` only says whether the README is up to date (exit status 1 if
not).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"
#: The results shown: a crash or a skip hides no target.
SHOWN = ("PASS", "FAIL", "ERROR", "SKIP")
#: The result files read, in the order their rows are shown, with what each measures.
SOURCES = (
    ("core.md", "core"),
    ("scale.md", "scale"),
    ("s3.md", "object storage"),
)


def table_rows(text: str) -> list[list[str]]:
    r"""The cells of each row of the results table in ``text`` (header and rule excluded).

    >>> table_rows("| a | b |\n|---|---|\n| 1 | 2 |\n")
    [['1', '2']]
    """
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] in ("benchmark", "a"):  # a header
            continue
        rows.append(cells)
    return rows


def run_of(text: str) -> str:
    r"""When and under what load a results file was written, as it says ("" if it does not).

    >>> run_of("## t\n\nt, full run, 2026-12-03 11:12, 131 s.\nPython; load average 0.8 at start.")
    'full run, 2026-12-03 11:12, 131 s; load average 0.8 at start'
    """
    when = re.search(r"(full|quick) run, \d{4}-\d{2}-\d{2} \d{2}:\d{2}, [\d.]+ s", text)
    load = re.search(r"load average[^;|(\n]*", text)
    parts = [m.group(0).strip().rstrip(".") for m in (when, load) if m]
    return "; ".join(parts)


def build(results: Path = RESULTS) -> str:
    """The Markdown put between the README's markers."""
    lines = [
        "| benchmark | target | measured (median, min) | result | ours median / min | anchor median / min |",
        "|---|---|---|---|---|---|",
    ]
    runs = []
    for name, what in SOURCES:
        path = results / name
        if not path.exists():
            runs.append(f"- {what}: `{name}` missing (its script did not run)")
            continue
        text = path.read_text()
        for cells in table_rows(text):
            if len(cells) < 6 or cells[3] not in SHOWN:  # INFO: context, not a result
                continue
            bench, target, measured, result, ours, anchor = cells[:6]
            result = f"**{result}**" if result in ("FAIL", "ERROR") else result
            lines.append(f"| {bench} | {target} | {measured} | {result} | {ours} | {anchor} |")
        runs.append(f"- {what} (`benchmarks/results/{name}`): {run_of(text) or 'no date recorded'}")
    signed = results / "signed_read.md"
    if signed.exists():
        text = signed.read_text()
        for line in text.splitlines():
            match = re.match(r"target: (.*?) (<= .*): (\S+x) (PASS|FAIL)", line)
            if match:
                what_read, target, ratio, result = match.groups()
                result = f"**{result}**" if result == "FAIL" else result
                lines.append(f"| 256 MiB array, {what_read} | {target} | {ratio} | {result} | | |")
        runs.append(f"- signed reads (`benchmarks/results/signed_read.md`): {run_of(text)}")
    else:
        runs.append("- signed reads: `signed_read.md` missing (its script did not run)")
    return "\n".join(["Measured by the last `make bench`:", "", *runs, "", *lines])


def replace_between(text: str, body: str) -> str:
    r"""``text`` with what lies between the markers replaced by ``body``.

    >>> replace_between(f"a\n{BEGIN}\nold\n{END}\nb", "new")
    'a\n<!-- make bench: begin -->\nnew\n<!-- make bench: end -->\nb'
    """
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[:start] + "\n" + body + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"{args.readme}: the markers {BEGIN} / {END} are missing", file=sys.stderr)
        return 2
    new = replace_between(text, build())
    if args.check:
        return 0 if new == text else 1
    if new != text:
        args.readme.write_text(new)
        print(f"[readme_table] {args.readme.name}: benchmark table regenerated", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
