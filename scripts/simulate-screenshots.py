#!/usr/bin/env python3
"""Screenshots of `report.html` for docs/simulate.md: `.venv/bin/python
scripts/simulate-screenshots.py` (needs Debian's chromium: scripts/ensure-chromium.sh).

Runs `continuum simulate examples/factory-line.yaml --policy continuum,static --hours 8
--fail edge-b@2:1` (a shift with an edge box lost for an hour) into a temporary
directory, opens its report in headless Chromium and shoots the plots
over time, "What broke" and "Re-plans". Writes docs/img/simulate-*.png.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.harness.console import browser  # noqa: E402

OUT = ROOT / "docs" / "img"
CONTINUUM = Path(sys.executable).with_name("continuum")
# Section heading -> image name; each shot runs from that heading to the next <h2>.
SHOTS = {
    "Over time": "simulate-plots",
    "What broke": "simulate-broken",
    "Re-plans": "simulate-replans",
}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="continuum-report-") as tmp:
        subprocess.run(
            [str(CONTINUUM), "simulate", str(ROOT / "examples" / "factory-line.yaml"),
             "--policy", "continuum,static", "--hours", "8", "--fail", "edge-b@2:1",
             "--out", tmp],
            check=True, capture_output=True,
        )  # fmt: skip
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1300, "height": 900})
            page.goto((Path(tmp) / "report.html").as_uri())
            heads = page.locator("h2")
            tops = [heads.nth(k).bounding_box() for k in range(heads.count())]
            names = heads.all_inner_texts()
            for k, name in enumerate(names):
                if name not in SHOTS:
                    continue
                top = tops[k]
                bottom = tops[k + 1] if k + 1 < len(tops) else None
                assert top is not None and bottom is not None
                clip = {"x": 0, "y": top["y"] - 8, "width": 1300, "height": bottom["y"] - top["y"]}
                path = OUT / f"{SHOTS[name]}.png"
                page.screenshot(path=str(path), clip=clip, full_page=True)
                print(f"wrote {path}")


if __name__ == "__main__":
    main()
