"""`continuum server` refuses a bad grid series at start, in one line, before serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONTINUUM = Path(sys.executable).with_name("continuum")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (None, "No such file"),
        ("time,zone\n", "missing column(s) gco2_per_kwh"),
        ("time,zone,gco2_per_kwh\n2026-12-03T00:00:00Z,DEU,9000\n", "grid.csv:2"),
    ],
)
def test_a_bad_grid_series_stops_the_start_in_one_line(
    tmp_path: Path, body: str | None, words: str
) -> None:
    series = tmp_path / "grid.csv"
    if body is not None:
        series.write_text(body)
    base = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
    env = {
        **base,
        "CONTINUUM_DATA_DIR": str(tmp_path / "data"),
        "CONTINUUM_GRID_SERIES": str(series),
    }
    result = subprocess.run(
        [str(CONTINUUM), "server", "--port", "1"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CONTINUUM_GRID_SERIES: ")
    assert words in lines[0]
