"""The reconcile leader's detect step at fleet scale: `python bench/detect.py`.

`--devices` devices beat once a second each; every tick (`--tick-s` apart) the ones that
beat since the last tick have a new heartbeat (the bench body, with its time). Two loops
detect on the same observations: one told nothing of what changed (it walks every alive
device, as the leader did before `orchestrator.detect_scope`), one told the devices that
changed, as the heartbeat mirror tells the leader. Both must fire the same triggers (a
few devices fall quiet, are lost, and come back, so both have some to fire). Reported: this
process's CPU time per tick of each, and per heartbeat.

`--code DIR` runs another checkout's loop (e.g. `git archive main` unpacked); one whose
observations cannot name the changed devices walks every device only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_code = sys.argv[sys.argv.index("--code") + 1] if "--code" in sys.argv else str(ROOT)
sys.path.insert(0, str(Path(_code).resolve()))

from orchestrator.reconcile import LoopConfig, Observation, Reconciler  # noqa: E402
from orchestrator.triggers import Trigger  # noqa: E402

# Whether this code's observations name the changed devices (`Observation.changed`).
_NAMES_CHANGES = "changed" in Observation.__dataclass_fields__


class _Metrics:
    def observe_step(self, step: str, seconds: float) -> None: ...

    def step_failed(self, step: str) -> None: ...

    def trigger(self, kind: str) -> None: ...

    def leader(self, is_leader: bool) -> None: ...

    def reaction(self, seconds: float) -> None: ...


def _loop() -> Reconciler:
    # No gateway call is made by detect(): the loop is never started.
    return Reconciler(None, LoopConfig(startup_grace_s=0.0), _Metrics())  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--tick-s", type=float, default=0.3)
    parser.add_argument("--ticks", type=int, default=60)
    parser.add_argument("--code", default=str(ROOT), help="the checkout whose loop runs")
    args = parser.parse_args()
    devices = [f"sim-{k:05d}" for k in range(args.devices)]
    meta = {d: {"battery_min_pct": None} for d in devices}
    quiet = set(devices[:: max(1, args.devices // 20)])  # fall quiet for a while, come back
    now = 1000.0
    beats: dict[str, dict[str, Any]] = {
        d: {"at": now, "battery_pct": 80.0, "utilization": 0.3, "free_memory_mb": 300.0,
            "partitions": {}, "desired_version": 0}
        for d in devices
    }  # fmt: skip
    every, changed_only = _loop(), _loop()
    cpu = {"every": 0.0, "changed": 0.0}
    fired: list[Trigger] = []
    per_tick = round(args.devices * args.tick_s)
    beaten = 0
    next_device = 0
    for tick in range(args.ticks + 1):
        changed: set[str] = set()
        if tick:
            now += args.tick_s
            silent = args.ticks // 3 <= tick < 2 * args.ticks // 3
            for _ in range(per_tick):
                device = devices[next_device]
                next_device = (next_device + 1) % len(devices)
                if silent and device in quiet:
                    continue
                beats[device] = {**beats[device], "at": now}
                changed.add(device)
            beaten += len(changed)
        view = dict(beats)  # the mirror hands out a copy of its dict each read
        results = []
        walks = [("every", every, None), ("changed", changed_only, changed)]
        for name, loop, told in walks if _NAMES_CHANGES else walks[:1]:
            extra = {"changed": None if told is None else frozenset(told)} if _NAMES_CHANGES else {}
            obs = Observation(now, view, {}, meta, {}, {}, **extra)
            started = time.process_time()
            results.append(loop.detect(obs))
            if tick:  # the first tick is the baseline of both
                cpu[name] += time.process_time() - started
        seen = [[(t.kind, t.target, t.reason) for t in r] for r in results]
        if len(seen) > 1 and seen[0] != seen[1]:
            raise SystemExit(f"tick {tick}: the two walks fired differently: {seen}")
        fired += results[0]
    kinds = {k: sum(1 for t in fired if t.kind == k) for k in sorted({t.kind for t in fired})}
    print(f"{args.devices:,} devices, {args.ticks} ticks {args.tick_s:g} s apart, "
          f"{beaten:,} heartbeats; triggers: {kinds}; code {args.code}")  # fmt: skip
    for name in ("every", "changed") if _NAMES_CHANGES else ("every",):
        print(
            f"  walk {name:>7}: {1000 * cpu[name] / args.ticks:7.2f} ms CPU a tick, "
            f"{1e6 * cpu[name] / beaten:6.2f} us a heartbeat"
        )
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
