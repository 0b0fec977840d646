"""`continuum simulate` as a user runs it (the installed console script): its outputs,
its reproducibility, and its one-line refusals of bad input before any work."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONTINUUM = Path(sys.executable).with_name("continuum")
SCENARIO = ROOT / "examples" / "factory-line.yaml"
TRACES = ROOT.parent / "shared" / "traces"
HSDPA = TRACES / "hsdpa-norway" / "norway_bus_1"
FIVE_G = TRACES / "5gophers" / "All-Carriers_03-User-Mobility_walking-trace.csv"
KEYS = {
    "energy_j", "carbon_g", "slo_miss_s", "violation_s", "replacements", "migrated_mb",
    "battery_dead_h", "solve_s",
}  # fmt: skip


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONTINUUM), "simulate", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _simulate(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return _run(
        str(SCENARIO),
        "--policy", "continuum,static,all-cloud",
        "--hours", "0.05",
        "--trace", f"edge-a~cloud-gpu={HSDPA}",
        "--trace", f"cam-6~edge-b={FIVE_G}",
        "--battery", "cam-5=solar:0-12:3W",
        "--fail", "edge-b@0.02:0.01",
        "--seed", "3",
        "--out", str(out),
        *extra,
    )  # fmt: skip


def test_outputs_and_byte_for_byte_reproducibility(tmp_path: Path) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    a = _simulate(first)
    assert a.returncode == 0, a.stderr
    b = _simulate(second)
    assert b.returncode == 0, b.stderr
    summary = json.loads((first / "summary.json").read_text())
    assert set(summary) == {"policies"}
    assert set(summary["policies"]) == {"continuum", "static", "all-cloud"}
    for figures in summary["policies"].values():
        assert set(figures) == KEYS

    # The same seed gives the same summary.json and time series, byte for byte; the
    # measured times (solve_s: null in the summary) are in timings.json.
    assert (first / "summary.json").read_bytes() == (second / "summary.json").read_bytes()
    assert all(f["solve_s"] is None for f in summary["policies"].values())
    timings = json.loads((first / "timings.json").read_text())["policies"]
    assert set(timings) == set(summary["policies"])
    for t in timings.values():
        assert set(t) == {"solve_s", "run_s", "run_cpu_s"}
        assert t["run_s"] > 0 and t["run_cpu_s"] > 0
    assert (first / "timeseries.csv").read_bytes() == (second / "timeseries.csv").read_bytes()
    rows = list(csv.DictReader(io.StringIO((first / "timeseries.csv").read_text())))
    assert {r["policy"] for r in rows} == {"continuum", "static", "all-cloud"}
    assert len([r for r in rows if r["policy"] == "static"]) == 180  # 0.05 h at 1 s
    last = [r for r in rows if r["policy"] == "static"][-1]
    assert float(last["energy_j"]) == pytest.approx(summary["policies"]["static"]["energy_j"])
    # The edge-b failure (72-108 s) drops the apps of cam-4..6 from the scenario: static's
    # plan serves the other three while it lasts, and its inference power falls.
    powers = [float(r["power_w"]) for r in rows if r["policy"] == "static"]
    assert min(powers[72:108]) < min(powers[:72])
    # What broke: each policy's constraints, adding up to its violation_s, reproducible.
    assert (first / "broken.csv").read_bytes() == (second / "broken.csv").read_bytes()
    broken = list(csv.DictReader(io.StringIO((first / "broken.csv").read_text())))
    for name, figures in summary["policies"].items():
        seconds = sum(float(r["seconds"]) for r in broken if r["policy"] == name)
        assert seconds == pytest.approx(figures["violation_s"])
    assert {"battery", "bandwidth", "slo"} <= {r["constraint"] for r in broken}
    assert "what broke longest" in a.stdout
    # What continuum decided, re-plan by re-plan (the others keep no log); reproducible.
    assert (first / "decisions.csv").read_bytes() == (second / "decisions.csv").read_bytes()
    replans = list(csv.DictReader(io.StringIO((first / "decisions.csv").read_text())))
    assert {r["policy"] for r in replans} == {"continuum"}
    assert replans[0]["decision"] == "first plan" and replans[0]["t_s"] == "0.0"
    applied = [r for r in replans if r["applied"] == "1"]
    # Every plan put in force was decided by an applied re-plan (one may still be rolling
    # out when the run ends).
    assert len(applied) >= summary["policies"]["continuum"]["replacements"] + 1
    assert any(r["applied"] == "0" for r in replans) and all(r["triggers"] for r in replans[1:])
    # A self-contained report: inline SVG plots, no script, nothing fetched.
    page = (first / "report.html").read_text()
    assert "<h2>What broke</h2>" in page and "<h2>Re-plans</h2>" in page
    assert page.count("<svg") == 6
    assert "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in page
    assert "summary" in a.stdout.lower() or "continuum" in a.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--trace", "cam-1~nope=x.txt"], "--trace cam-1~nope=x.txt: device 'nope' is not in"),
        (["--trace", "cam-1~cam-2=x.txt"], "no link between cam-1 and cam-2"),
        (["--trace", "cam-1-edge-a=x.txt"], "expected A~B=FILE"),
        (["--trace", "cam-1~edge-a=/nonexistent/trace.txt"], "cannot read it"),
        (["--battery", "cam-9=solar:6-18:5W"], "device 'cam-9' is not in the scenario"),
        (["--battery", "cam-1=solar:18-6:5W"], "START < END"),
        (["--battery", "cam-1=wind:5W"], "unknown profile"),
        (["--battery", "edge-a=mains:3"], "edge-a has no battery"),
        (["--fail", "edge-a"], "expected DEVICE@HOUR"),
        (["--fail", "edge-z@1"], "device 'edge-z' is not in the scenario"),
        (["--policy", "continuum,teleport"], "unknown policy 'teleport'"),
        (["--step", "0"], "--step"),
        (["--hours", "-1"], "--hours"),
        (["--probe", "0"], "--probe: must be more than 0 s"),
        (["--probe", "nan"], "--probe: must be more than 0 s"),
    ],
)
def test_bad_input_exits_2_with_one_line_before_any_work(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "out"
    base = {"--policy": "continuum", "--hours": "1", "--out": str(out)}
    for k in range(0, len(args), 2):
        base[args[k]] = args[k + 1]
    flat = [x for kv in base.items() for x in kv]
    result = _run(str(SCENARIO), *flat)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and needle in lines[0], lines[0]
    assert not out.exists()  # nothing written, nothing started
    assert result.stdout == ""


def test_a_bad_trace_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "garbled.txt"
    bad.write_text("0 1\n1 lots\n")
    result = _run(
        str(SCENARIO), "--policy", "static", "--hours", "1",
        "--trace", f"edge-a~cloud-gpu={bad}", "--out", str(tmp_path / "o"),
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == "error: trace garbled.txt: line 2: not a number: '1 lots'"
