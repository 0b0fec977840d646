"""`continuum simulate-sweep`: the same small sweep on the local process pool and on a
local Ray instance gives the same figures (solve_s, a wall time, aside)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from simulate.errors import InputError
from simulate.inputs import PROBE_S
from simulate.sweep import load_spec

ROOT = Path(__file__).resolve().parents[2]
CONTINUUM = Path(sys.executable).with_name("continuum")
TRACES = ROOT.parent / "shared" / "traces"


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        f"""
scenarios: [{ROOT / "examples" / "factory-line.yaml"}]
policies: [static, all-cloud]
hours: 0.01
seeds: [0, 1]
traces:
  calm: []
  hsdpa: ["edge-a~cloud-gpu={TRACES / "hsdpa-norway" / "norway_bus_1"}"]
"""
    )
    return spec


def _sweep(spec: Path, out: Path, *engine: str) -> dict[str, Any]:
    result = subprocess.run(
        [str(CONTINUUM), "simulate-sweep", str(spec), "--out", str(out), *engine],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    timings = json.loads((out / "timings.json").read_text())["policies"]
    assert len(timings) == sum(len(p) for p in summary["cases"].values())
    assert all(t["run_cpu_s"] > 0 for t in timings.values())
    return summary


def test_local_pool_and_ray_give_the_same_figures(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    local = _sweep(spec, tmp_path / "local", "--workers", "2")
    assert len(local["cases"]) == 4  # 1 scenario x 2 seeds x 2 trace sets
    assert all(set(p) == {"static", "all-cloud"} for p in local["cases"].values())
    calm = local["cases"]["factory-line/seed0/calm"]["all-cloud"]
    traced = local["cases"]["factory-line/seed0/hsdpa"]["all-cloud"]
    assert calm != traced  # the trace changes what all-cloud's plan breaks
    ray = _sweep(spec, tmp_path / "ray", "--engine", "ray")
    assert ray == local
    # What broke, too, whichever engine ran it (the calm and traced all-cloud broke some).
    broken = (tmp_path / "local" / "broken.csv").read_bytes()
    assert broken == (tmp_path / "ray" / "broken.csv").read_bytes()
    assert b"factory-line/seed0/hsdpa all-cloud,bandwidth,edge-a~cloud-gpu," in broken
    page = (tmp_path / "ray" / "report.html").read_text()
    assert "<svg" in page and "<script" not in page


def test_bad_spec_exits_2_with_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("scenarios: [nope.yaml]\npolicies: [static]\nhours: 1\n")
    result = subprocess.run(
        [str(CONTINUUM), "simulate-sweep", str(spec), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.yaml'}: no such file"]
    assert not (tmp_path / "o").exists()


def test_the_spec_sets_the_probe_interval_and_refuses_a_bad_one(tmp_path: Path) -> None:
    scenario = ROOT / "examples" / "factory-line.yaml"
    spec = tmp_path / "probe.yaml"
    spec.write_text(f"scenarios: [{scenario}]\npolicies: [continuum]\nhours: 0.01\nprobe: 5\n")
    assert {c.inputs.probe_s for c in load_spec(spec).cases} == {5.0}
    spec.write_text(f"scenarios: [{scenario}]\npolicies: [continuum]\nhours: 0.01\n")
    assert {c.inputs.probe_s for c in load_spec(spec).cases} == {PROBE_S}
    for bad, message in (("probe: fast", "must be numbers"), ("probe: 0", "--probe")):
        spec.write_text(f"scenarios: [{scenario}]\npolicies: [static]\nhours: 1\n{bad}\n")
        with pytest.raises(InputError, match=message):
            load_spec(spec)
