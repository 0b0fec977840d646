"""The console's pages as data: the fleet by tier, the topology, the deployments with their
placement and costs, the plan history and diffs, the charts and the models. Durable
halves come from `orchestrator.console_views`, live ones from the live state; each page
is one SQL transaction and one or two live-state reads, whatever the fleet's size."""

from __future__ import annotations

from typing import Any

from orchestrator import console_views, samples
from orchestrator.console_listing import (
    TIERS,
    TOPOLOGY_NODES,
    Listing,
    counts,
    page_of,
    summarise,
)
from orchestrator.services.context import Context


class ConsoleService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._plan = console_views.InForce()  # the plan in force's figures, per version

    async def _in_force(self) -> console_views.InForce:
        """The plan in force's figures, read and parsed once per version (a version's
        documents never change)."""
        version = await self._ctx.run_sync(console_views.in_force_version)
        if version != self._plan.version:
            self._plan = await self._ctx.run_sync(console_views.in_force)
        return self._plan

    async def fleet(self, listing: Listing | None = None) -> dict[str, Any]:
        """A page of the devices by tier with status, utilization, free memory, power and
        battery (a battery is `short` when its projected hours fall below the placement
        horizon), and the counts of every tier and status over the whole fleet."""
        listing = listing or Listing()
        devices, horizon = await self._ctx.run_sync(console_views.devices)
        plan = await self._in_force()
        beats = await self._ctx.live.heartbeats()
        order = {t: k for k, t in enumerate(TIERS)}
        devices.sort(key=lambda d: (order.get(d.tier, len(order)), d.tier, d.id))
        marked, chosen = [], []
        for d in devices:
            hours = (plan.devices.get(d.id) or {}).get("battery_h")
            short = d.battery_capacity_wh is not None and hours is not None and hours < horizon
            marks = ("alive" if d.id in beats else "down", d.state) + (("short",) if short else ())
            marked.append((d.tier, marks))
            if listing.matches(d.id, d.tier, marks):
                chosen.append(d)
        shown, where = page_of(chosen, listing)
        tiers: dict[str, list[dict[str, Any]]] = {t: [] for t in TIERS}
        for d in shown:
            tiers.setdefault(d.tier, []).append(_device_row(d, beats, plan, horizon))
        return {
            "tiers": tiers,
            "horizon_h": horizon,
            "plan_version": plan.version,
            "counts": counts(marked, TIERS),
            "where": where,
        }

    async def topology(self, listing: Listing | None = None) -> dict[str, Any]:
        """Devices in tier rows and a page of the links: declared and measured Mbit/s and
        RTT, and utilization under the plan in force. A filter draws the devices it names
        and their links' other ends; past TOPOLOGY_NODES devices the drawing is per tier
        and zone, unless `listing.all`."""
        listing = listing or Listing()
        devices, _ = await self._ctx.run_sync(console_views.devices)
        declared = await self._ctx.run_sync(console_views.declared_links)
        plan = await self._in_force()
        measured = await self._ctx.live.links()
        beats = await self._ctx.live.heartbeats()
        nodes: dict[str, dict[str, Any]] = {
            d.id: {"id": d.id, "tier": d.tier, "zone": d.zone, "alive": d.id in beats,
                   "state": d.state} for d in devices
        }  # fmt: skip
        named = {i for i, n in nodes.items() if listing.matches(i, n["tier"], ())}
        links: list[dict[str, Any]] = []
        for a, b in sorted(set(declared) | set(measured) | set(plan.links)):
            if a not in named and b not in named:
                continue
            dec, m = declared.get((a, b)) or {}, measured.get((a, b)) or {}
            links.append(
                {
                    "a": a,
                    "b": b,
                    "declared_mbps": dec.get("mbps"),
                    "declared_rtt_ms": dec.get("rtt_ms"),
                    "measured_mbps": m.get("mbps"),
                    "measured_rtt_ms": m.get("rtt_ms"),
                    "utilization": plan.links.get((a, b)),
                }
            )
        drawn = named | {str(end) for link in links for end in (link["a"], link["b"])}
        shown = [nodes[i] for i in sorted(drawn) if i in nodes]
        summary = None
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TIERS}
        if len(shown) > TOPOLOGY_NODES and not listing.all:
            summary = summarise(shown, links)
        else:
            for node in shown:
                rows.setdefault(node["tier"], []).append(node)
        page, where = page_of(links, listing)
        return {"rows": rows, "summary": summary, "drawn": len(shown), "links": page,
                "where": where, "plan_version": plan.version}  # fmt: skip

    async def deployments(self, listing: Listing | None = None) -> dict[str, Any]:
        """A page of the deployments, each with its placement (segments or stages),
        predicted against measured latency and the SLO headroom, energy and carbon per
        inference with the embodied share, and its status with the reason and constraint
        code when not placed; and how many deployments have each status."""
        listing = listing or Listing()
        plan = await self._in_force()
        views, codes = await self._ctx.run_sync(console_views.deployment_rows, plan)
        chosen = [v for v in views if listing.matches(v["name"], None, (v["status"],))]
        shown, where = page_of(chosen, listing)
        measured = samples.measured_latency_ms(await self._ctx.live.heartbeats())
        rows = [_deployment_row(v, plan, codes, measured) for v in shown]
        return {"rows": rows, "counts": counts(((v["status"], ()) for v in views), ()),
                "where": where}  # fmt: skip

    async def plans(self, limit: int = 50) -> list[dict[str, Any]]:
        return await self._ctx.run_sync(console_views.history, limit)

    async def diff(self, a: int, b: int) -> dict[str, Any]:
        return await self._ctx.run_sync(console_views.diff, a, b)

    async def scenario(self, version: int) -> dict[str, Any]:
        return await self._ctx.run_sync(console_views.scenario_of, version)

    async def charts(self, hours: float) -> dict[str, Any]:
        """The series of the last `hours`: [(epoch s, value)] each; batteries by device (the
        ones at most risk, samples.BATTERY_SERIES) beside the fleet's mean level and least
        projected hours."""
        coarse_s = self._ctx.settings.console_coarse_s
        points = await self._ctx.run_sync(samples.window, hours, coarse_s)
        fleet: dict[str, list[tuple[float, float]]] = {
            "energy_w": [],
            "carbon_gph": [],
            "slo_misses": [],
        }
        pct: dict[str, list[tuple[float, float]]] = {}
        hours_left: dict[str, list[tuple[float, float]]] = {}
        for at, values in points:
            t = at.timestamp()
            for key, series in fleet.items():
                series.append((t, float(values.get(key) or 0.0)))
            for key, by_name, name in (
                ("battery_mean_pct", pct, "fleet mean"),
                ("battery_min_hours", hours_left, "fleet minimum"),
            ):
                if values.get(key) is not None:
                    by_name.setdefault(name, []).append((t, float(values[key])))
            for device_id, b in (values.get("batteries") or {}).items():
                if b.get("pct") is not None:
                    pct.setdefault(device_id, []).append((t, float(b["pct"])))
                if b.get("hours") is not None:
                    hours_left.setdefault(device_id, []).append((t, float(b["hours"])))
        return {
            "hours": hours,
            "points": len(points),
            "fleet": fleet,
            "battery_pct": pct,
            "battery_hours": hours_left,
            "interval_s": self._ctx.settings.console_sample_interval_s,
        }

    async def models(self) -> list[dict[str, Any]]:
        return await self._ctx.run_sync(console_views.models)


