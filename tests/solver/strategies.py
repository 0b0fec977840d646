"""Hypothesis strategies for small, valid scenario-v1 documents.

Small enough for exhaustive search (a few devices, blocks and apps), varied enough to
reach every term of the cost model: exits, variants, cascades, batteries, sinks that
differ from sources, missing routes, per-segment overheads, every objective weight and a
previous plan.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

TIERS = ("device", "edge", "cloud")
_pos = st.floats(min_value=0.05, max_value=50, allow_nan=False, allow_infinity=False)
_small = st.floats(min_value=0.0, max_value=5, allow_nan=False, allow_infinity=False)
_prob = st.floats(min_value=0.0, max_value=1.0, allow_nan=False, allow_infinity=False)


@st.composite
def scenarios(draw: st.DrawFn, max_devices: int = 3, max_apps: int = 2) -> dict[str, Any]:
    n_dev = draw(st.integers(2, max_devices))
    devices = []
    for k in range(n_dev):
        tier = draw(st.sampled_from(TIERS))
        idle = draw(st.floats(0, 20))
        dev: dict[str, Any] = {
            "id": f"d{k}",
            "tier": tier,
            "gflops": draw(st.floats(1, 2000)),
            "memory_mb": draw(st.floats(1, 200)),
            "power_w": {"idle": idle, "busy": idle + draw(st.floats(0, 100))},
            "grid_gco2_per_kwh": draw(st.floats(0, 800)),
            "embodied_kgco2e": draw(st.floats(0, 2000)),
            "lifetime_h": draw(st.floats(1000, 50000)),
        }
        if draw(st.booleans()):
            dev["overhead_ms"] = draw(st.floats(0, 50))
        if draw(st.booleans()):
            dev["battery"] = {
                "capacity_wh": draw(st.floats(1, 100)),
                "level_pct": draw(st.floats(20, 100)),
                "min_pct": draw(st.floats(0, 20)),
            }
        devices.append(dev)
    ids = [d["id"] for d in devices]
    pairs = list(itertools.combinations(ids, 2))
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=len(pairs)))
    links = [
        {
            "a": a,
            "b": b,
            "mbps": draw(st.floats(1, 500)),
            "rtt_ms": draw(st.sampled_from([1.0, 2.5, 5.0, 10.0, 20.0])),
            "j_per_mb": draw(_small),
        }
        for a, b in chosen
    ]
    models = []
    for k in range(draw(st.integers(1, 3))):
        n = draw(st.integers(1, 3))
        layers = [
            {
                "name": f"b{j}",
                "gflops": draw(st.floats(0, 5)),
                "params_mb": draw(st.floats(0, 40)),
                "out_mb": draw(st.floats(0, 3)),
            }
            for j in range(n)
        ]
        model: dict[str, Any] = {
            "id": f"m{k}",
            "input_mb": draw(st.floats(0, 2)),
            "layers": layers,
        }
        if draw(st.booleans()):
            model["accuracy"] = draw(_prob)
        if n > 1 and draw(st.booleans()):
            model["exits"] = [
                {
                    "after": f"b{draw(st.integers(0, n - 2))}",
                    "prob": draw(_prob),
                    "gflops": draw(st.floats(0, 0.5)),
                    "params_mb": draw(st.floats(0, 2)),
                }
            ]
        models.append(model)
    mids = [m["id"] for m in models]
    apps = []
    for k in range(draw(st.integers(1, max_apps))):
        app: dict[str, Any] = {
            "id": f"a{k}",
            "source": draw(st.sampled_from(ids)),
            "rate_rps": draw(st.floats(0.1, 10)),
        }
        kind = draw(st.sampled_from(["model", "variants", "cascade"]))
        if kind == "model":
            app["model"] = draw(st.sampled_from(mids))
        elif kind == "variants":
            app["variants"] = draw(st.lists(st.sampled_from(mids), min_size=1, unique=True))
            if draw(st.booleans()):
                app["min_accuracy"] = draw(_prob)
        else:
            n_st = draw(st.integers(1, 2))
            app["cascade"] = [
                {"model": draw(st.sampled_from(mids)), "exit_prob": draw(_prob)}
                for _ in range(n_st)
            ]
        if draw(st.booleans()):
            app["sink"] = draw(st.sampled_from(ids))
        if draw(st.booleans()):
            app["slo_ms"] = draw(st.floats(10, 5000))
        if draw(st.booleans()):
            app["allowed_tiers"] = draw(
                st.lists(st.sampled_from(TIERS), min_size=1, max_size=3, unique=True)
            )
        app["max_stages"] = draw(st.integers(1, 3))
        apps.append(app)
    return {
        "version": 1,
        "horizon_h": draw(st.floats(0.5, 24)),
        "max_utilization": draw(st.floats(0.3, 1.0)),
        "objective": {
            "energy": draw(_small),
            "carbon": draw(_small),
            "latency": draw(st.floats(0, 0.01)),
            "migration": draw(st.floats(0, 0.1)),
        },
        "devices": devices,
        "links": links,
        "models": models,
        "apps": apps,
    }
