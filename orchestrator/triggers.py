"""What makes the reconcile loop re-place: conditions observed in heartbeats.

Pure and clock-free: every observation carries its own time, so the loop, the tests and
the trace-driven benchmark drive the same code.

- Links: measured bandwidth and RTT are smoothed with an exponentially weighted moving
  average, and a trigger fires when the smoothed figure moves by more than `threshold`
  (relative) from the figure the link's apps were last placed with (a re-plan re-places
  the apps of the links that fired, and reads the others' figures of now without moving
  their apps: `commit(links)`). One noisy sample moves
  the average by `alpha` of its deviation only, so with alpha 0.5 and threshold 0.3 a
  single sample must be off by 60% before anything fires; a sustained change fires
  within a few samples. An RTT change counts only when it also moves by at least
  `rtt_floor_ms` (10 ms) in absolute terms: loopback and LAN RTTs of a few ms jitter by
  several ms under load, and no placement turns on a difference that small.
  A link also fires, once, when a sample falls below the plan in force's floor there
  (`link_floors`: what the plan sends over it, over `max_utilization`): a plan that fills
  95% of its allowed share breaks on a 5% drop, far inside the relative threshold. It
  fires again only after a sample at or above the floor, or when a new plan goes in force
  (even one with the same floor there: a trigger that fired while a rollout was under way
  was not answered by it): a link that no plan can relieve does not ask for a re-plan at
  every sample. A new plan is judged at once on the last sample of each link measured
  after its re-plan took its figures (the next one may be a probe interval away).
  A link the plan in force sends nothing over (no floor) fires only when a figure moved
  for the better (more bandwidth, less RTT): a slower link breaks nothing of that plan and
  makes no other plan better, so re-planning on it re-placed on drift alone
  (bench/replan_triggers.py: a quarter of a simulated day's re-plans). On a link it sends
  over, with the floors of `orchestrator.floors` (each app's SLO as well as the link's own
  limit) and what a fall costs the plan (`LinkCosts`), a fall that keeps the sample at or
  above the floor breaks nothing and makes no other plan better than by that cost: it
  fires only once the falls have cost the plan `cost_step` of its objective more than
  when they last fired (an RTT move past the threshold fires as before).
- Batteries: the drain rate is the slope of level over a sliding window; a trigger fires
  when the projected time to `min_pct` falls below the horizon (once, until it recovers
  above), when charging starts or stops, and when the level has moved by at least
  `level_step_pct` points from the level the device's apps were last placed with (the
  battery constraint is the usable energy above the minimum, so a step in level changes
  which plans are allowed even when the drain rate says nothing). As with links, a
  re-plan re-places the apps of the batteries that fired and measures those afresh
  (`commit(devices)`); a level that moved less is in the scenario of now, and every app
  is judged on it, but it moves no app (`orchestrator.replacement.what_fired`).
- Latency: a partition's state is reset when its prediction changes (a new plan), not on
  every re-solve, so a drift that no plan can fix fires once, not on every tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Trigger:
    kind: str  # link | battery | charging | device-lost | device-joined | ...
    target: str  # a device id, or "a~b" for a link
    reason: str  # for people: what moved, from what to what
    observed_at: float  # when the observation that fired arrived (seconds)


def suspects(
    beats: Mapping[str, dict[str, Any]], reporters: Iterable[str] | None = None
) -> dict[str, str]:
    """Devices a fresh heartbeat reports unreachable on the data plane (its next hop
    failed) that have not heartbeated since: peer -> why. They count as lost at once,
    rather than after `lost_after_intervals` heartbeats: the agent that reported fell back
    to answering degraded and waits for a plan without them. A report of a peer that
    heartbeats afterwards is void (the peer came back, or only one path to it broke: the
    link measurements speak to that)."""
    found: dict[str, str] = {}
    # `reporters`: the devices whose heartbeat may carry reports (the reconcile leader
    # keeps them rather than look through the fleet's). Sorted: a peer two devices report
    # takes the same reason whichever way the reports were found.
    names = beats if reporters is None else reporters
    for reporter in sorted(r for r in names if (beats.get(r) or {}).get("unreachable")):
        for report in beats[reporter]["unreachable"]:
            peer = report.get("peer")
            seen = beats.get(peer) if isinstance(peer, str) else None
            if peer == reporter or seen is None:
                continue  # not alive anyway
            if float(seen.get("at") or 0.0) < float(report.get("at") or 0.0):
                found.setdefault(
                    peer, f"device {peer} unreachable from {reporter}: {report.get('error', '')}"
                )
    return found


def link_name(a: str, b: str) -> str:
    lo, hi = sorted((a, b))
    return f"{lo}~{hi}"


# The triggers whose target's figures move apps: a link's (by `link_name`) and a battery's
# (by device id; ids hold no "~", so the two never meet in one set).
_MOVING = frozenset({"link", "battery", "charging"})


def fired_targets(fired: Iterable[Trigger]) -> frozenset[str]:
    """What among `fired` a re-plan re-places the apps of, and whose watch is then
    measured afresh: the links (by `link_name`, `LinkWatch.commit`) and the devices whose
    battery watch fired (`BatteryWatch.commit`)."""
    return frozenset(t.target for t in fired if t.kind in _MOVING)


@dataclass(slots=True)
class _LinkState:
    mbps: float
    rtt_ms: float
    planned_mbps: float
    planned_rtt_ms: float
    sample: float  # the last measurement's Mbit/s, unsmoothed
    since_commit: bool = False  # measured after the last re-plan took its figures


def link_floors(
    plan_links: Iterable[Mapping[str, Any]], scenario: Mapping[str, Any]
) -> dict[str, float]:
    """Link name -> the Mbit/s below which the plan breaks that link's bandwidth
    constraint: what it sends there (its utilization of the figure it was solved with)
    over the scenario's `max_utilization`. `plan_links`: the plan document's `links`;
    `scenario`: the scenario-v1 document it was solved from."""
    cap = float(scenario.get("max_utilization", 0.8))
    solved = {link_name(lk["a"], lk["b"]): float(lk["mbps"]) for lk in scenario.get("links", [])}
    out: dict[str, float] = {}
    for use in plan_links:
        name = link_name(use["a"], use["b"])
        mbps = solved.get(name)
        if mbps is not None and float(use["utilization"]) > 0:
            out[name] = float(use["utilization"]) * mbps / cap
    return out


@dataclass(frozen=True, slots=True)
class LinkCosts:
    """What a fall on each link the plan in force sends over can cost it
    (`orchestrator.floors`): link name -> (the Mbit/s the plan was solved with, the most its
    objective rises per unit of 1 / Mbit/s below that), and its objective then. A fall to
    m Mbit/s from m0 costs at most `rise * (1/m - 1/m0)`: only expected latency reads
    bandwidth, and a transfer's time grows at most as its route's slowest link's 1/m."""

    solved: Mapping[str, tuple[float, float]]
    objective: float

    def cost(self, name: str, mbps: float) -> float:
        m0, rise = self.solved.get(name, (0.0, 0.0))
        if rise <= 0.0 or mbps >= m0:
            return 0.0
        return rise * (1.0 / max(mbps, 1e-9) - 1.0 / m0)


