"""benchmarks/readme_table.py: the README's table never hides a target that was not met."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_readme_table():
    spec = importlib.util.spec_from_file_location("readme_table", BENCHMARKS / "readme_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HEADER = (
    "| benchmark | target | measured (median) | result | ours median / min | anchor | notes |\n"
    "|---|---|---|---|---|---|---|\n"
)


def test_failed_crashed_and_skipped_targets_stay_in_the_table(tmp_path):
    rows = [
        "| hit | ours <= 15 us | 9.0 us (min 8.8 us) | PASS | 9.0 us / 8.8 us |  |  |",
        "| miss | ours <= 1 | 1.2x (min 1.1x) | FAIL | 1 ms / 1 ms | j: 1 ms |  |",
        "| lineage | ours <= 0.2 | - | ERROR |  |  | the filled store does not hit |",
        "| bench_gc | - | - | ERROR |  |  | RuntimeError: boom |",
        "| s3 hit | ours/raw <= 1.3 | - | SKIP |  | raw get: 1 ms | moto missing |",
        "| context | - | np.load: 1 ms / 1 ms | INFO |  |  |  |",
    ]
    (tmp_path / "core.md").write_text(HEADER + "\n".join(rows) + "\n")
    (tmp_path / "signed_read.md").write_text(
        "```\ntarget: signed first read <= 1.5x unsigned: nanx FAIL\n```\n"
    )
    table = load_readme_table().build(tmp_path)
    for bench, result in [
        ("hit", "PASS"),
        ("miss", "**FAIL**"),
        ("lineage", "**ERROR**"),
        ("bench_gc", "**ERROR**"),
        ("s3 hit", "SKIP"),
        ("256 MiB array, signed first read", "**FAIL**"),
    ]:
        assert any(
            line.startswith(f"| {bench} |") and f"| {result} |" in line
            for line in table.splitlines()
        ), (bench, result, table)
    assert "context" not in table  # rows without a target are context, not results
