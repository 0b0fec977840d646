"""Reaction benchmark.

Section `churn` (solver-level): how many plan changes a real bandwidth trace causes on the
example fleet's shared cloud uplink under three policies:
- naive: solve from scratch on every sample (no migration weight) and apply any plan that
  differs;
- incremental: re-solve the apps on that link on every sample, with the migration weight,
  and apply any plan that differs;
- loop: the control plane's rule: smoothed link triggers, then apply only when the plan in
  force breaks a constraint or the new one is better by more than the margin.
It also counts the samples during which the plan in force breaks a constraint under the
bandwidth of that moment (the price of reacting less).

Traces: `../shared/traces/` (downlink throughput); each is scaled so that its mean equals
the uplink's declared bandwidth, and used as that uplink's bandwidth over time.

    python bench/reaction.py churn [--traces N] [--samples N]

Section `live` (control plane): reaction time of a real `continuum server` (embedded, a
subprocess) to battery, bandwidth and device-loss triggers, on fleets of simulated
heartbeat-only agents run by this process (asyncio): each enrolls, heartbeats every
interval with its battery and measured links, long-polls its desired state and reports
every partition in it ready at once, so rollouts complete. The fleet is made of groups of
ten (the demo's two cameras, edge and cloud with its two deployments, plus six idle
cameras). A sample: change one group's condition (cam-1's battery 90 -> 40.5%, cam-2's
measured uplink 50 -> 2 Mbit/s, or the edge stops heartbeating), wait for the plan
version whose reason names that device, read its `reaction_ms` from the audit log
(`placement.reaction`: from the trigger's observation to the moment every affected agent's
long poll was answered with the new desired state), then restore the condition and put
the baseline plan back with an operator's full solve.

    python bench/reaction.py live [--fleets 10,100] [--samples N] [--interval S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from orchestrator.hysteresis import DEFAULT_MARGIN, decide  # noqa: E402
from orchestrator.triggers import LinkWatch  # noqa: E402
from solver import Problem, SolveOptions, Status, load_scenario, solve  # noqa: E402
from solver.evaluate import evaluate  # noqa: E402
from solver.incremental import Change, apply_change, resolve  # noqa: E402
from solver.plan import Placement  # noqa: E402

TRACES = ROOT.parent / "shared" / "traces"
SCENARIO = ROOT / "examples" / "factory-line.yaml"
LINK = ("edge-a", "cloud-gpu")
MIGRATION = 0.005  # per MB of weights moved: small next to a few joules per second


def read_trace(path: Path) -> list[tuple[float, float]]:
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2:
            t, mbps = float(parts[0]), float(parts[1])
            out.append((t, max(mbps, 0.05)))  # a zero sample would mean "no link"
    return out


@dataclass
class ChurnResult:
    trace: str
    samples: int
    triggers: int
    changes: dict[str, int]
    broken: dict[str, int]
    resolve_ms_p50: float


def _scenario_problem() -> Problem:
    scn = load_scenario(SCENARIO)
    if scn.objective.migration == 0:
        scn = scn.model_copy(
            update={"objective": scn.objective.model_copy(update={"migration": MIGRATION})}
        )
    return Problem(scn)


def _broken(problem: Problem, placements: dict[str, Placement]) -> bool:
    return bool(evaluate(problem.cost, placements).violations)


def churn(trace: Path, limit: int, margin: float) -> ChurnResult:
    samples = read_trace(trace)[:limit]
    base = _scenario_problem()
    declared = next(lk.mbps for lk in base.scenario.links if {lk.a, lk.b} == set(LINK))
    mean = statistics.fmean(m for _, m in samples)
    scaled = [(t, m * declared / mean) for t, m in samples]
    first = solve(base, SolveOptions(), "heuristic")
    options = SolveOptions(time_limit_s=5)

    # With hysteresis: the loop's rule.
    watch = LinkWatch()
    rtt = next(lk.rtt_ms for lk in base.scenario.links if {lk.a, lk.b} == set(LINK))
    planned = base
    in_force = dict(first.placements)
    triggers = changes_with = broken_with = 0
    timings: list[float] = []
    for t, mbps in scaled:
        now = apply_change(base, Change(links={LINK: {"mbps": mbps}}))
        if _broken(now, in_force):
            broken_with += 1
        fired = watch.observe(*LINK, mbps, rtt, t)
        if fired is None:
            continue
        triggers += 1
        smoothed = watch.smoothed(*LINK)
        assert smoothed is not None
        change = Change(links={LINK: {"mbps": smoothed[0]}})
        planned = apply_change(planned, change, in_force)
        start = time.perf_counter()
        cand = resolve(planned, in_force, change, options)
        timings.append((time.perf_counter() - start) * 1000)
        current = evaluate(planned.cost, in_force)
        d = decide(
            current.objective,
            current.violations,
            cand.doc.objective,
            cand.status != Status.INFEASIBLE,
            margin,
        )
        watch.commit()
        if d.apply and cand.placements != in_force:
            in_force = dict(cand.placements)
            changes_with += 1

    changes = {"loop": changes_with}
    broken = {"loop": broken_with}
    # Incremental, no hysteresis: re-solve the link's apps every sample, apply any change.
    in_force = dict(first.placements)
    changes["incremental"] = broken["incremental"] = 0
    prev = base
    for _, mbps in scaled:
        change = Change(links={LINK: {"mbps": mbps}})
        now = apply_change(prev, change, in_force)
        if _broken(now, in_force):
            broken["incremental"] += 1
        cand = resolve(now, in_force, change, options)
        if cand.status != Status.INFEASIBLE and cand.placements != in_force:
            in_force = dict(cand.placements)
            changes["incremental"] += 1
        prev = now
    # Naive: solve from scratch every sample, no migration weight, apply any change.
    in_force = dict(first.placements)
    changes["naive"] = broken["naive"] = 0
    naive_base = Problem(
        base.scenario.model_copy(
            update={"objective": base.scenario.objective.model_copy(update={"migration": 0.0})}
        )
    )
    for _, mbps in scaled:
        now = apply_change(naive_base, Change(links={LINK: {"mbps": mbps}}))
        if _broken(now, in_force):
            broken["naive"] += 1
        cand = solve(now, options, "heuristic")
        if cand.status != Status.INFEASIBLE and cand.placements != in_force:
            in_force = dict(cand.placements)
            changes["naive"] += 1
    return ChurnResult(
        trace=f"{trace.parent.name}/{trace.name}",
        samples=len(scaled),
        triggers=triggers,
        changes=changes,
        broken=broken,
        resolve_ms_p50=statistics.median(timings) if timings else 0.0,
    )


def run_churn(args: argparse.Namespace) -> None:
    if not TRACES.is_dir():
        sys.exit(f"error: {TRACES} not found: clone the project next to shared/")
    picks = sorted((TRACES / "hsdpa-norway").iterdir())[: args.traces]
    picks += sorted((TRACES / "fcc").iterdir())[: args.traces]
    table = Table(title=f"plan changes on {LINK[0]}~{LINK[1]} driven by real traces")
    policies = ("naive", "incremental", "loop")
    table.add_column("trace")
    for col in ("samples", "loop triggers"):
        table.add_column(col, justify="right")
    for p in policies:
        table.add_column(f"changes {p}", justify="right")
    for p in policies:
        table.add_column(f"broken {p}", justify="right")
    table.add_column("re-solve p50 ms", justify="right")
    totals: dict[str, int] = {}
    for path in picks:
        r = churn(path, args.samples, args.margin)
        row = [r.samples, r.triggers]
        row += [r.changes[p] for p in policies] + [r.broken[p] for p in policies]
        table.add_row(r.trace, *(str(v) for v in row), f"{r.resolve_ms_p50:.1f}")
        for k, v in zip(
            ["samples", "triggers", *[f"c{p}" for p in policies], *[f"b{p}" for p in policies]],
            row,
            strict=True,
        ):
            totals[k] = totals.get(k, 0) + v
    table.add_row("total", *(str(v) for v in totals.values()), "")
    Console(width=160).print(table)
    print(f"margin {args.margin:.0%}, migration weight {MIGRATION} per MB, link {LINK}")


# -- section `live`: reaction time of a real control plane to simulated agents ---------------
ADMIN = "cnt_admin_bench_" + "r" * 24
# One group of ten simulated agents: the demo's fleet (cam-1: an NPU camera whose
# whole-model plan breaks its battery constraint at 40.5%; cam-2: a CPU camera that sends
# early to the edge over a 50 Mbit/s uplink; an edge box; a cloud machine) plus six idle
# cameras. name -> (tier, GFLOP/s, idle W, busy W, battery Wh or None)
GROUP = {
    "cam-1": ("device", 50.0, 1.5, 4.0, 5.0),
    "cam-2": ("device", 10.0, 2.0, 6.0, 5.0),
    "edge": ("edge", 400.0, 10.0, 35.0, None),
    "cloud": ("cloud", 4000.0, 80.0, 300.0, None),
    **{f"idle-{k}": ("device", 10.0, 2.0, 6.0, 5.0) for k in range(6)},
}
GROUP_LINKS = [("cam-1", "edge", 50, 4, 0.4), ("cam-2", "edge", 50, 4, 0.4),
               ("edge", "cloud", 200, 15, 0.05), ("cam-1", "cloud", 20, 40, 0.8),
               ("cam-2", "cloud", 20, 40, 0.8)]  # fmt: skip
# trigger -> (device in the group, keyword the plan version's reason must contain)
TRIGGERS = {"battery": ("cam-1", "battery"), "bandwidth": ("cam-2", "link"),
            "device-loss": ("edge", "lost")}  # fmt: skip


@dataclass
class SimAgent:
    """A heartbeat-only agent: it reports its battery and measured links every interval,
    long-polls its desired state and reports every partition in it ready at once."""

    name: str
    device_id: str = ""
    secret: str = ""
    battery_pct: float | None = 90.0
    links: list[dict[str, float | str]] | None = None
    partitions: dict[str, bool] | None = None
    version: int = 0
    alive: bool = True
    kick: asyncio.Event | None = None


async def _heartbeats(client: Any, sim: SimAgent, interval: float) -> None:
    import random

    assert sim.kick is not None
    await asyncio.sleep(random.uniform(0, interval))
    while True:
        if sim.alive:
            body = {"battery_pct": sim.battery_pct, "utilization": 0.1,
                    "free_memory_mb": 1024.0, "links": sim.links or [],
                    "partitions": sim.partitions or {}, "desired_version": sim.version}  # fmt: skip
            # a loaded server may time out a beat: the next one follows
            with contextlib.suppress(Exception):
                await client.post(f"/v1/agents/{sim.device_id}/heartbeat", json=body,
                                  headers={"Authorization": f"Bearer {sim.secret}"})  # fmt: skip
        sim.kick.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sim.kick.wait(), interval)


async def _long_poll(client: Any, sim: SimAgent) -> None:
    assert sim.kick is not None
    while True:
        if not sim.alive:
            await asyncio.sleep(0.2)
            continue
        try:
            r = await client.get(
                f"/v1/agents/{sim.device_id}/desired-state",
                params={"after_version": sim.version, "wait_s": 10},
                headers={"Authorization": f"Bearer {sim.secret}"},
            )
        except Exception:
            await asyncio.sleep(0.5)
            continue
        if r.status_code != 200:
            await asyncio.sleep(0.5)
            continue
        state = r.json()
        if state["version"] != sim.version and sim.alive:
            keys = [p["key"] for p in state["partitions"]]
            keys += [s["key"] for s in state["cascade_stages"]]
            sim.partitions = dict.fromkeys(keys, True)
            sim.version = int(state["version"])
            sim.kick.set()  # report readiness now, as an agent does once it has loaded


class LiveBench:
    def __init__(self, url: str, groups: int, interval: float) -> None:
        self.url = url
        self.groups = groups
        self.interval = interval
        self.sims: dict[str, SimAgent] = {}
        self.tasks: list[asyncio.Task[None]] = []

    async def setup(self, client: Any) -> None:
        import onnx

        from models_registry import randomize

        admin = {"Authorization": f"Bearer {ADMIN}"}
        token = (await client.post("/v1/enrollment-tokens", json={}, headers=admin)).json()
        for g in range(self.groups):
            for role, (tier, gflops, idle, busy, wh) in GROUP.items():
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
                sim = SimAgent(name, r.json()["device_id"], r.json()["agent_token"])
                sim.battery_pct = 90.0 if wh is not None else None
                sim.kick = asyncio.Event()
                if role == "cam-2":
                    sim.links = [{"peer": f"g{g:03d}-edge", "mbps": 50.0, "rtt_ms": 4.0}]
                self.sims[name] = sim
        for sim in self.sims.values():
            self.tasks.append(asyncio.create_task(_heartbeats(client, sim, self.interval)))
            self.tasks.append(asyncio.create_task(_long_poll(client, sim)))
        light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
        model = randomize(light / "light_squeezenet.onnx", seed=0)
        r = await client.post(
            "/v1/models",
            data={"id": "squeezenet"},
            headers=admin,
            files={"file": ("squeezenet.onnx", model.SerializeToString())},
        )
        r.raise_for_status()  # fmt: skip
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
        await self.settle(client, 600)

    async def settle(self, client: Any, timeout_s: float) -> None:
        """Until the plan in force is rolled out and no new version came for 2 s."""
        admin = {"Authorization": f"Bearer {ADMIN}"}
        deadline = time.monotonic() + timeout_s
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            r = await client.get("/v1/plan", headers=admin)
            if r.status_code == 200:
                plan = r.json()
                if plan["version"] != last:
                    last, since = plan["version"], time.monotonic()
                elif plan["rollout"]["complete"] and time.monotonic() - since > 2.0:
                    return
            await asyncio.sleep(0.25)
        raise RuntimeError("the plan did not settle")

    async def reactions(self, client: Any) -> dict[int, tuple[str, float]]:
        r = await client.get("/v1/audit", params={"limit": 1000},
                             headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
        r.raise_for_status()
        return {
            int(e["target"].split(":")[1]): (e["reason"] or "", float(e["detail"]["reaction_ms"]))
            for e in r.json()
            if e["action"] == "placement.reaction"
        }

    async def measure(self, client: Any, trigger: str, samples: int) -> list[float]:
        role, keyword = TRIGGERS[trigger]
        out: list[float] = []
        for k in range(samples):
            sim = self.sims[f"g{k % self.groups:03d}-{role}"]
            before = await self.reactions(client)
            seen = max(before, default=0)
            self._apply(trigger, sim, True)
            deadline = time.monotonic() + 60
            got = None
            while time.monotonic() < deadline and got is None:
                await asyncio.sleep(0.25)
                for version, (reason, ms) in sorted((await self.reactions(client)).items()):
                    if version > seen and sim.name in reason and keyword in reason:
                        got = ms
                        break
            if got is not None:
                out.append(got)
            else:
                print(f"  {trigger} on {sim.name}: no re-placement within 60 s", file=sys.stderr)
            await self.settle(client, 120)
            self._apply(trigger, sim, False)  # restore; the loop may re-place back
            await asyncio.sleep(3 * self.interval + 1)  # a returning device must rejoin
            await self.settle(client, 120)
            # Hysteresis may keep the re-placed plan under the restored conditions (it is
            # not broken, and going back may not gain the margin): an operator's full
            # solve puts the baseline back, so every sample starts from the same plan.
            r = await client.post("/v1/plan/solve", json={},
                                  headers={"Authorization": f"Bearer {ADMIN}"})  # fmt: skip
            r.raise_for_status()
            await self.settle(client, 120)
        return out

    @staticmethod
    def _apply(trigger: str, sim: SimAgent, on: bool) -> None:
        if trigger == "battery":
            sim.battery_pct = 40.5 if on else 90.0
        elif trigger == "bandwidth":
            assert sim.links is not None
            sim.links[0]["mbps"] = 2.0 if on else 50.0
        else:
            sim.alive = not on
            if not on:  # a restarted agent: it reports what it runs from scratch
                sim.version, sim.partitions = 0, {}
        assert sim.kick is not None
        sim.kick.set()


async def _live_fleet(url: str, size: int, samples: int, interval: float) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    bench = LiveBench(url, max(1, size // len(GROUP)), interval)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        await bench.setup(client)
        result = {t: await bench.measure(client, t, samples) for t in TRIGGERS}
        for task in bench.tasks:
            task.cancel()
        await asyncio.gather(*bench.tasks, return_exceptions=True)
    return result


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_live(args: argparse.Namespace) -> None:
    import os
    import platform
    import signal
    import socket
    import subprocess
    import tempfile

    import httpx
    from machine import cpu_model

    # SIGTERM (a `timeout`, a CI cancel) unwinds like Ctrl-C: the server is stopped below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rows = []
    for size in (int(s) for s in args.fleets.split(",")):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        url = f"http://127.0.0.1:{port}"
        with tempfile.TemporaryDirectory(prefix="continuum-reaction-") as data:
            env = {k: v for k, v in os.environ.items() if not k.startswith("CONTINUUM_")}
            env.update(CONTINUUM_DATA_DIR=data, CONTINUUM_ADMIN_TOKEN=ADMIN,
                       CONTINUUM_HEARTBEAT_INTERVAL_S=str(args.interval),
                       CONTINUUM_LONG_POLL_MAX_S="10", CONTINUUM_ROLLOUT_TIMEOUT_S="30",
                       CONTINUUM_SOLVER=args.solver)  # fmt: skip
            exe = Path(sys.executable).with_name("continuum")
            log = Path(data) / "server.log"
            with log.open("wb") as out:
                server = subprocess.Popen(
                    [str(exe), "server", "--port", str(port), "--log-level", "warning"],
                    env=env, stdout=out, stderr=subprocess.STDOUT,
                )  # fmt: skip
            try:
                deadline = time.monotonic() + 90
                while time.monotonic() < deadline:
                    if server.poll() is not None:
                        sys.exit(f"the server exited:\n{log.read_text()[-2000:]}")
                    with contextlib.suppress(httpx.TransportError):
                        if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                            break
                    time.sleep(0.2)
                started = time.perf_counter()
                result = asyncio.run(_live_fleet(url, size, args.samples, args.interval))
                wall = time.perf_counter() - started
            finally:
                server.send_signal(signal.SIGTERM)
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(timeout=30)
        for trigger, values in result.items():
            rows.append((size, trigger, values, wall))
            shown = ", ".join(f"{v:.0f}" for v in values)
            print(f"fleet {size}, {trigger}: reaction_ms [{shown}] ({wall:.0f} s)", file=sys.stderr)
    table = Table(title="reaction time (ms): trigger observed -> every affected agent has r1")
    for col in ("fleet", "trigger", "samples", "p50", "p95", "max"):
        table.add_column(col, justify="right")
    for size, trigger, values, _ in rows:
        if values:
            figures = [f"{_pct(values, q):.0f}" for q in (0.5, 0.95)] + [f"{max(values):.0f}"]
        else:
            figures = ["-", "-", "-"]
        table.add_row(str(size), trigger, str(len(values)), *figures)
    Console(width=120).print(table)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}; "
          f"heartbeat {args.interval:g} s; solver {args.solver}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="section", required=True)
    c = sub.add_parser("churn", help="plan changes a real bandwidth trace causes")
    c.add_argument("--traces", type=int, default=3, help="traces per folder")
    c.add_argument("--samples", type=int, default=300, help="samples per trace")
    c.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    lv = sub.add_parser("live", help="reaction time of a control plane to simulated agents")
    lv.add_argument("--fleets", default="10,100", help="fleet sizes (multiples of 10)")
    lv.add_argument("--samples", type=int, default=5, help="samples per trigger and fleet")
    lv.add_argument("--interval", type=float, default=1.0, help="heartbeat interval (s)")
    lv.add_argument("--solver", default="ilp")
    args = parser.parse_args()
    if args.section == "churn":
        run_churn(args)
    else:
        run_live(args)


if __name__ == "__main__":
    main()
