"""The console at scale: `python bench/console.py`.

1. Pages at 1,000 devices and 500 deployments: a real `continuum server` (embedded) and
   simulated heartbeat-only agents (tests/harness/simulated.py) in groups of ten (the
   reaction benchmark's: the demo's cam-1, cam-2, edge and cloud plus six idle cameras),
   five squeezenet deployments a group. Each page's full HTML as the server renders it
   (its first page: 100 devices, deployments or links, with the counts of every status)
   by httpx, logged in through the form, and its first contentful paint in headless
   Chromium (Playwright's Performance API reading, Debian's chromium).
2. Event to visible: with /console/deployments open, an operator drains a cam-1 (the
   whole of its group's `vision` runs there, and must move off it); the time from the
   `placement` event (its server time) to the page showing the new placement (a
   MutationObserver in the page, same machine clock). (A battery drop no longer moves it:
   since the source's own radio use counts against its battery, 40.5% leaves the app
   `degraded` where it is, and 42% to 90% keep it placed where it is.) Also from the
   drain's request to the page showing it (solving and rolling out included). And a
   cordon on /console/fleet (its first page of 100 devices, the cordoned one on it):
   from its `device` event to the row showing it. Each also split at the event's arrival
   in the page: the event bus's delivery, then the page's own refetch and swap.
3. Chart storage: the rows the sampler wrote, their size, and the charts page with the
   retention full (528 rows at the defaults, synthesised from a real row).
4. Heartbeats: bench/heartbeats.py's load (1,000 agents, 16 in flight) against a fresh
   server with the console's sampler off and nobody watching, with the default sampler
   and nobody watching, and with the fleet page open in Chromium (live); each several
   times, interleaved, medians reported, with the server's CPU time per heartbeat.

Everything shares this machine's cores: the figures are upper bounds of a lone server's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from heartbeats import ADMIN as HB_ADMIN  # noqa: E402
from machine import cpu_model  # noqa: E402
from reaction import GROUP, GROUP_LINKS  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from tests.harness.console import browser, login  # noqa: E402
from tests.harness.processes import ControlPlane, Launcher, clean_env  # noqa: E402
from tests.harness.simulated import SimulatedAgent, SimulatedFleet  # noqa: E402

ADMIN = "cnt_admin_bench_console_" + "c" * 16
PAGES = ["fleet", "topology", "deployments", "plans", "charts", "models"]
# deployment suffix -> (source in the group, requests/s): 5 a group, 500 at 1,000 devices
DEPLOYMENTS = {"vision": ("cam-1", 4.0), "vision-2": ("cam-2", 1.5),
               **{f"idle-{k}": (f"idle-{k}", 1.0) for k in range(3)}}  # fmt: skip
# A thousand enrolments from one address in a minute: past the server's abuse limits.
UNLIMITED_ENROLL = {"CONTINUUM_ENROLL_RATE_PER_SOURCE": "1000000",
                    "CONTINUUM_ENROLL_RATE_GLOBAL": "10000000"}  # fmt: skip
T = TypeVar("T")


class FleetThread:
    """The simulated fleet in an asyncio loop of its own thread (Playwright's sync API
    wants the main thread without a loop)."""

    def __init__(self, url: str, groups: int) -> None:
        self.url, self.groups = url, groups
        self.loop = asyncio.new_event_loop()
        self.fleet = SimulatedFleet(url, 1.0)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 1800) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    async def setup(self) -> None:
        import onnx

        from models_registry import randomize

        admin = {"Authorization": f"Bearer {ADMIN}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=600, headers=admin) as c:
            token = (await c.post("/v1/enrollment-tokens", json={})).json()["token"]

            async def enroll(g: int, role: str) -> None:
                tier, gflops, idle, busy, wh = GROUP[role]
                name = f"g{g:03d}-{role}"
                body: dict[str, Any] = {
                    "token": token, "name": name, "tier": tier, "gflops": gflops,
                    "memory_mb": 4096 if tier != "device" else 1024,
                    "power_w": {"idle": idle, "busy": busy},
                    "data_plane_url": f"http://{name}.sim:9000", "emulated": True,
                }  # fmt: skip
                if wh is not None:
                    body["battery"] = {"capacity_wh": wh, "level_pct": 90.0, "min_pct": 20.0}
                r = await c.post("/v1/agents/enroll", json=body, headers={"Authorization": ""})
                r.raise_for_status()
                links = []
                if role == "cam-2":
                    links = [{"peer": f"g{g:03d}-edge", "mbps": 50.0, "rtt_ms": 4.0}]
                self.fleet.add(SimulatedAgent(name, r.json()["device_id"], r.json()["agent_token"],
                                              90.0 if wh is not None else None, links))  # fmt: skip

            for g in range(self.groups):
                await asyncio.gather(*(enroll(g, role) for role in GROUP))
            light = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
            model = randomize(light / "light_squeezenet.onnx", seed=0)
            blob = model.SerializeToString()
            r = await c.post(
                "/v1/models", data={"id": "squeezenet"}, files={"file": ("sq.onnx", blob)}
            )
            r.raise_for_status()
            for g in range(self.groups):
                for a, b, mbps, rtt, jpm in GROUP_LINKS:
                    r = await c.post("/v1/links", json={"a": f"g{g:03d}-{a}", "b": f"g{g:03d}-{b}",
                                     "mbps": mbps, "rtt_ms": rtt, "j_per_mb": jpm})  # fmt: skip
                    r.raise_for_status()
                for dep, (source, rate) in DEPLOYMENTS.items():
                    spec = {"name": f"g{g:03d}-{dep}", "model": "squeezenet", "slo_ms": 1000,
                            "source": f"g{g:03d}-{source}", "rate_rps": rate}  # fmt: skip
                    r = await c.post("/v1/deployments", json=spec)
                    r.raise_for_status()
            await asyncio.sleep(5.0)  # past the loop's start-up grace (bench/reaction.py)
            for sim in self.fleet.sims.values():
                self.fleet.start(sim, stagger=True)
            deadline = time.monotonic() + 1200
            while time.monotonic() < deadline:
                r = await c.get("/v1/deployments")
                if all(d["status"] == "placed" for d in r.json()):
                    break
                await asyncio.sleep(2.0)
            else:
                raise RuntimeError("deployments not placed within 1200 s")
        await settle(self.fleet, 3.0, 300)

    def stop(self) -> None:
        self.run(self.fleet.stop(), 60)
        self.loop.call_soon_threadsafe(self.loop.stop)


async def settle(fleet: SimulatedFleet, hold_s: float, timeout_s: float) -> None:
    """Wait for a quiet fleet (no rollout in flight), but go on without one: on a shared,
    loaded machine a rollout of 1,000 agents may keep timing out, and the pages are worth
    measuring all the same (what follows says so)."""
    try:
        await fleet.quiet(hold_s, timeout_s=timeout_s)
    except RuntimeError as exc:
        print(f"going on without a quiet fleet: {exc}", file=sys.stderr)


def _stats(values: list[float]) -> tuple[str, str]:
    if not values:
        return "-", "-"
    return f"{statistics.median(values):.0f}", f"{max(values):.0f}"


def _login(client: httpx.Client) -> None:
    r = client.post("/console/login", data={"token": ADMIN})
    if r.status_code != 303:
        raise RuntimeError(f"console login failed: {r.status_code} {r.text[:200]}")


def server_renders(url: str, reps: int) -> dict[str, dict[str, Any]]:
    """Each page's full HTML: median and max ms, and its size."""
    out: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=120) as c:
        _login(c)
        for page in PAGES:
            times, size = [], 0
            for _ in range(reps):
                started = time.perf_counter()
                r = c.get(f"/console/{page}")
                times.append((time.perf_counter() - started) * 1000)
                r.raise_for_status()
                size = len(r.content)
            out[page] = {"ms": times, "kb": size / 1024}
    return out


