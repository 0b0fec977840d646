"""The packs' looks (`reports`, `changes`, `switched_off`) skip the steps at which no level
can cross what they look for; each step's answer must be the one of looking at every pack."""

from __future__ import annotations

import random

import numpy as np
import pytest

from simulate.packs import REPORT_PCT, Packs
from simulate.profiles import parse_profile

STEP_PCT = 1.0


def _fleet(rng: random.Random, n: int) -> dict:
    devices = []
    for k in range(n):
        devices.append(
            {
                "id": f"d{k}",
                "power_w": {"idle": rng.choice([0.0, 0.5, 2.0, 6.0])},
                "battery": {
                    "capacity_wh": rng.choice([5.0, 50.0, 500.0]),
                    "level_pct": rng.choice([0.0, 3.0, 10.0, 10.05, 55.5, 100.0]),
                    "min_pct": rng.choice([0.0, 5.0, 10.0]),
                },
            }
        )
    return {"devices": devices}


class _Looked:
    """What looking at every pack every step finds (the rules `Packs` stands for)."""

    def __init__(self, packs: Packs) -> None:
        self.reported = np.floor(packs.level / REPORT_PCT)
        self.held = packs.level.copy()

    def step(self, packs: Packs, charging_changed: np.ndarray) -> tuple:
        level = packs.level
        now = np.floor(level / REPORT_PCT)
        report = set(np.flatnonzero(now != self.reported).tolist())
        report |= set(charging_changed.tolist())
        self.reported = now
        moved = np.flatnonzero(np.abs(level - self.held) >= STEP_PCT).tolist()
        self.held[moved] = level[moved]
        below = level < packs.min_pct
        flat = np.flatnonzero((level <= 0.0) | (~packs.up & below)).tolist()
        return report, set(moved), flat, int(np.count_nonzero(below))


@pytest.mark.parametrize("seed", range(6))
def test_each_look_finds_what_looking_at_every_pack_finds(seed: int) -> None:
    rng = random.Random(seed)
    scenario = _fleet(rng, 8)
    profiles = {
        "d0": parse_profile("d0", "solar:0.1-0.3:40W"),
        "d1": parse_profile("d1", "mains:0.2"),
    }
    packs = Packs(scenario, profiles)
    looked = _Looked(packs)
    dt = 5.0
    charge_times = sorted({t for p in profiles.values() for t in p.changes_at(0.5)})
    packs.set_charging(0.0)
    skipped = [0, 0, 0]
    for k in range(360):
        t = k * dt
        charging_changed = np.empty(0, dtype=int)
        if charge_times and charge_times[0] <= t:
            while charge_times and charge_times[0] <= t:
                charge_times.pop(0)
            charging_changed = packs.set_charging(t)
        want_report, want_moved, want_flat, want_dead = looked.step(packs, charging_changed)
        for j, quiet in enumerate(packs._quiet):
            skipped[j] += packs.advanced <= quiet
        off, dead = packs.switched_off()
        assert (off, dead) == (want_flat, want_dead), k
        down = frozenset(packs.ids[j] for j in off)
        up = np.array([d not in down for d in packs.ids], dtype=bool)
        if not np.array_equal(up, packs.up):
            packs.up = up
        # Asked again within the step (the engine does, for the packs below min_pct): the
        # devices up now.
        below = packs.level < packs.min_pct
        again = np.flatnonzero((packs.level <= 0.0) | (~packs.up & below)).tolist()
        assert packs.switched_off() == (again, want_dead), k
        reports = packs.reports(down, charging_changed)
        assert reports.keys() == {packs.ids[j] for j in want_report} - down, k
        changes = packs.changes(down, STEP_PCT)
        assert changes.keys() == {packs.ids[j] for j in want_moved} - down, k
        assert np.array_equal(packs.in_scenario, looked.held)
        if rng.random() < 0.05:  # the plan moves: one pack's power, or all
            if rng.random() < 0.5:
                packs.set_plan_w(rng.randrange(8), rng.choice([0.0, 1.0, 8.0]))
            else:
                packs.plan_w = np.array([rng.choice([0.0, 3.0]) for _ in range(8)])
        packs.advance(dt)
    assert all(skipped), skipped  # each look skipped steps (else nothing skipped is compared)


def test_a_pack_moving_by_a_hair_is_looked_at_the_step_it_crosses() -> None:
    # 1e-5 points a step: about 5,000 steps from 10.05 into the tenth below it.
    scenario = {
        "devices": [
            {
                "id": "d",
                "power_w": {"idle": 0.0},
                "battery": {"capacity_wh": 100.0 / 3600.0 / 1e-5, "level_pct": 10.05},
            }
        ]
    }
    packs = Packs(scenario, {})
    packs.plan_w = np.array([1.0])
    reported = np.floor(packs.level / REPORT_PCT)
    crossings = []
    for k in range(6000):
        now = np.floor(packs.level / REPORT_PCT)
        got = packs.reports(frozenset(), np.empty(0, dtype=int))
        assert bool(got) == bool(now[0] != reported[0]), k
        if got:
            crossings.append(k)
        reported = now
        packs.advance(1.0)
    assert len(crossings) == 1 and 4990 <= crossings[0] <= 5010
    assert packs.advanced - 1 <= packs._quiet[0] or packs._quiet[0] > 5010
