"""Generated fleets with real traces on their cameras' uplinks, shared by the simulator's
step-by-step comparisons."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TRACES = ROOT.parent / "shared" / "traces"
HSDPA = sorted((TRACES / "hsdpa-norway").iterdir())
FIVE_G = sorted((TRACES / "5gophers").glob("All-Carriers_03-*.csv"))


def camera_traces(scn: dict[str, Any]) -> list[str]:
    """`A~B=FILE` for every other camera's first link, HSDPA and 5Gophers in turn."""
    traces = []
    cams = [d["id"] for d in scn["devices"] if d["tier"] == "device"]
    for k, cam in enumerate(cams[::2]):
        link = next(lk for lk in scn["links"] if cam in (lk["a"], lk["b"]))
        src = (HSDPA if k % 2 == 0 else FIVE_G)[k % 3]
        traces.append(f"{link['a']}~{link['b']}={src}")
    return traces


def first_edge(scn: dict[str, Any]) -> str:
    return str(next(d["id"] for d in scn["devices"] if d["tier"] == "edge"))