_PAINT = """() => {
    const nav = performance.getEntriesByType('navigation')[0];
    // first-paint where the page painted no text or image first (an SVG chart)
    const fcp = performance.getEntriesByName('first-contentful-paint')[0]
        || performance.getEntriesByName('first-paint')[0];
    return {fcp: fcp ? fcp.startTime : null, load: nav.loadEventEnd,
            response: nav.responseEnd};
}"""


def _context(chromium: Any) -> Any:
    context = chromium.new_context()
    # This machine is shared and loaded: a slow page is a figure to report, not an error.
    context.set_default_timeout(120_000)
    return context


def browser_renders(chromium: Any, url: str, reps: int) -> dict[str, dict[str, list[float]]]:
    """First contentful paint and load of each page in Chromium, from navigation start."""
    out: dict[str, dict[str, list[float]]] = {}
    context = _context(chromium)
    page = context.new_page()
    login(page, url, ADMIN)
    for name in PAGES:
        fcp, load = [], []
        for _ in range(reps):
            started = time.perf_counter()
            page.goto(f"{url}/console/{name}", wait_until="load")
            waited = (time.perf_counter() - started) * 1000
            if waited > 5000:
                print(f"{name}: {waited:.0f} ms to load", file=sys.stderr)
            got = page.evaluate(_PAINT)
            if got["fcp"] is not None:
                fcp.append(got["fcp"])
            load.append(got["load"])
        out[name] = {"fcp": fcp, "load": load}
    context.close()
    return out


