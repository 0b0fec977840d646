"""The console's pages as data: the fleet by tier, the topology, the deployments with their
placement and costs, the plan history and diffs, the charts and the models. Durable
halves come from `orchestrator.console_views`, live ones from the live state; each page
is one SQL transaction and one or two live-state reads, whatever the fleet's size."""

from __future__ import annotations

from typing import Any

from orchestrator import console_views, samples
from orchestrator.services.context import Context

TIERS = ("device", "edge", "cloud")


class ConsoleService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def fleet(self) -> dict[str, Any]:
        """Devices by tier with status, utilization, free memory, power and battery; a
        battery is `short` when its projected hours fall below the placement horizon."""
        devices, horizon = await self._ctx.run_sync(console_views.devices)
        plan = await self._ctx.run_sync(console_views.in_force)
        beats = await self._ctx.live.heartbeats()
        tiers: dict[str, list[dict[str, Any]]] = {t: [] for t in TIERS}
        for d in devices:
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
            tiers.setdefault(d.tier, []).append(
                {
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
                    # Declared until measured power lands (issue 17: `power_provenance`).
                    "power_provenance": getattr(d, "power_provenance", None) or "declared",
                    "battery": battery,
                }
            )
        count = sum(len(v) for v in tiers.values())
        alive = sum(1 for v in tiers.values() for r in v if r["alive"])
        return {
            "tiers": tiers,
            "horizon_h": horizon,
            "plan_version": plan.version,
            "count": count,
            "alive": alive,
        }

    async def topology(self) -> dict[str, Any]:
        """Devices in tier rows and every link: declared and measured Mbit/s and RTT, and
        its utilization under the plan in force."""
        devices, _ = await self._ctx.run_sync(console_views.devices)
        declared = await self._ctx.run_sync(console_views.declared_links)
        plan = await self._ctx.run_sync(console_views.in_force)
        measured = await self._ctx.live.links()
        beats = await self._ctx.live.heartbeats()
        keys = set(declared) | set(measured) | set(plan.links)
        links = []
        for a, b in sorted(keys):
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
        rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TIERS}
        for d in devices:
            rows.setdefault(d.tier, []).append(
                {"id": d.id, "alive": d.id in beats, "state": d.state}
            )
        return {"rows": rows, "links": links, "plan_version": plan.version}

    async def deployments(self) -> list[dict[str, Any]]:
        """Each deployment's placement (segments or stages), predicted against measured
        latency and the SLO headroom, energy and carbon per inference with the embodied
        share, and its status with the reason and constraint code when not placed."""
        views, plan, codes = await self._ctx.run_sync(console_views.deployment_rows)
        measured = samples.measured_latency_ms(await self._ctx.live.heartbeats())
        out = []
        for v in views:
            spec, placement = v["spec"], v["placement"] or {}
            slo = spec.get("slo_ms")
            latency = placement.get("latency_ms") or {}
            worst = latency.get("worst")
            out.append(
                {
                    "name": v["name"],
                    "status": v["status"],
                    "reason": v["reason"],
                    "code": codes.get(v["name"]) if v["status"] != "placed" else None,
                    "source": spec.get("source"),
                    "what": spec.get("model")
                    or (f"cascade {spec['cascade']}" if isinstance(spec.get("cascade"), str)
                        else "cascade" if spec.get("cascade") else None)
                    or "variants " + ", ".join(spec.get("variants") or []),
                    "rate_rps": spec.get("rate_rps"),
                    "slo_ms": slo,
                    "segments": placement.get("segments") or [],
                    "stages": placement.get("stages") or [],
                    "predicted_ms": worst,
                    "expected_ms": latency.get("expected"),
                    "measured_ms": measured.get(v["name"]),
                    "headroom_ms": (slo - worst) if slo is not None and worst is not None
                    else None,
                    "energy_j": placement.get("energy_j"),
                    "carbon_g": placement.get("carbon_g"),
                    "embodied_g": plan.embodied_g.get(v["name"]) if placement else None,
                    "slo_met": placement.get("slo_met"),
                }
            )  # fmt: skip
        return out

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
        points = await self._ctx.run_sync(samples.window, hours)
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
