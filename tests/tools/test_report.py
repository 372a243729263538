"""``entries_frame``, the HTML store report, ``checkpoint-magic report`` and ``%checkpoint_store report``.

The report is checked as a person sees it: rendered by headless Chromium to a screenshot
that must not be blank.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from checkpoint_magic import checkpoint
from checkpoint_magic.tools.cli import main, suggest_command
from checkpoint_magic.tools.report import entries_frame, report_html, write_report


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    """A store with two functions: one with two code versions, hits on both."""
    store = tmp_path / "store"

    @checkpoint(store=store, name="load_data")
    def load_data(n):
        return np.arange(n * 1000.0)

    for n in (1, 2, 3):
        load_data(n)
        load_data(n)
    for version in (1, 2):
        fit = checkpoint(store=store, name="fit_model")(eval(f"lambda n: np.ones(n * 2000) * {version}"))
        fit(2)
        fit(2)
    return store


def test_entries_frame_has_one_row_per_entry_with_datetimes(filled: Path) -> None:
    import pandas as pd

    frame = entries_frame(filled)
    assert len(frame) == 5 and set(frame["name"]) == {"load_data", "fit_model"}
    assert pd.api.types.is_datetime64_any_dtype(frame["created"])
    assert pd.api.types.is_datetime64_any_dtype(frame["last_used"])
    assert (frame["hits"] == 1).all() and (frame["size_bytes"] > 0).all()
    assert frame.groupby("name")["code"].nunique().to_dict() == {"fit_model": 2, "load_data": 1}
    assert frame["created"].is_monotonic_increasing


def test_report_page_has_totals_plots_and_a_row_per_name(filled: Path) -> None:
    page = report_html(filled)
    assert page.startswith("<!DOCTYPE html>") and page.count("data:image/png;base64,") == 3
    for text in ("compute time saved", "Store size over time", "Code versions per name"):
        assert text in page
    assert page.count("<tr><td") == 2 and "fit_model" in page and "load_data" in page
    fragment = report_html(filled, page=False)
    assert fragment.startswith("<div class='cm-report'>") and "<body" not in fragment


def test_cli_report_writes_the_page_and_suggests_commands(
    filled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "report.html"
    assert main(["--store", str(filled), "report", "--html", str(out)]) == 0
    assert out.read_text().count("data:image/png;base64,") == 3
    assert f"report written to {out}" in capsys.readouterr().out
    assert main(["--store", str(filled), "reprot"]) == 2
    assert "unknown command 'reprot'; did you mean 'report'?" in capsys.readouterr().err
    assert suggest_command("pinn") == "pin" and suggest_command("zzz") is None


def test_store_magic_shows_the_report_inline(filled: Path) -> None:
    from IPython.core.error import UsageError
    from IPython.testing.globalipapp import get_ipython

    from checkpoint_magic.notebook import inspection

    ip = get_ipython()
    inspection.register(ip)
    try:
        shown = ip.run_line_magic("checkpoint_store", f"report --store {filled}")
        assert shown._repr_html_().count("data:image/png;base64,") == 3
        with pytest.raises(UsageError, match="did you mean %checkpoint_store ls"):
            ip.run_line_magic("checkpoint_store", f"lss --store {filled}")
    finally:
        inspection.unregister(ip)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_report_renders_in_a_browser_to_a_non_blank_page(filled: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip(
            "headless Chromium is not installed (Debian: apt-get install chromium); "
            "the report was not rendered"
        )
    import matplotlib.image

    page = write_report(tmp_path / "report.html", filled)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1280,800",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pixels: Any = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (800, 1280)
    # Not blank: many distinct colours, and the plots' blue bars cover a visible area.
    assert pixels.std() > 0.05
    blue = (pixels[..., 2] > 0.55) & (pixels[..., 0] < 0.4) & (pixels[..., 1] < 0.55)
    assert blue.mean() > 0.01, "no plot bars visible in the rendered report"
    assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50


def test_the_frame_and_the_report_name_where_inputs_came_from(tmp_path: Path) -> None:
    store = tmp_path / "store"

    @checkpoint(store=store, name="load")
    def load(n):
        return np.arange(float(n))

    @checkpoint(store=store, name="fit")
    def fit(a):
        return float(a.sum())

    fit(load(10))
    frame = entries_frame(store).set_index("name")
    assert frame.loc["fit", "inputs_from"] == ["load"] and frame.loc["load", "inputs_from"] == []
    assert "<th class=''>inputs from</th>" in report_html(store)
    assert "<td class=''>load</td></tr>" in report_html(store)
