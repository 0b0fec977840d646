"""`report.html` as a person reads it, in Debian's headless Chromium (Playwright pointed at
/usr/bin/chromium, no browser download): `continuum simulate` run as a process on the
example fleet over a shift, its report opened from disk. The plots draw, the page fetches
nothing, and "What broke" and "Re-plans" say what the CSVs beside it say."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTINUUM = Path(sys.executable).with_name("continuum")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report")
    done = subprocess.run(
        [str(CONTINUUM), "simulate", str(ROOT / "examples" / "factory-line.yaml"),
         "--policy", "continuum,static", "--hours", "8", "--fail", "edge-b@2:1",
         "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def test_the_report_shows_what_broke_and_what_continuum_decided(
    report: Path, chromium: Any
) -> None:
    page = chromium.new_page(viewport={"width": 1300, "height": 900})
    fetched: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: fetched.append(r.url))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto((report / "report.html").as_uri())

    # The six plots draw, each with a line per policy; nothing but the page is fetched.
    plots = page.locator("figure svg")
    assert plots.count() == 6
    for k in range(6):
        box = plots.nth(k).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert plots.nth(k).locator("polyline").count() == 2
    assert fetched == [(report / "report.html").as_uri()] and errors == []

    # What broke: the longest broken constraint of each policy is broken.csv's first row.
    broken = list(csv.DictReader(io.StringIO((report / "broken.csv").read_text())))
    for policy in ("continuum", "static"):
        first = next(r for r in broken if r["policy"] == policy)
        heading = page.locator("h3", has_text=f"{policy}: the longest broken")
        assert heading.is_visible()
        row = heading.locator("xpath=following-sibling::table[1]//tbody/tr[1]/td")
        cells = row.all_inner_texts()
        assert cells[:2] == [first["constraint"], first["subject"]]
        assert cells[2] == f"{float(first['seconds']):,.0f}"
    assert page.get_by_text("battery", exact=True).first.is_visible()

    # Re-plans: the counts and the applied re-plans of decisions.csv, with their reasons.
    decisions = list(csv.DictReader(io.StringIO((report / "decisions.csv").read_text())))
    applied = [r for r in decisions if r["applied"] == "1"]
    heading = page.locator("h3", has_text="continuum: ").filter(has_text="re-plans")
    assert heading.inner_text() == (
        f"continuum: {len(decisions):,} re-plans, {len(applied):,} replaced the plan in "
        f"force, {len(decisions) - len(applied):,} kept it"
    )
    rows = heading.locator("xpath=following-sibling::table[1]//tbody/tr")
    assert rows.count() == len(applied) >= 2
    assert rows.nth(1).locator("td").nth(2).inner_text() == applied[1]["decision"]
    assert "the plan in force breaks a constraint" in applied[1]["decision"]
    page.close()
