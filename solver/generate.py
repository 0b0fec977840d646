"""Deterministic generated scenarios: realistic fleets for tests and benchmarks.

`generate(seed, ...)` returns a raw scenario-v1 dict (validate it with
`solver.scenario.parse_scenario`). The same arguments always give the same dict.

Shapes:
- devices: about 2/3 `dev-N` (tier device: mains cameras, battery cameras and phones,
  5-30 GFLOP/s, 0.5-2 GB), about 1/4 `edge-N` (100-400 GFLOP/s, 4-16 GB), the rest
  `cloud-N` (2000-10000 GFLOP/s, 64-256 GB). Power, grid carbon (clouds greener) and
  embodied carbon per tier; batteries on about half of the tier-device devices, each
  large enough to last the 8-hour horizon idle, with 20-60 Wh to spare for the plan
  (10-60 Wh, at lower charge, on contended fleets).
- links: each device to its home edge and, for some, a neighbouring second edge (Wi-Fi/5G,
  3-25 ms); each edge to its regional cloud and some to a neighbouring one (metro,
  15-60 ms); clouds in a ring (backbone); about 15% of devices have a cellular link
  straight to their region's cloud (40-100 ms, costly per MB) and about 5% a short link to
  a device of the same edge. Links stay local, as on a map.
- models: CNN-like chains of `blocks` blocks whose activations shrink from about 3 MB to
  4 KB (logits) while parameters grow block by block. Per family: a full model `famN`,
  with `exits` two early-exit heads; with `variants` an int8 twin `famN-int8` (params /4,
  about half the time, 1 point less accurate) and a small model `famN-small`.
- apps: each has one camera/phone source (sink = source, or its home edge for some),
  0.2-5 rps, and an SLO for about 60% of them set between 1.1x and 3x the worst-case
  latency of the whole model on the home edge, so the SLO binds on some; about 10% are
  restricted to device and edge. With `variants` about 30% choose among the three models
  (some with min_accuracy); with `cascades` about 20% run small then big.
- `contended=True`: many more cameras per edge box, thin uplinks, low batteries and higher
  rates (each app's input up to the whole of its uplink), so that compute, bandwidth and
  battery capacity bind: usually still feasible, but a per-app split that ignores the
  other apps (Neurosurgeon) often breaks a shared limit.

The generator only draws numbers: it never checks feasibility, but the ranges are chosen
so that almost every generated scenario has a feasible plan.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from solver.routes import transfer_ms

_HORIZON_H = 8


def _r(x: float, digits: int = 3) -> float:
    return round(float(x), digits)


def _models(
    rng: np.random.Generator, blocks: int, families: int, exits: bool, variants: bool
) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = []
    for f in range(families):
        total_gflops = rng.uniform(2.0, 8.0)
        total_params = rng.uniform(20.0, 100.0)
        input_mb = _r(rng.choice([0.6, 0.9, 1.2]))
        accuracy = rng.uniform(0.74, 0.82)
        # Activations shrink geometrically from ~3 MB to the 4 KB logits; parameters grow.
        first_out = rng.uniform(1.5, 4.0)
        outs = first_out * (0.004 / first_out) ** (np.arange(blocks) / max(blocks - 1, 1))
        gfl = rng.uniform(0.6, 1.4, blocks)
        gfl = gfl / gfl.sum() * total_gflops
        par = np.linspace(0.2, 1.8, blocks) * rng.uniform(0.7, 1.3, blocks)
        par = par / par.sum() * total_params
        layers: list[dict[str, Any]] = [
            {"name": f"b{i}", "gflops": _r(gfl[i], 4), "params_mb": _r(par[i]), "out_mb": _r(o, 4)}
            for i, o in enumerate(outs)
        ]
        layers[-1]["out_mb"] = 0.004
        ex: list[dict[str, Any]] = []
        if exits and blocks >= 3:
            for frac in (1 / 3, 2 / 3):
                after = min(max(int(blocks * frac) - 1, 0), blocks - 2)
                if any(e["after"] == f"b{after}" for e in ex):
                    continue
                ex.append(
                    {
                        "after": f"b{after}",
                        "prob": _r(rng.uniform(0.15, 0.45)),
                        "gflops": _r(rng.uniform(0.005, 0.03), 4),
                        "params_mb": _r(rng.uniform(0.1, 0.6)),
                    }
                )
        base = {"input_mb": input_mb, "layers": layers, "exits": ex}
        models.append({"id": f"fam{f}", "accuracy": _r(accuracy), **base})
        if variants:
            int8 = [
                {
                    **lay,
                    "gflops": _r(lay["gflops"] * 0.55, 4),
                    "params_mb": _r(lay["params_mb"] / 4),
                }
                for lay in layers
            ]
            models.append(
                {"id": f"fam{f}-int8", "accuracy": _r(accuracy - 0.01), **base, "layers": int8}
            )
            small = [
                {
                    **lay,
                    "gflops": _r(lay["gflops"] * 0.12, 4),
                    "params_mb": _r(lay["params_mb"] * 0.12),
                }
                for lay in layers
            ]
            models.append(
                {
                    "id": f"fam{f}-small",
                    "accuracy": _r(accuracy - rng.uniform(0.06, 0.1)),
                    **base,
                    "layers": small,
                    "exits": [],
                }
            )
    return models


def generate(
    seed: int,
    devices: int = 30,
    apps: int = 20,
    blocks: int = 8,
    *,
    exits: bool = True,
    variants: bool = True,
    cascades: bool = True,
    contended: bool = False,
    overheads: bool = False,
) -> dict[str, Any]:
    """A raw scenario-v1 dict: `devices` devices in three tiers, `apps` apps on
    `blocks`-block models (see the module docstring for the shapes).

    `overheads`: every device states an `overhead_ms` (cameras 2-20 ms, edges 0.5-5 ms,
    clouds 0.2-2 ms), drawn apart so that the rest of the fleet is the same either way."""
    if devices < 3:
        raise ValueError("devices: at least 3 (one per tier)")
    rng = np.random.default_rng(seed)
    n_cloud = max(1, round(devices / 12))
    n_edge = max(1, round(devices / (20 if contended else 4)))
    n_dev = devices - n_cloud - n_edge
    if n_dev < 1:
        n_edge = max(1, devices - n_cloud - 1)
        n_dev = devices - n_cloud - n_edge

    devs: list[dict[str, Any]] = []
    battery = rng.random(n_dev) < (0.8 if contended else 0.5)
    for i in range(n_dev):
        idle = rng.uniform(0.5, 2.0)
        d: dict[str, Any] = {
            "id": f"dev-{i}",
            "tier": "device",
            "gflops": _r(rng.uniform(5, 30), 2),
            "memory_mb": int(rng.choice([512, 1024, 2048])),
            "power_w": {"idle": _r(idle, 2), "busy": _r(idle + rng.uniform(2.0, 6.0), 2)},
            "grid_gco2_per_kwh": int(rng.uniform(50, 700)),
            "embodied_kgco2e": int(rng.uniform(20, 120)),
            "lifetime_h": int(rng.choice([26280, 35040, 43800])),
        }
        if battery[i]:
            level = _r(rng.uniform(35, 60) if contended else rng.uniform(50, 100), 1)
            spare_wh = rng.uniform(10, 60) if contended else rng.uniform(20, 60)
            low = _r(rng.uniform(10, 20), 1)
            # The pack pays the idle draw over the horizon first (scenario-v1), then what
            # the plan may draw on top: as much as `spare_wh` of charge would pay.
            idle_wh = d["power_w"]["idle"] * _HORIZON_H / ((level - low) / 100.0)
            d["battery"] = {
                "capacity_wh": _r(spare_wh + idle_wh + 0.05, 1),
                "level_pct": level,
                "min_pct": low,
            }
        devs.append(d)
    for i in range(n_edge):
        idle = rng.uniform(15, 40)
        devs.append(
            {
                "id": f"edge-{i}",
                "tier": "edge",
                "gflops": _r(rng.uniform(100, 400), 1),
                "memory_mb": int(rng.choice([4096, 8192, 16384])),
                "power_w": {"idle": _r(idle, 1), "busy": _r(idle + rng.uniform(30, 120), 1)},
                "grid_gco2_per_kwh": int(rng.uniform(50, 700)),
                "embodied_kgco2e": int(rng.uniform(150, 400)),
                "lifetime_h": 35040,
            }
        )
    for i in range(n_cloud):
        idle = rng.uniform(100, 300)
        devs.append(
            {
                "id": f"cloud-{i}",
                "tier": "cloud",
                "gflops": _r(rng.uniform(2000, 10000), 0),
                "memory_mb": int(rng.choice([65536, 131072, 262144])),
                "power_w": {"idle": _r(idle, 1), "busy": _r(idle + rng.uniform(200, 500), 1)},
                "grid_gco2_per_kwh": int(rng.uniform(20, 400)),
                "embodied_kgco2e": int(rng.uniform(1000, 3000)),
                "lifetime_h": 43800,
            }
        )

    links: list[dict[str, Any]] = []
    pairs: set[tuple[str, str]] = set()

    def link(a: str, b: str, mbps: float, rtt: float, j: float) -> None:
        key = (a, b) if a < b else (b, a)
        if a == b or key in pairs:
            return
        pairs.add(key)
        links.append({"a": a, "b": b, "mbps": _r(mbps, 1), "rtt_ms": _r(rtt, 2), "j_per_mb": _r(j)})

    # Locality: neighbouring indices are neighbours on the map, so second links stay local
    # and a route search from any device settles a small neighbourhood only.
    home = rng.integers(0, n_edge, n_dev)
    edge_cloud = np.arange(n_edge) * n_cloud // n_edge
    by_home: dict[int, list[int]] = {}
    for i in range(n_dev):
        by_home.setdefault(int(home[i]), []).append(i)
    up = (2.0, 12.0) if contended else (10.0, 100.0)
    for i in range(n_dev):
        e = int(home[i])
        link(f"dev-{i}", f"edge-{e}", rng.uniform(*up), rng.uniform(3, 15), rng.uniform(0.05, 0.4))
        if n_edge > 1 and rng.random() < 0.3:
            e2 = (e + int(rng.choice([-1, 1]))) % n_edge
            link(
                f"dev-{i}",
                f"edge-{e2}",
                rng.uniform(*up),
                rng.uniform(5, 25),
                rng.uniform(0.05, 0.4),
            )
        if rng.random() < 0.15:
            c = int(edge_cloud[e])
            link(
                f"dev-{i}",
                f"cloud-{c}",
                rng.uniform(5, 30),
                rng.uniform(40, 100),
                rng.uniform(1.5, 3.0),
            )
        if n_dev > 1 and rng.random() < 0.05:
            peers = by_home[e]
            j = peers[int(rng.integers(0, len(peers)))]
            link(
                f"dev-{i}",
                f"dev-{j}",
                rng.uniform(20, 100),
                rng.uniform(1, 5),
                rng.uniform(0.1, 0.4),
            )
    for e in range(n_edge):
        c = int(edge_cloud[e])
        link(
            f"edge-{e}",
            f"cloud-{c}",
            rng.uniform(200, 1000),
            rng.uniform(15, 45),
            rng.uniform(0.05, 0.3),
        )
        if n_cloud > 1 and rng.random() < 0.3:
            c2 = (c + int(rng.choice([-1, 1]))) % n_cloud
            link(
                f"edge-{e}",
                f"cloud-{c2}",
                rng.uniform(200, 1000),
                rng.uniform(25, 60),
                rng.uniform(0.05, 0.3),
            )
    if n_cloud > 1:
        for c in range(n_cloud if n_cloud > 2 else 1):
            link(f"cloud-{c}", f"cloud-{(c + 1) % n_cloud}", 10000, rng.uniform(10, 40), 0.02)

    families = max(2, min(12, apps // 10))
    models = _models(rng, blocks, families, exits, variants)
    by_id = {m["id"]: m for m in models}
    dev_by_id = {d["id"]: d for d in devs}
    link_of = {(lk["a"], lk["b"]): lk for lk in links}
    uplink: dict[str, float] = {}
    for lk in links:
        if lk["b"].startswith("edge-"):
            uplink[lk["a"]] = min(uplink.get(lk["a"], lk["mbps"]), lk["mbps"])
    slowest: dict[str, float] = {}
    for lk in links:
        if lk["a"].startswith("dev-") and lk["b"].startswith("dev-"):
            for x, y in ((lk["a"], lk["b"]), (lk["b"], lk["a"])):
                slowest[x] = min(slowest.get(x, lk["mbps"]), lk["mbps"], uplink[y])

    app_list: list[dict[str, Any]] = []
    sources = rng.permutation(n_dev)
    for k in range(apps):
        src = int(sources[k % n_dev])
        fam = int(rng.integers(0, families))
        e = int(home[src])
        app: dict[str, Any] = {"id": f"app-{k}", "source": f"dev-{src}"}
        kind = rng.random()
        big = by_id[f"fam{fam}"]
        if cascades and variants and kind < 0.2:
            app["cascade"] = [
                {"model": f"fam{fam}-small", "exit_prob": _r(rng.uniform(0.5, 0.8))},
                {"model": f"fam{fam}"},
            ]
        elif variants and kind < 0.5:
            app["variants"] = [f"fam{fam}", f"fam{fam}-int8", f"fam{fam}-small"]
            if rng.random() < 0.5:
                app["min_accuracy"] = _r(big["accuracy"] - 0.03)
        else:
            app["model"] = f"fam{fam}"
        if rng.random() < 0.2:
            app["sink"] = f"edge-{e}"
        has_battery = "battery" in devs[src]
        lo, hi = (0.5, 4.0) if contended else ((0.2, 1.0) if has_battery else (0.5, 5.0))
        lk = link_of[(f"dev-{src}", f"edge-{e}")]
        # The route may detour through a device-to-device peer: assume its slowest link.
        mbps = min(slowest.get(f"dev-{src}", lk["mbps"]), lk["mbps"])
        rate = rng.uniform(lo, hi)
        # The input must fit the uplink with room to spare (a plan that runs the first
        # blocks on the camera sends less); contended fleets leave less room.
        rate = min(rate, (1.0 if contended else 0.4) * mbps / (8.0 * 1.2))
        app["rate_rps"] = _r(max(rate, 0.05), 2)
        if rng.random() < 0.6:
            # Worst case of every model the app runs in turn (a cascade: both stages), all
            # on the home edge, then some slack: meetable, and binding for some.
            edge = dev_by_id[f"edge-{e}"]
            ms = 0.0
            names = [st["model"] for st in app["cascade"]] if "cascade" in app else [big["id"]]
            for name in names:
                m = by_id[name]
                total = sum(layer["gflops"] for layer in m["layers"])
                if "cascade" not in app:
                    total += sum(x["gflops"] for x in m["exits"])
                ms += transfer_ms(lk["rtt_ms"], mbps, m["input_mb"])
                ms += 1000 * total / edge["gflops"]
            ms += lk["rtt_ms"] / 2
            app["slo_ms"] = _r(ms * rng.uniform(1.1, 3.0), 1)
        if rng.random() < 0.1:
            app["allowed_tiers"] = ["device", "edge"]
        if rng.random() < 0.2:
            app["max_stages"] = 2
        app_list.append(app)

    if overheads:
        extra = np.random.default_rng([seed, 1])
        ranges = {"device": (2.0, 20.0), "edge": (0.5, 5.0), "cloud": (0.2, 2.0)}
        for d in devs:
            d["overhead_ms"] = _r(extra.uniform(*ranges[d["tier"]]), 2)
    return {
        "version": 1,
        "horizon_h": _HORIZON_H,
        "max_utilization": 0.8,
        "objective": {"energy": 1.0, "carbon": 0.02, "latency": 0.001, "migration": 0.0},
        "devices": devs,
        "links": links,
        "models": models,
        "apps": app_list,
    }


__all__ = ["generate"]