_WATCH = """([selector, attr, before]) => {
    window.__seen = null;
    const live = document.getElementById('live');
    new MutationObserver(() => {
        if (window.__seen) return;
        const row = document.querySelector(selector);
        if (row && row.getAttribute(attr) !== before) window.__seen = Date.now();
    }).observe(live, {childList: true, subtree: true, attributes: true});
}"""


def event_to_visible(
    chromium: Any, fleet: FleetThread, url: str, samples: int
) -> dict[str, list[float]]:
    """ms from the event's server time to the page showing its effect."""
    out: dict[str, list[float]] = {"placement": [], "placement delivered": [],
                                   "placement received to visible": [],
                                   "drain to visible": [], "device": [],
                                   "device received to visible": []}  # fmt: skip
    admin = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {ADMIN}"})
    context = _context(chromium)
    page = context.new_page()
    login(page, url, ADMIN, "deployments")
    page.wait_for_function("document.getElementById('live-status').textContent === 'live'")
    for g in range(samples):
        selector = f'tr[data-deployment="g{g:03d}-vision"]'
        before = page.get_attribute(selector, "data-placement")
        page.evaluate(_WATCH, [selector, "data-placement", before])
        triggered = time.time()
        admin.post(f"/v1/devices/g{g:03d}-cam-1/drain").raise_for_status()
        try:
            page.wait_for_function("window.__seen !== null", timeout=60_000)
        except Exception:
            print(f"g{g:03d}: no re-placement shown within 60 s", file=sys.stderr)
            continue
        seen = page.evaluate("window.__seen") / 1000.0
        out["drain to visible"].append((seen - triggered) * 1000)
        # The change may show before its own event arrives (an earlier event's refresh read
        # the committed plan): wait for the event, so every sample is matched to it.
        placed: list[dict[str, Any]] = []
        waited = time.monotonic() + 10.0
        while not placed and time.monotonic() < waited:
            log = page.evaluate("window.continuumConsole.log")
            placed = [e for e in log if e["kind"] == "placement" and (e["at"] or 0) >= triggered]
            if not placed:
                page.wait_for_timeout(50)
        if placed:
            out["placement"].append((seen - placed[0]["at"]) * 1000)
            out["placement delivered"].append(placed[0]["received"] - placed[0]["at"] * 1000)
            out["placement received to visible"].append(seen * 1000 - placed[0]["received"])
        else:
            kinds = [e["kind"] for e in log if (e["at"] or 0) >= triggered]
            print(
                f"g{g:03d}: shown, but no placement event within 10 s (saw {kinds});"
                f" {(seen - triggered) * 1000:.0f} ms from the trigger",
                file=sys.stderr,
            )
        fleet.run(settle(fleet.fleet, 1.0, 60))
    page.goto(f"{url}/console/fleet")
    page.wait_for_function("document.getElementById('live-status').textContent === 'live'")
    for g in range(samples):
        device = f"g{g:03d}-idle-5"
        selector = f'tr[data-device="{device}"]'
        page.evaluate(_WATCH, [selector, "data-state", "active"])
        triggered = time.time()
        admin.post(f"/v1/devices/{device}/cordon").raise_for_status()
        page.wait_for_function("window.__seen !== null", timeout=60_000)
        seen = page.evaluate("window.__seen") / 1000.0
        log = page.evaluate("window.continuumConsole.log")
        # This cordon's own event (a loaded machine's agents may flap: other devices' too).
        changed = [e for e in log if e["kind"] == "device" and e.get("target") == device
                   and (e["at"] or 0) >= triggered]  # fmt: skip
        if changed:
            out["device"].append((seen - changed[0]["at"]) * 1000)
            out["device received to visible"].append(seen * 1000 - changed[0]["received"])
        fleet.run(settle(fleet.fleet, 1.0, 60))
    context.close()
    admin.close()
    return out


