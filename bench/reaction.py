"""Reaction benchmark: how fast a real control plane re-places work when a condition changes.

A real `continuum server` (embedded, a subprocess) reacts to battery, bandwidth and
device-loss triggers, on fleets of simulated heartbeat-only agents
(`tests/harness/simulated.py`), all in one asyncio loop of this process on the lean HTTP
client (httpx would cost more CPU per request than the server): each enrolls,
heartbeats every interval with its battery and measured links, long-polls its desired
state as an agent does (after_version, 25 s) and reports every partition of a new state
ready at once (with a heartbeat right away, so rollouts finish sooner). The fleet is made
of groups of ten (the demo's two cameras, edge and cloud with its two deployments, plus
six idle cameras). A sample changes one group's condition (cam-1's battery 90 -> 41.7%,
cam-2's measured uplink 50 -> 2 Mbit/s, or the edge stops heartbeating) and takes the
rollout whose reason names that device from the server's event stream (audit log as a
fallback):
- `reaction_ms`, the server's figure (`placement.reaction`): from the trigger's
  observation (the heartbeat's arrival; for a lost device, the moment it was declared
  lost) to every affected agent's long poll answered with the new desired state;
- the client's figure, on the simulator's clock: from sending the heartbeat that carried
  the condition (for a lost device, its last heartbeat) to the last affected agent
  holding the new desired state;
- where the time went: observation -> trigger recorded (detect), -> plan committed
  (plan, and within it the planner's own stages from its `placement` event: build,
  solve, materialize, commit), -> last affected agent answered (deliver).
A group takes the battery and the uplink triggers, or the edge's loss; the next sample
uses the next group, so samples need no restoring until every group was used; then all
conditions are restored at once and an operator's full solve puts the baseline plan back.
Before each sample the control plane must be idle (no rollout, no trigger without its
plan, nothing new for 0.5 s).

    python bench/reaction.py [--agents 10,100,1000] [--samples N] [--interval S]
                             [--triggers battery,bandwidth,device-loss] [--json F]

Plan churn under real bandwidth traces (solver-level) is bench/churn.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from machine import cpu_model  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.harness.processes import ControlPlane, Launcher, NotReady, clean_env  # noqa: E402
from tests.harness.simulated import EventLog, SimulatedAgent, SimulatedFleet  # noqa: E402

ADMIN = "cnt_admin_bench_" + "r" * 24
# One group of ten simulated agents: the demo's fleet (cam-1: an NPU camera whose
# whole-model plan breaks its battery constraint at 41.7%, a 60 Wh pack paying its idle
# draw first as scenario-v1 has it; cam-2: a CPU camera that sends early to the edge over
# a 50 Mbit/s uplink; an edge box; a cloud machine) plus six idle cameras.
# name -> (tier, GFLOP/s, idle W, busy W, battery Wh or None)
GROUP = {
    "cam-1": ("device", 50.0, 1.5, 4.0, 60.0),
    "cam-2": ("device", 10.0, 2.0, 6.0, 60.0),
    "edge": ("edge", 400.0, 10.0, 35.0, None),
    "cloud": ("cloud", 4000.0, 80.0, 300.0, None),
    **{f"idle-{k}": ("device", 10.0, 2.0, 6.0, 60.0) for k in range(6)},
}
GROUP_LINKS = [("cam-1", "edge", 50, 4, 0.4), ("cam-2", "edge", 50, 4, 0.4),
               ("edge", "cloud", 200, 15, 0.05), ("cam-1", "cloud", 20, 40, 0.8),
               ("cam-2", "cloud", 20, 40, 0.8)]  # fmt: skip
# trigger -> (device in the group, keyword the rollout's reason must contain)
TRIGGERS = {"battery": ("cam-1", "battery"), "bandwidth": ("cam-2", "link"),
            "device-loss": ("edge", "lost")}  # fmt: skip


@dataclass
class Sample:
    trigger: str
    device: str
    server_ms: float  # the server's reaction_ms (audit `placement.reaction`)
    client_ms: float | None  # heartbeat sent (loss: the last one) -> last target's answer
    targets: int
    coalesced: bool  # the plan also answered other triggers (measured from the earliest)
    detect_ms: float | None = None  # observation -> trigger recorded (tick, audit write)
    plan_ms: float | None = None  # trigger recorded -> plan committed (build, solve, SQL)
    deliver_ms: float | None = None  # plan committed -> the last target's long poll answered
    # The planner's own stages (its `placement` event): build (snapshot, heartbeats,
    # scenario), solve (pool round trip), materialize (partitions), commit (SQL).
    stages: dict[str, float] = field(default_factory=dict)


class LiveBench:
    def __init__(self, url: str, groups: int, interval: float) -> None:
        self.ready_at = time.monotonic()  # the server answered /readyz
        self.url = url
        self.groups = groups
        self.interval = interval
        self.fleet = SimulatedFleet(url, interval)
        self.events = EventLog(self.fleet, ADMIN)
        self.samples: list[Sample] = []
        self.missing: dict[str, int] = dict.fromkeys(TRIGGERS, 0)
        self.kept: list[str] = []  # why each missing sample is missing
        self.restores = 0

    async def setup(self, client: Any) -> None:
        import onnx

        from models_registry import randomize

        admin = {"Authorization": f"Bearer {ADMIN}"}
        self.events.task = asyncio.create_task(self.events.run())
        token = (await client.post("/v1/enrollment-tokens", json={}, headers=admin)).json()

        async def enroll(g: int, role: str) -> None:
            tier, gflops, idle, busy, wh = GROUP[role]
            name = f"g{g:03d}-{role}"
            body: dict[str, Any] = {
                "token": token["token"], "name": name, "tier": tier, "gflops": gflops,
                "memory_mb": 4096 if tier != "device" else 1024,
                "power_w": {"idle": idle, "busy": busy},
                "data_plane_url": f"http://{name}.sim:9000", "emulated": True,
            }  # fmt: skip
            if wh is not None:
                body["battery"] = {"capacity_wh": wh, "level_pct": 90.0, "min_pct": 20.0}
            r = await client.post("/v1/agents/enroll", json=body)
            r.raise_for_status()
            links = []
            if role == "cam-2":
                links = [{"peer": f"g{g:03d}-edge", "mbps": 50.0, "rtt_ms": 4.0}]
            sim = SimulatedAgent(name, r.json()["device_id"], r.json()["agent_token"],
                           90.0 if wh is not None else None, links)  # fmt: skip
            self.fleet.add(sim)

        for g in range(self.groups):
            await asyncio.gather(*(enroll(g, role) for role in GROUP))
        light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
        model = randomize(light / "light_squeezenet.onnx", seed=0)
        r = await client.post(
            "/v1/models",
            data={"id": "squeezenet"},
            headers=admin,
            files={"file": ("squeezenet.onnx", model.SerializeToString())},
        )
        r.raise_for_status()
        for g in range(self.groups):
            for a, b, mbps, rtt, jpm in GROUP_LINKS:
                r = await client.post("/v1/links", headers=admin, json={
                    "a": f"g{g:03d}-{a}", "b": f"g{g:03d}-{b}", "mbps": mbps, "rtt_ms": rtt,
                    "j_per_mb": jpm})  # fmt: skip
                r.raise_for_status()
            for dep, source, rate in (("vision", "cam-1", 4.0), ("vision-2", "cam-2", 1.5)):
                r = await client.post("/v1/deployments", headers=admin, json={
                    "name": f"g{g:03d}-{dep}", "model": "squeezenet",
                    "source": f"g{g:03d}-{source}", "rate_rps": rate, "slo_ms": 1000})  # fmt: skip
                r.raise_for_status()
        # Agents start heartbeating once everything is declared: the first plan is then one
        # solve of the whole fleet, not one per declaration (minutes at 1,000 agents). Not
        # before the loop's start-up grace is over: devices it first sees within that time
        # are its baseline, not joins, and nothing would place the waiting deployments.
        grace = 3 * self.interval + 1.0
        await asyncio.sleep(max(0.0, self.ready_at + grace - time.monotonic()))
        for sim in self.fleet.sims.values():
            self.fleet.start(sim, stagger=True)
        # Every deployment placed, then a quiet fleet.
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            r = await client.get("/v1/deployments", headers=admin)
            r.raise_for_status()
            if all(d["status"] == "placed" for d in r.json()):
                break
            await asyncio.sleep(1.0)
        else:
            raise RuntimeError("deployments not placed within 900 s")
        await self.quiet(3.0, timeout_s=300)

    async def quiet(self, hold_s: float, timeout_s: float = 120.0) -> None:
        """No rollout in flight, and no revision, trigger or plan for hold_s: a sample
        starts on a control plane that is not still busy with the one before."""
        await self.fleet.quiet(hold_s, timeout_s, busy=self.events.last_activity)

    async def converge(self, sims: list[SimulatedAgent]) -> None:
        """Quick heartbeats from these agents, so the loop's smoothed uplink figures reach
        what they report within a second (one observation per loop tick), rather than
        firing a trigger per heartbeat interval for several seconds."""
        for _ in range(8):
            await asyncio.sleep(0.15)
            for sim in sims:
                sim.kick.set()

    async def _audit_reaction(
        self, client: Any, since: float, device: str, keyword: str
    ) -> dict[str, Any] | None:
        """The audit log's `placement.reaction` for this trigger: the event stream drops an
        event now and then under a burst of long-poll answers."""
        r = await client.get("/v1/audit", params={"limit": 1000},
                             headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
        r.raise_for_status()
        for e in r.json():
            reason = e["reason"] or ""
            if (e["action"] == "placement.reaction" and device in reason and keyword in reason
                    and datetime.fromisoformat(e["at"]).timestamp() > since):  # fmt: skip
                version = int(e["target"].split(":")[1])
                return {**e["detail"], "reason": reason, "version": version}
        return None

    async def sample(self, client: Any, trigger: str, sim: SimulatedAgent) -> None:
        _, keyword = TRIGGERS[trigger]
        seen = len(self.events.replacements)
        seen_triggers, seen_plans = len(self.events.triggers), len(self.events.decisions)
        started = time.time()
        if trigger == "battery":
            sim.battery_pct, sim.marking = 41.7, True
            sim.kick.set()
        elif trigger == "bandwidth":
            sim.links[0]["mbps"], sim.marking = 2.0, True
            sim.kick.set()
        else:
            sim.mark = await self.fleet.kill(sim)
        found: dict[str, Any] | None = None
        deadline = time.monotonic() + 3 * self.interval + 30
        kept = ""
        while found is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            for _, data in self.events.replacements[seen:]:
                reason = data.get("reason") or ""
                if sim.device_id in reason and keyword in reason:
                    found = data
            if found is None and not kept:
                kept = self._kept(sim, seen_triggers, seen_plans)
                if kept:  # a plan answered the trigger and changed nothing: give it a second
                    deadline = min(deadline, time.monotonic() + 1.0)
            if found is None and time.monotonic() > deadline - 25:
                found = await self._audit_reaction(client, started, sim.device_id, keyword)
                await asyncio.sleep(0.5)
        if found is None:
            self.missing[trigger] += 1
            self.kept.append(f"{trigger} on {sim.name}: {kept or 'no re-placement recorded'}")
            print(f"  {self.kept[-1]}", file=sys.stderr)
            return
        server_ms = float(found["reaction_ms"])
        revision = int(found["revision"])
        targets = [self.fleet.by_id[t] for t in found["targets"] if t in self.fleet.by_id]
        alive = [t for t in targets if t.alive]
        client_ms = None
        for _ in range(100):  # the server records a delivery before the client reads it
            got = [t.got(revision) for t in alive]
            if all(at is not None for at in got):
                last = max((at for at in got if at is not None), default=sim.mark)
                client_ms = (last - sim.mark) * 1000.0
                break
            await asyncio.sleep(0.02)
        reason = found.get("reason") or ""
        s = Sample(trigger, sim.name, server_ms, client_ms, len(targets), "; " in reason)
        mine = [(at, d) for at, d in self.events.triggers if d.get("target", "").find(
            sim.device_id) >= 0 and d.get("observed_at", 0) >= started - 1]  # fmt: skip
        committed = self.events.placements.get(int(found["version"]))
        if mine and committed is not None:
            recorded, data = mine[0]
            observed = float(data["observed_at"])
            s.detect_ms = (recorded - observed) * 1000.0
            s.plan_ms = (committed - recorded) * 1000.0
            s.deliver_ms = server_ms - (committed - observed) * 1000.0
        s.stages = self.events.stages.get(int(found["version"])) or {}
        self.samples.append(s)
        shown = "-" if client_ms is None else f"{client_ms:.0f}"
        print(f"  {trigger} on {sim.name}: reaction {server_ms:.0f} ms (client {shown} ms, "
              f"{len(targets)} targets)", file=sys.stderr)  # fmt: skip

    def _kept(self, sim: SimulatedAgent, seen_triggers: int, seen_plans: int) -> str:
        """The decision of a plan not put in force after this device's trigger, if any."""
        mine = [at for at, d in self.events.triggers[seen_triggers:]
                if sim.device_id in str(d.get("target", ""))]  # fmt: skip
        if not mine:
            return ""
        for _, data in self.events.decisions[seen_plans:]:
            if not data.get("in_force"):
                return f"plan kept ({data.get('decision') or data.get('status')})"
        return ""

    async def restore(self, client: Any, used: list[tuple[str, SimulatedAgent]]) -> None:
        """Conditions back as set up, then an operator's full solve puts the baseline plan
        back (hysteresis may keep a re-placed plan that the restored conditions no longer
        break)."""
        self.restores += 1
        links = []
        for trigger, sim in used:
            if trigger == "battery":
                sim.battery_pct = 90.0
            elif trigger == "bandwidth":
                sim.links[0]["mbps"] = 50.0
                links.append(sim)
            else:
                self.fleet.revive(sim)
            sim.kick.set()
        await self.converge(links)
        await self.quiet(0.5)
        r = await client.post("/v1/plan/solve", json={},
                              headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
        r.raise_for_status()
        await self.quiet(0.5)

    async def measure(self, client: Any, samples: int, triggers: list[str]) -> None:
        """samples per trigger. A group takes either the battery and the uplink triggers
        (cam-1's and cam-2's deployments are apart) or the edge's loss (after those two the
        edge may host nothing), the next group the next turn; once every group was used,
        all are restored at once."""
        pairs = [("battery", "bandwidth"), ("device-loss",)]
        turns = [tuple(t for t in turn if t in triggers) for turn in pairs] * samples
        used: list[tuple[str, SimulatedAgent]] = []
        for k, turn in enumerate(t for t in turns if t):
            group = k % self.groups
            if k and group == 0:
                await self.restore(client, used)
                used = []
            for trigger in turn:
                sim = self.fleet.sims[f"g{group:03d}-{TRIGGERS[trigger][0]}"]
                await self.quiet(0.5)
                await self.sample(client, trigger, sim)
                if trigger == "bandwidth":
                    await self.converge([sim])
                used.append((trigger, sim))
        await self.quiet(0.5)


async def _live_fleet(
    url: str, size: int, samples: int, interval: float, triggers: list[str]
) -> LiveBench:
    # SIGTERM cancels the run, so the caller's `finally` stops the server (a Python signal
    # handler's exception does not reliably get out of the event loop).
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    bench = LiveBench(url, max(1, size // len(GROUP)), interval)
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        started = time.perf_counter()
        await bench.setup(client)
        print(f"fleet {size}: set up in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        try:
            await bench.measure(client, samples, triggers)
        finally:
            await bench.fleet.stop()
            if bench.events.task is not None:
                bench.events.task.cancel()
    return bench


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _figures(values: list[float]) -> list[str]:
    if not values:
        return ["-", "-", "-"]
    return [f"{_pct(values, 0.5):.0f}", f"{_pct(values, 0.95):.0f}", f"{max(values):.0f}"]


def run_live(args: argparse.Namespace) -> None:
    # SIGTERM (a `timeout`, a CI cancel) unwinds like Ctrl-C: the server is stopped below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run: Callable[[Coroutine[Any, Any, LiveBench]], LiveBench] = asyncio.run
    with contextlib.suppress(ImportError):  # uvloop is a dependency of the server
        import uvloop

        run = uvloop.run
    results: list[tuple[int, LiveBench, float]] = []
    triggers = args.triggers.split(",")
    if unknown := sorted(set(triggers) - set(TRIGGERS)):
        sys.exit(f"error: unknown trigger {unknown[0]!r}; choose from {', '.join(TRIGGERS)}")
    for size in (int(s) for s in args.fleets.split(",")):
        if size < len(GROUP) or size % len(GROUP):
            sys.exit(f"error: fleet sizes are multiples of {len(GROUP)}, got {size}")
        launcher = Launcher(env=clean_env())
        with tempfile.TemporaryDirectory(prefix="continuum-reaction-") as data:
            env = {
                "CONTINUUM_DATA_DIR": data,
                "CONTINUUM_ADMIN_TOKEN": ADMIN,
                "CONTINUUM_HEARTBEAT_INTERVAL_S": str(args.interval),
                "CONTINUUM_ROLLOUT_TIMEOUT_S": "30",
                "CONTINUUM_SOLVER": args.solver,
                # The whole simulated fleet enrolls at once from this one address.
                "CONTINUUM_ENROLL_RATE_PER_SOURCE": "1000000",
                "CONTINUUM_ENROLL_RATE_GLOBAL": "1000000",
            }
            try:
                plane = ControlPlane(launcher, "server", env, Path(data) / "server.log",
                                      args=["--log-level", "warning"])  # fmt: skip
                try:
                    plane.wait_ready()
                except NotReady as exc:
                    sys.exit(str(exc))
                assert plane.proc.popen is not None
                print(f"fleet {size}: server pid {plane.proc.popen.pid}", file=sys.stderr)
                started = time.perf_counter()
                try:
                    bench = run(_live_fleet(plane.url, size, args.samples, args.interval, triggers))
                except asyncio.CancelledError:
                    sys.exit(143)  # SIGTERM; the server is stopped below
                wall = time.perf_counter() - started
            finally:
                launcher.stop_all()
        results.append((size, bench, wall))
        print(f"fleet {size}: {wall:.0f} s, {bench.restores} restores, "
              f"{bench.fleet.errors} agent request errors", file=sys.stderr)  # fmt: skip
        if args.json:
            rows = [{"fleet": size, **s.__dict__} for _, b, _ in results for s in b.samples]
            Path(args.json).write_text(json.dumps(rows, indent=1))
    table = Table(title="reaction time (ms): condition observed -> every affected agent has r1")
    for col in ("fleet", "trigger", "samples", "missing", "p50", "p95", "max",
                "client p50", "client p95", "client max"):  # fmt: skip
        table.add_column(col, justify="right")
    for size, bench, _ in results:
        for trigger in triggers:
            mine = [s for s in bench.samples if s.trigger == trigger]
            server = [s.server_ms for s in mine]
            client = [s.client_ms for s in mine if s.client_ms is not None]
            table.add_row(str(size), trigger, str(len(mine)), str(bench.missing[trigger]),
                          *_figures(server), *_figures(client))  # fmt: skip
    Console(width=140).print(table)
    parts = Table(title="where the time goes (ms, medians)")
    stages = ("build", "solve", "materialize", "commit")
    for col in ("fleet", "trigger", "targets", "detect", "plan", *(f"  {x}" for x in stages),
                "deliver", "coalesced"):  # fmt: skip
        parts.add_column(col, justify="right")
    for size, bench, _ in results:
        for trigger in triggers:
            mine = [s for s in bench.samples if s.trigger == trigger]
            row = [str(size), trigger, f"{statistics.median(s.targets for s in mine):.0f}"
                   if mine else "-"]  # fmt: skip
            for attr in ("detect_ms", "plan_ms", *stages, "deliver_ms"):
                vals = [
                    s.stages[attr] if attr in stages else getattr(s, attr)
                    for s in mine
                    if (attr in s.stages if attr in stages else getattr(s, attr) is not None)
                ]
                row.append(f"{statistics.median(vals):.0f}" if vals else "-")
            row.append(str(sum(s.coalesced for s in mine)))
            parts.add_row(*row)
    Console(width=140).print(parts)
    for size, bench, _ in results:
        for why, n in Counter(k.split(": ", 1)[1] for k in bench.kept).items():
            print(f"fleet {size}: {n} sample(s) not re-placed: {why}")
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; "
          f"heartbeat {args.interval:g} s; solver {args.solver}; "
          f"wall {', '.join(f'{size}: {wall:.0f} s' for size, _, wall in results)}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", "--fleets", dest="fleets", default="10,100,1000",
                        help="fleet sizes (multiples of 10)")  # fmt: skip
    parser.add_argument("--samples", type=int, default=20, help="samples per trigger and fleet")
    parser.add_argument("--interval", type=float, default=1.0, help="heartbeat interval (s)")
    parser.add_argument("--solver", default="heuristic", help="ilp runs out of memory at 1,000")
    parser.add_argument("--triggers", default=",".join(TRIGGERS), help="which triggers")
    parser.add_argument("--json", help="also write every sample to this file")
    # `reaction.py live ...` as this benchmark was called when it also held the churn one.
    parser.add_argument("section", nargs="?", choices=["live", "churn"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.section == "churn":
        parser.error("the trace churn benchmark is bench/churn.py")
    run_live(args)


if __name__ == "__main__":
    main()