def _device_row(
    d: Any, beats: dict[str, dict[str, Any]], plan: console_views.InForce, horizon: float
) -> dict[str, Any]:
    beat = beats.get(d.id) or {}
    use = plan.devices.get(d.id) or {}
    battery = None
    if d.battery_capacity_wh is not None:
        hours = use.get("battery_h")
        battery = {
            "level_pct": beat.get("battery_pct"),
            "min_pct": d.battery_min_pct,
            "charging": beat.get("charging"),
            "hours": hours,
            "short": hours is not None and hours < horizon,
        }
    return {
        "id": d.id,
        "tier": d.tier,
        "state": d.state,
        "alive": d.id in beats,
        "emulated": d.emulated,
        "utilization": beat.get("utilization"),
        "planned_utilization": use.get("utilization"),
        "free_memory_mb": beat.get("free_memory_mb"),
        "memory_mb": d.memory_mb,
        "power_w": use.get("power_w"),
        "power_idle_w": d.power_idle_w,
        "power_busy_w": d.power_busy_w,
        "power_provenance": d.power_provenance or "declared",
        "battery": battery,
    }


def _deployment_row(
    v: dict[str, Any],
    plan: console_views.InForce,
    codes: dict[str, str],
    measured: dict[str, float],
) -> dict[str, Any]:
    spec, placement = v["spec"], v["placement"] or {}
    slo = spec.get("slo_ms")
    latency = placement.get("latency_ms") or {}
    worst = latency.get("worst")
    cascade = spec.get("cascade")
    return {
        "name": v["name"],
        "status": v["status"],
        "reason": v["reason"],
        "code": codes.get(v["name"]) if v["status"] != "placed" else None,
        "source": spec.get("source"),
        "what": spec.get("model")
        or (f"cascade {cascade}" if isinstance(cascade, str) else "cascade" if cascade else None)
        or "variants " + ", ".join(spec.get("variants") or []),
        "rate_rps": spec.get("rate_rps"),
        "slo_ms": slo,
        "segments": placement.get("segments") or [],
        "stages": placement.get("stages") or [],
        "predicted_ms": worst,
        "expected_ms": latency.get("expected"),
        "measured_ms": measured.get(v["name"]),
        "headroom_ms": (slo - worst) if slo is not None and worst is not None else None,
        "energy_j": placement.get("energy_j"),
        "carbon_g": placement.get("carbon_g"),
        "embodied_g": plan.embodied_g.get(v["name"]) if placement else None,
        "slo_met": placement.get("slo_met"),
    }