@dataclass(slots=True)
class LinkWatch:
    alpha: float = 0.5
    threshold: float = 0.3
    rtt_floor_ms: float = 10.0
    _links: dict[str, _LinkState] = field(default_factory=dict)
    _floors: dict[str, float] = field(default_factory=dict)
    _under: set[str] = field(default_factory=set)  # links that fired below their floor
    # Link -> the floor of a plan that a fall under it put out of force, where the plan
    # now in force needs less there: back at that figure, the plan before fits again.
    _recover: dict[str, float] = field(default_factory=dict)
    # A fall on a link the plan in force sends over, at or above its floor, asks for a
    # re-plan once the falls have cost the plan this share of its objective since the
    # last that asked (`LinkCosts`; without them, every fall past `threshold` asks).
    cost_step: float = 0.01
    _given: Mapping[str, float] | None = None
    _costs: LinkCosts | None = None
    _cost: dict[str, float] = field(default_factory=dict)  # link -> what its fall costs
    _asked: float = 0.0  # the falls' cost when they last asked

    def set_floors(
        self, floors: Mapping[str, float], at: float, costs: LinkCosts | None = None
    ) -> list[Trigger]:
        """The floors of the plan now in force (`link_floors`, or `orchestrator.floors`:
        the SLOs of its apps as well, with `costs`, what a fall costs it), one mapping per
        plan: the
        same mapping again changes nothing, another one (a new plan in force) re-arms every
        link, even where its floor is the one before, and judges the last measurement of
        each link against it when that came after the re-plan took its figures: a plan
        that lands after a rollout may already be under a figure measured meanwhile, and
        the next measurement of that link may be a probe interval away."""
        # The loop hands over the same mapping every tick until the plan in force changes
        # (the gateway keeps it by plan version): identity, not equality, tells a new plan,
        # and a tick does not compare thousands of floors.
        if floors is self._given:
            return []
        self._given, self._costs = floors, costs
        self._cost.clear()
        self._asked = 0.0
        # A link under the floor of the plan going out needs less, or nothing, from the
        # plan coming in: its apps were moved off or set aside, and only a rise of 30%
        # would ask for them again. Back at that floor, the plan before fits there again
        # (over a day of the 200-device fleet a camera's app stayed set aside, its pack
        # breaking, after its uplink had come back: bench/RESULTS.md).
        recover = dict(self._recover)
        for name in self._under:
            if name in self._floors:
                recover[name] = self._floors[name]
        self._recover = {n: f for n, f in recover.items() if floors.get(n, 0.0) < f}
        self._floors = dict(floors)
        self._under.clear()
        fired = []
        for name, floor in sorted(self._floors.items()):
            s = self._links.get(name)
            # A figure the re-plan solved with is not judged again: under it, no plan
            # fitted, and asking again would only repeat that re-plan.
            if s is not None and s.since_commit and s.sample < floor:
                self._under.add(name)
                fired.append(_below(name, s.sample, floor, at))
        return fired

    @property
    def floors(self) -> Mapping[str, float]:
        """The floors of the plan in force: the links it sends over, and their Mbit/s."""
        return self._floors

    def smoothed(self, a: str, b: str) -> tuple[float, float] | None:
        s = self._links.get(link_name(a, b))
        return None if s is None else (s.mbps, s.rtt_ms)

    def observe(self, a: str, b: str, mbps: float, rtt_ms: float, at: float) -> Trigger | None:
        name = link_name(a, b)
        s = self._links.get(name)
        if s is None:
            # The first measurement is the baseline the plan is about to use.
            self._links[name] = _LinkState(mbps, rtt_ms, mbps, rtt_ms, mbps)
            return None
        s.sample, s.since_commit = mbps, True
        s.mbps += self.alpha * (mbps - s.mbps)
        s.rtt_ms += self.alpha * (rtt_ms - s.rtt_ms)
        moved_bw = abs(s.mbps - s.planned_mbps) / max(s.planned_mbps, 1e-9)
        # RTT in ms is small and jittery: it must move by the fraction (against at least
        # 2 ms) AND by rtt_floor_ms in absolute terms, so 3 -> 7 ms on a loaded loopback
        # does not fire while 4 -> 40 ms does.
        delta_rtt = abs(s.rtt_ms - s.planned_rtt_ms)
        moved_rtt = delta_rtt / max(s.planned_rtt_ms, 2.0)
        rtt_moved = moved_rtt > self.threshold and delta_rtt >= self.rtt_floor_ms
        # The floor is judged on the sample, not the average: below it the plan in force
        # breaks under the figure a re-plan will be judged on (the scenario of now), and
        # the re-plan that follows puts a plan that fits it in force, with lower floors.
        floor = self._floors.get(name)
        if floor is not None and mbps >= floor:
            self._under.discard(name)
        if self._costs is not None and floor is not None:
            self._cost[name] = self._costs.cost(name, mbps)
        back = self._recover.get(name)
        if back is not None and mbps >= back:
            del self._recover[name]
            reason = (
                f"link {name}: bandwidth {mbps:.1f} Mbit/s, back above the {back:.1f} "
                "Mbit/s a plan before needed there"
            )
            return Trigger("link", name, reason, at)
        if moved_bw <= self.threshold and not rtt_moved:
            if floor is None or mbps >= floor or name in self._under:
                return None
            self._under.add(name)
            return _below(name, mbps, floor, at)
        better = (s.mbps > s.planned_mbps and moved_bw > self.threshold) or (
            rtt_moved and s.rtt_ms < s.planned_rtt_ms
        )
        if not better and self._given is not None:
            # The link only got worse. Where the plan in force sends nothing, no app of it
            # breaks, and no other plan gains from a slower link. Where it sends, with its
            # floors and costs known (`orchestrator.floors`), a fall that keeps the sample
            # at or above the floor breaks nothing, and makes no other plan better than
            # by what it costs the plan in force (an RTT that grew may break an SLO: it
            # asks). The figure stays unanswered (not committed): should it fall under a
            # floor, cost a step more, or a plan that sends over the link go in force,
            # the next measurement asks.
            if floor is None:
                return None
            if self._costs is not None and not rtt_moved and mbps >= floor and not self._costly():
                return None
        if floor is not None and mbps < floor:
            self._under.add(name)  # this trigger's re-plan answers the floor as well
        reason = (
            f"link {name}: bandwidth {s.planned_mbps:.1f} -> {s.mbps:.1f} Mbit/s, "
            f"rtt {s.planned_rtt_ms:.1f} -> {s.rtt_ms:.1f} ms"
        )
        return Trigger("link", name, reason, at)

    def _costly(self) -> bool:
        """Whether the falls cost the plan in force `cost_step` of its objective more
        than when they last asked (each link at its last sample; a re-plan that kept the
        plan judged it at that cost)."""
        assert self._costs is not None
        total = sum(self._cost.values())
        if total > self._asked + self.cost_step * self._costs.objective:
            self._asked = total
            return True
        return False

    def commit(self, links: Collection[str] | None = None) -> None:
        """A re-plan took the figures of now. The links it re-placed the apps of (`links`,
        by `link_name`; None: every link) are measured from their figures of now; the
        others keep measuring from the figure their apps were placed with, so that a
        drift under the threshold, which moves nothing, adds up until it does."""
        for name, s in self._links.items():
            if links is None or name in links:
                s.planned_mbps, s.planned_rtt_ms = s.mbps, s.rtt_ms
            s.since_commit = False

    def forget(self, device: str) -> None:
        for name in [n for n in self._links if device in n.split("~")]:
            del self._links[name]
            self._under.discard(name)
            self._recover.pop(name, None)
            self._cost.pop(name, None)