def chart_storage(db: Path, url: str, chromium: Any, reps: int) -> dict[str, Any]:
    """Rows the sampler wrote and their size; then the charts page with the retention full
    (240 raw rows over the last hour and 288 coarse over 24 h, copies of a real row)."""
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from orchestrator.db.tables import ConsoleSample

    engine = create_engine(f"sqlite:///{db}")
    with Session(engine) as s:
        rows = s.scalar(select(func.count()).select_from(ConsoleSample)) or 0
        last = s.scalars(select(ConsoleSample).order_by(ConsoleSample.id.desc()).limit(1)).first()
        values = dict(last.values) if last is not None else {}
        row_bytes = len(json.dumps(values))
        now = datetime.now(UTC)
        for k in range(240):
            s.add(ConsoleSample(at=now - timedelta(seconds=15 * k + 1), resolution="raw",
                                values=values))  # fmt: skip
        for k in range(288):
            s.add(ConsoleSample(at=now - timedelta(hours=1, minutes=5 * k), resolution="coarse",
                                values=values))  # fmt: skip
        s.commit()
    engine.dispose()
    with httpx.Client(base_url=url, timeout=120) as c:
        _login(c)
        times = []
        for _ in range(reps):
            started = time.perf_counter()
            c.get("/console/charts", params={"hours": 24}).raise_for_status()
            times.append((time.perf_counter() - started) * 1000)
    context = _context(chromium)
    page = context.new_page()
    login(page, url, ADMIN)
    fcp = []
    for _ in range(reps):
        page.goto(f"{url}/console/charts?hours=24", wait_until="load")
        got = page.evaluate(_PAINT)
        if got["fcp"] is not None:
            fcp.append(got["fcp"])
    context.close()
    return {"rows_written": rows, "row_bytes": row_bytes, "full_ms": times, "full_fcp": fcp,
            "batteries_in_row": len(values.get("batteries") or {})}  # fmt: skip


def scale_run(args: argparse.Namespace) -> dict[str, Any]:
    groups = args.agents // len(GROUP)
    launcher = Launcher(env=clean_env())
    with tempfile.TemporaryDirectory(prefix="continuum-bench-console-") as data:
        env = {"CONTINUUM_DATA_DIR": data, "CONTINUUM_ADMIN_TOKEN": ADMIN,
               "CONTINUUM_HEARTBEAT_INTERVAL_S": "1", "CONTINUUM_SOLVER": "heuristic",
               "CONTINUUM_ROLLOUT_TIMEOUT_S": "30",
               "CONTINUUM_CONSOLE_SAMPLE_INTERVAL_S": "5", **UNLIMITED_ENROLL}  # fmt: skip
        fleet: FleetThread | None = None
        try:
            plane = ControlPlane(launcher, "server", env, Path(data) / "server.log",
                                 args=["--log-level", "warning"]).wait_ready()  # fmt: skip
            fleet = FleetThread(plane.url, groups)
            started = time.perf_counter()
            fleet.run(fleet.setup())
            print(f"{args.agents} agents, {groups * len(DEPLOYMENTS)} deployments placed in "
                  f"{time.perf_counter() - started:.0f} s", file=sys.stderr)  # fmt: skip
            time.sleep(12)  # a few chart samples
            result: dict[str, Any] = {"server": server_renders(plane.url, args.reps)}
            print(json.dumps({"server": result["server"]}), file=sys.stderr)
            with browser() as chromium:
                result["browser"] = browser_renders(chromium, plane.url, args.reps)
                print(json.dumps({"browser": result["browser"]}), file=sys.stderr)
                result["events"] = event_to_visible(chromium, fleet, plane.url, args.samples)
                print(json.dumps({"events": result["events"]}), file=sys.stderr)
                result["storage"] = chart_storage(
                    Path(data) / "continuum.db", plane.url, chromium, args.reps
                )
        finally:
            if fleet is not None:
                fleet.stop()
            launcher.stop_all()
    return result


