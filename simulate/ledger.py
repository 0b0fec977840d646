"""What broke, where and for how long: each constraint a policy's plans broke over a run.

`violation_s` says how many constraint-seconds a policy broke, not which constraints: a
first-time user of the example fleet sees continuum break one for most of an hour and
wants to know which, on what, and from when. The ledger answers from the very verdicts
the score counts (`simulate.scoring.Verdicts`), keyed by the evaluator's constraint
family (`solver.Code`) and what it is about (an app, a device, or a link "a~b"); a
constraint counts as many times as the evaluator lists it (an app with two transfers
that have no route). So its seconds add up to `violation_s` (tests/simulate/test_ledger.py).

New verdicts (a whole evaluation) are read whole; then only the apps, devices and links
whose verdicts moved (`Verdicts.changed`): a policy that breaks many constraints flips
some at most steps of a day of the 200-device fleet, and a step must stay a fraction of a
millisecond (`bench/ledger.py` measures what the ledger adds to a run).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import solver
from simulate.scoring import Verdicts, unlisted
from solver.reasons import Code

Key = tuple[str, str]  # (constraint family, what it is about)
SLO, BATTERY, BANDWIDTH = Code.SLO, Code.BATTERY, Code.BANDWIDTH


@dataclass(slots=True)
class Broken:
    """One constraint over a run: the seconds it was broken (times the count it was
    listed), how many spells, from the start of the first to the end of the last."""

    seconds: float
    spells: int
    first_s: float
    last_s: float


def by_family(broken: Mapping[Key, Broken]) -> dict[str, float]:
    """Constraint-seconds by constraint family, most first."""
    out: dict[str, float] = {}
    for (code, _), b in broken.items():
        out[code] = out.get(code, 0.0) + b.seconds
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def broken_now(v: Verdicts) -> Counter[Key]:
    """The constraints `v` holds broken, each as many times as `v.rates` counts it."""
    return _counted(v, _read_all(v))


def _read_all(v: Verdicts) -> dict[tuple[str, Any], list[Key]]:
    """What each app, device and link of `v` holds broken, those that hold any."""
    return {s: found for s in _subjects(v) if (found := _broken_of(v, s))}


def _counted(v: Verdicts, of: Mapping[tuple[str, Any], list[Key]]) -> Counter[Key]:
    out: Counter[Key] = Counter(v.unlisted)
    for found in of.values():
        out.update(found)
    return out


def _subjects(v: Verdicts) -> list[tuple[str, Any]]:
    """Every app, device and link `v` judges, as `Verdicts.changed` names them."""
    return [
        *(("app", a) for a in v.records),
        *(("device", d) for d in v.battery_over.keys() | v.device_fixed.keys()),
        *(("traced", key) for key in v.link_over),
        *(("link", k) for k in v.link_fixed),
    ]


def _broken_of(v: Verdicts, subject: tuple[str, Any]) -> list[Key]:
    """What `v` holds broken of one app, device or link (a key as many times as it counts)."""
    tag, of = subject
    if tag == "app":
        rec = v.records.get(of)
        if rec is None:
            return []
        # An app's SLO across a traced link is `app_over`'s, not its record's.
        flips = of in v.app_links
        out = [(r.code.value, of) for r in rec.violations if not (flips and r.code == SLO)]
        return [*out, (SLO.value, of)] if v.app_over.get(of) else out
    if tag == "device":
        out = [(code.value, of) for code in v.device_fixed.get(of, ())]
        return [*out, (BATTERY.value, of)] if v.battery_over.get(of) else out
    if tag == "traced":
        return [(BANDWIDTH.value, f"{of[0]}~{of[1]}")] if v.link_over.get(of) else []
    return [(BANDWIDTH.value, v.link_names[of])] if v.link_fixed.get(of) else []


def broken_in(ev: solver.Evaluation) -> Counter[Key]:
    """The constraints a whole evaluation lists broken, keyed as `broken_now` keys them."""
    assert ev.scenario is not None
    out: Counter[Key] = Counter()
    for app, rec in ev.records.items():
        out.update((r.code.value, app) for r in rec.violations)
    for device, found in ev.device_violations.items():
        out.update((r.code.value, device) for r in found)
    for k, r in ev.link_violations.items():
        link = ev.scenario.links[k]
        out[(r.code.value, f"{link.a}~{link.b}")] += 1
    out.update(unlisted(ev))
    return out


class Ledger:
    """The broken constraints of a run's steps (`step`), then each one's figures
    (`close`)."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self._read: Verdicts | None = None
        self._of: dict[tuple[str, Any], list[Key]] = {}  # what each subject holds broken
        self._open: dict[Key, tuple[int, int]] = {}  # key -> (count, since step)
        self._done: dict[Key, Broken] = {}

    def step(self, k: int, v: Verdicts | None) -> None:
        """Step `k` is scored on `v` (None: on nothing broken). New verdicts are read
        whole; the same ones, only what moved since (`Verdicts.changed`)."""
        if v is not self._read:
            self._read = v
            self._of = {} if v is None else _read_all(v)
            counts: Counter[Key] = Counter() if v is None else _counted(v, self._of)
            if v is not None:
                v.changed.clear()
            for key in self._open.keys() | counts.keys():
                self._set(key, counts.get(key, 0), k)
        elif v is not None and v.changed:
            for subject in v.changed:
                now, was = _broken_of(v, subject), self._of.get(subject, [])
                if now == was:
                    continue  # flipped and back, or moved and broken as before
                if now:
                    self._of[subject] = now
                else:
                    del self._of[subject]
                delta: dict[Key, int] = dict.fromkeys(was, 0)
                for key in was:
                    delta[key] -= 1
                for key in now:
                    delta[key] = delta.get(key, 0) + 1
                opened = self._open
                for key, d in delta.items():
                    if d:
                        self._set(key, opened[key][0] + d if key in opened else d, k)
            v.changed.clear()

    def _set(self, key: Key, n: int, k: int) -> None:
        """From step `k`, `key` counts `n` times."""
        was = self._open.get(key)
        if (was[0] if was is not None else 0) == n:
            return
        if was is not None:
            done = self._done[key]
            done.seconds += was[0] * (k - was[1]) * self.dt
            done.last_s = k * self.dt
        elif (b := self._done.get(key)) is None:
            self._done[key] = Broken(0.0, 1, k * self.dt, k * self.dt)
        else:
            b.spells += 1
        if n:
            self._open[key] = (n, k)
        else:
            del self._open[key]

    def close(self, steps: int) -> dict[Key, Broken]:
        """Each constraint broken over the `steps` of the run, most seconds first."""
        for key in list(self._open):
            self._set(key, 0, steps)
        return dict(sorted(self._done.items(), key=lambda kv: (-kv[1].seconds, kv[0])))


__all__ = ["Broken", "Key", "Ledger", "broken_in", "broken_now", "by_family"]