def _below(name: str, mbps: float, floor: float, at: float) -> Trigger:
    reason = (
        f"link {name}: bandwidth {mbps:.1f} Mbit/s, below the {floor:.1f} Mbit/s "
        "the plan in force needs there"
    )
    return Trigger("link", name, reason, at)


@dataclass(slots=True)
class _BatteryState:
    samples: deque[tuple[float, float]]
    charging: bool | None = None
    low: bool = False
    planned_pct: float | None = None


@dataclass(slots=True)
class BatteryWatch:
    horizon_h: float = 8.0
    window_s: float = 30.0
    level_step_pct: float = 5.0
    _devices: dict[str, _BatteryState] = field(default_factory=dict)

    def projected_h(self, device: str, min_pct: float) -> float | None:
        """Hours until min_pct at the recent drain rate; None when not draining."""
        s = self._devices.get(device)
        if s is None or len(s.samples) < 2:
            return None
        (t0, l0), (t1, l1) = s.samples[0], s.samples[-1]
        if t1 <= t0 or l1 >= l0:
            return None
        rate_pct_per_h = (l0 - l1) / ((t1 - t0) / 3600.0)
        return max(l1 - min_pct, 0.0) / rate_pct_per_h

    def observe(
        self, device: str, level_pct: float, min_pct: float, charging: bool | None, at: float
    ) -> Trigger | None:
        s = self._devices.setdefault(device, _BatteryState(deque()))
        s.samples.append((at, level_pct))
        while len(s.samples) > 2 and at - s.samples[0][0] > self.window_s:
            s.samples.popleft()
        if charging is not None and s.charging is not None and charging != s.charging:
            s.charging = charging
            s.low = False
            what = "started" if charging else "stopped"
            return Trigger("charging", device, f"device {device}: charging {what}", at)
        s.charging = charging
        if s.planned_pct is None:
            s.planned_pct = level_pct  # the baseline the plan is about to use
        hours = self.projected_h(device, min_pct)
        if level_pct <= min_pct and not s.low:
            s.low = True
            reason = f"device {device}: battery {level_pct:.1f}% at or below min {min_pct:.0f}%"
            return Trigger("battery", device, reason, at)
        if hours is not None and hours < self.horizon_h and not s.low:
            s.low = True
            s.planned_pct = level_pct
            reason = (
                f"device {device}: battery {level_pct:.1f}% reaches {min_pct:.0f}% in "
                f"{hours:.2f} h, within the {self.horizon_h:g} h horizon"
            )
            return Trigger("battery", device, reason, at)
        if not s.low and abs(level_pct - s.planned_pct) >= self.level_step_pct:
            reason = (
                f"device {device}: battery {s.planned_pct:.1f}% -> {level_pct:.1f}% "
                f"(min {min_pct:.0f}%) since the plan in force was made"
            )
            s.planned_pct = level_pct
            return Trigger("battery", device, reason, at)
        if s.low and level_pct > min_pct and (hours is None or hours >= self.horizon_h):
            s.low = False
        return None

    def commit(self, devices: Collection[str] | None = None) -> None:
        """A re-plan took the levels of now. The devices it re-placed the apps of
        (`devices`; None: every device) are measured from their levels of now; the others
        keep measuring from the level their apps were placed with, so that a drift under
        the step, which moves nothing, adds up until it does (as `LinkWatch.commit`)."""
        for device, s in self._devices.items():
            if s.samples and (devices is None or device in devices):
                s.planned_pct = s.samples[-1][1]

    def forget(self, device: str) -> None:
        self._devices.pop(device, None)