def _cpu_s(pid: int) -> float:
    """The process's user + system CPU seconds (/proc/PID/stat), its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def heartbeat_run(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    """bench/heartbeats.py's load on a fresh server, the console: `off` (its sampler off,
    nobody watching), `idle` (the default sampler, nobody watching) or `open` (the
    default sampler and the fleet page open in Chromium, live). Besides the load's own
    figures, the server's CPU time per heartbeat answered (warm-up included): on a shared
    machine wall-clock rates swing with the neighbours' load, CPU time much less."""
    launcher = Launcher(env=clean_env())
    interval = "0" if mode == "off" else "15"
    with tempfile.TemporaryDirectory(prefix="continuum-bench-console-hb-") as data:
        env = {"CONTINUUM_DATA_DIR": data, "CONTINUUM_ADMIN_TOKEN": HB_ADMIN,
               "CONTINUUM_HEARTBEAT_INTERVAL_S": "60", "CONTINUUM_SOLVER": "ilp",
               "CONTINUUM_CONSOLE_SAMPLE_INTERVAL_S": interval, **UNLIMITED_ENROLL}  # fmt: skip
        with contextlib.ExitStack() as stack:
            stack.callback(launcher.stop_all)
            plane = ControlPlane(launcher, "server", env, Path(data) / "server.log",
                                 args=["--log-level", "warning"]).wait_ready()  # fmt: skip
            load = subprocess.Popen(
                [sys.executable, str(ROOT / "bench" / "heartbeats.py"), "--load", plane.url,
                 "--first", "0", "--agents", str(args.agents), "--concurrency", "16",
                 "--duration", str(args.hb_duration)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            stack.callback(load.kill)  # a no-op once it has exited
            assert load.stdin is not None and load.stdout is not None
            if load.stdout.readline().strip() != "ready":
                raise RuntimeError("the heartbeat load failed while enrolling")
            swaps = None
            if mode == "open":
                chromium = stack.enter_context(browser())
                page = _context(chromium).new_page()
                login(page, plane.url, HB_ADMIN)
                page.wait_for_function(
                    "document.getElementById('live-status').textContent === 'live'"
                )
            pid = plane.proc.popen.pid if plane.proc.popen is not None else 0
            cpu = _cpu_s(pid)
            load.stdin.write("go\n")
            load.stdin.flush()
            out: dict[str, Any] = json.loads(load.stdout.readline())
            cpu = _cpu_s(pid) - cpu
            if mode == "open":
                swaps = page.evaluate("window.continuumConsole.swaps")
    lat = sorted(out["latencies"])
    if not lat:
        raise RuntimeError("no heartbeat answered in the measured window")
    return {"per_s": len(lat) / out["wall_s"], "p50_ms": 1000 * statistics.median(lat),
            "p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))], "errors": out["errors"],
            "cpu_ms": 1000 * cpu / max(out["answered"], 1), "swaps": swaps,
            "load": os.getloadavg()[0]}  # fmt: skip


def heartbeat_table(args: argparse.Namespace) -> Table:
    """Each mode `--hb-reps` times, interleaved (off, idle, open, off, ...), then the
    median of each figure per mode."""
    runs: dict[str, list[dict[str, Any]]] = {}
    modes = args.hb_modes.split(",")
    for rep in range(args.hb_reps):
        for mode in modes:
            r = heartbeat_run(mode, args)
            runs.setdefault(mode, []).append(r)
            print(f"heartbeats {mode} #{rep + 1}: {json.dumps(r)}", file=sys.stderr)
    hb = Table(title=f"heartbeats, {args.agents} agents, 16 in flight, medians of "
                     f"{args.hb_reps} runs")  # fmt: skip
    for col in ("console", "heartbeats/s", "p50 ms", "p99 ms", "server CPU ms/heartbeat",
                "errors", "page swaps", "load 1 min"):  # fmt: skip
        hb.add_column(col, justify="right")
    label = {"off": "sampler off, not open", "idle": "sampler 15 s, not open",
             "open": "sampler 15 s, fleet page open"}  # fmt: skip

    def med(mode: str, key: str) -> float:
        return statistics.median(float(r[key] or 0) for r in runs[mode])

    for mode in modes:
        hb.add_row(label.get(mode, mode), f"{med(mode, 'per_s'):,.0f}",
                   f"{med(mode, 'p50_ms'):.1f}", f"{med(mode, 'p99_ms'):.1f}",
                   f"{med(mode, 'cpu_ms'):.3f}", f"{sum(r['errors'] for r in runs[mode])}",
                   "-" if mode != "open" else f"{med(mode, 'swaps'):.0f}",
                   f"{med(mode, 'load'):.1f}")  # fmt: skip
    return hb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=1000, help="a multiple of 10")
    parser.add_argument("--reps", type=int, default=5, help="renders of each page")
    parser.add_argument("--samples", type=int, default=5, help="re-placements and cordons")
    parser.add_argument(
        "--hb-modes",
        default="off,idle,open",
        help="heartbeat runs: off (sampler off), idle (default sampler, nobody watching),"
        " open (the fleet page open in Chromium)",
    )
    parser.add_argument("--hb-reps", type=int, default=3, help="runs of each mode")
    parser.add_argument("--hb-duration", type=float, default=10.0)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--skip-heartbeats", action="store_true")
    args = parser.parse_args()
    if args.agents < len(GROUP) or args.agents % len(GROUP):
        sys.exit(f"error: --agents: a multiple of {len(GROUP)}, got {args.agents}")
    console = Console(width=140)
    if not args.skip_scale:
        result = scale_run(args)
        deployments = args.agents // len(GROUP) * len(DEPLOYMENTS)
        table = Table(title=f"pages at {args.agents} devices, {deployments} deployments (ms)")
        for col in ("page", "KB", "server p50", "server max", "FCP p50", "FCP max",
                    "load p50", "load max"):  # fmt: skip
            table.add_column(col, justify="right")
        for page in PAGES:
            s, b = result["server"][page], result["browser"][page]
            table.add_row(page, f"{s['kb']:.0f}", *_stats(s["ms"]), *_stats(b["fcp"]),
                          *_stats(b["load"]))  # fmt: skip
        console.print(table)
        ev = Table(title="event to visible in an open page (ms)")
        for col in ("event", "samples", "p50", "max"):
            ev.add_column(col, justify="right")
        for kind, values in result["events"].items():
            ev.add_row(kind, str(len(values)), *_stats(values))
        console.print(ev)
        st = result["storage"]
        console.print(
            f"charts: the sampler wrote {st['rows_written']} rows; a row is {st['row_bytes']} "
            f"bytes ({st['batteries_in_row']} battery series); retention full (528 rows, "
            f"{528 * st['row_bytes'] / 1024:.0f} KB): charts page server p50/max "
            f"{'/'.join(_stats(st['full_ms']))} ms, "
            f"FCP p50/max {'/'.join(_stats(st['full_fcp']))} ms"
        )
    if not args.skip_heartbeats:
        console.print(heartbeat_table(args))
    load = os.getloadavg()
    console.print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; python "
        f"{platform.python_version()}; load average {load[0]:.1f} at the end"
    )


if __name__ == "__main__":
    main()