@dataclass(slots=True)
class _LatencyState:
    count: int = 0
    sum_ms: float = 0.0
    ratio: float | None = None  # smoothed measured / predicted
    drifting: bool = False
    predicted_ms: float | None = None


@dataclass(slots=True)
class LatencyWatch:
    """Measured compute time per partition (from the agents' cumulative histograms in
    `Heartbeat.metrics`) against the plan's prediction. The ratio of the mean over the new
    requests since the last look is smoothed like a link figure and fires when it leaves
    [1 / (1 + threshold), 1 + threshold], once, until it comes back; `min_requests` new
    requests are needed before a look counts, so an idle partition never fires."""

    alpha: float = 0.5
    threshold: float = 0.5
    min_requests: int = 20
    _parts: dict[str, _LatencyState] = field(default_factory=dict)

    def observe(
        self, device: str, key: str, count: int, sum_ms: float, predicted_ms: float, at: float
    ) -> Trigger | None:
        s = self._parts.setdefault(key, _LatencyState(count, sum_ms))
        if s.predicted_ms != predicted_ms:  # a new plan predicts afresh
            s.predicted_ms, s.ratio, s.drifting = predicted_ms, None, False
        if count < s.count:  # the agent restarted: its counters did too
            s.count, s.sum_ms = count, sum_ms
            return None
        new = count - s.count
        if new < self.min_requests or predicted_ms <= 0:
            return None
        mean = (sum_ms - s.sum_ms) / new
        s.count, s.sum_ms = count, sum_ms
        ratio = mean / predicted_ms
        s.ratio = ratio if s.ratio is None else s.ratio + self.alpha * (ratio - s.ratio)
        out = s.ratio > 1.0 + self.threshold or s.ratio < 1.0 / (1.0 + self.threshold)
        if out and not s.drifting:
            s.drifting = True
            reason = (
                f"partition {key} on {device}: measured {mean:.1f} ms per request against "
                f"{predicted_ms:.1f} ms predicted (smoothed ratio {s.ratio:.2f})"
            )
            return Trigger("latency", device, reason, at)
        if not out:
            s.drifting = False
        return None

    def commit(self) -> None:
        """A new plan predicts afresh: forget the smoothed ratios."""
        for s in self._parts.values():
            s.ratio, s.drifting = None, False
