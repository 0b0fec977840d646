"""The inputs of one simulation, checked whole before any work starts.

Everything the command line takes is turned into an `Inputs` here, or refused with an
`InputError` whose message names the option and the value: an unreadable trace, a link
or device that is not in the scenario, an unknown policy, a malformed profile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import solver
from simulate.errors import InputError
from simulate.profiles import BatteryProfile, Failure, parse_failure, parse_profile
from simulate.traces import Trace, read_trace

MAX_STEPS = 10_000_000  # a day at 10 ms steps; beyond that a run is a mistake
MAX_HOURS = 24.0 * 366
# What matters (docs/simulate.md): a traced bandwidth moves the scenario of now when it
# leaves +-5% of the figure in force there, a battery when it moves by half a point.
BANDWIDTH_STEP = 0.05
BATTERY_STEP_PCT = 0.5
ROLLOUT_S = 2.0  # continuum: from a decision to the new plan serving (make-before-break)
# How often an agent measures a link's bandwidth: its `probe_interval_s` default
# (agents/settings.py); what a control plane learns of a traced link (simulate/probes.py).
PROBE_S = 30.0

Link = tuple[str, str]


@dataclass(frozen=True)
class Inputs:
    scenario: dict[str, Any]  # scenario-v1, checked (its `previous` dropped)
    scenario_name: str
    policies: tuple[str, ...]
    hours: float
    step_s: float = 1.0
    seed: int = 0
    traces: dict[Link, Trace] = field(default_factory=dict)  # keyed as the scenario's link
    trace_files: dict[str, str] = field(default_factory=dict)  # "a~b" -> file, as given
    batteries: dict[str, BatteryProfile] = field(default_factory=dict)
    failures: tuple[Failure, ...] = ()
    bandwidth_step: float = BANDWIDTH_STEP
    battery_step_pct: float = BATTERY_STEP_PCT
    rollout_s: float = ROLLOUT_S
    time_limit_s: float = 10.0
    probe_s: float = PROBE_S

    @property
    def steps(self) -> int:
        return max(1, math.ceil(self.hours * 3600.0 / self.step_s - 1e-9))

    def described(self) -> dict[str, Any]:
        """The inputs as the report shows them."""
        return {
            "scenario": self.scenario_name,
            "policies": list(self.policies),
            "hours": self.hours,
            "step_s": self.step_s,
            "seed": self.seed,
            "traces": dict(self.trace_files),
            "batteries": {d: p.text for d, p in self.batteries.items()},
            "failures": [
                f"{f.device}@{f.start_s / 3600:g}"
                + ("" if math.isinf(f.end_s) else f":{(f.end_s - f.start_s) / 3600:g}")
                for f in self.failures
            ],
            "bandwidth_step": self.bandwidth_step,
            "battery_step_pct": self.battery_step_pct,
            "rollout_s": self.rollout_s,
            "probe_s": self.probe_s,
        }


def load_scenario_dict(path: Path) -> dict[str, Any]:
    """The raw scenario-v1 document of a file, checked by the solver's own parser."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read it ({exc})") from None
    try:
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError):
        raise InputError(f"{path}: not valid YAML or JSON") from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a scenario is a mapping (version, devices, ...)")
    raw.pop("previous", None)
    try:
        solver.parse_scenario(raw)
    except solver.ScenarioError as exc:
        raise InputError(str(exc)) from None
    return raw


def _link_of(scenario: dict[str, Any], a: str, b: str, option: str) -> Link:
    devices = {d["id"] for d in scenario["devices"]}
    for x in (a, b):
        if x not in devices:
            raise InputError(f"{option}: device {x!r} is not in the scenario")
    for lk in scenario.get("links", []):
        if {lk["a"], lk["b"]} == {a, b}:
            return (lk["a"], lk["b"])
    raise InputError(f"{option}: no link between {a} and {b} in the scenario")


def prepare(
    scenario: dict[str, Any],
    scenario_name: str,
    policies: Sequence[str],
    known_policies: Iterable[str],
    hours: float,
    traces: Sequence[str] = (),
    batteries: Sequence[str] = (),
    failures: Sequence[str] = (),
    step_s: float = 1.0,
    seed: int = 0,
    base: Path | None = None,
    probe_s: float = PROBE_S,
) -> Inputs:
    """Check every input and read every trace; InputError on the first bad one.
    `base`: the directory relative trace paths are read from (a sweep's spec)."""
    known = list(known_policies)
    if not policies:
        raise InputError("--policy: name at least one policy")
    for name in policies:
        if name not in known:
            raise InputError(f"--policy: unknown policy {name!r}; choose from {', '.join(known)}")
    if len(set(policies)) != len(policies):
        raise InputError("--policy: a policy is named twice")
    if not (0 < hours <= MAX_HOURS) or math.isnan(hours):
        raise InputError(f"--hours: must be more than 0 and at most {MAX_HOURS:g} (got {hours:g})")
    if not (0 < step_s <= hours * 3600.0) or math.isnan(step_s):
        raise InputError(f"--step: must be more than 0 s and at most the run (got {step_s:g})")
    if hours * 3600.0 / step_s > MAX_STEPS:
        raise InputError(f"--step: {hours * 3600.0 / step_s:.0f} steps; at most {MAX_STEPS}")
    if seed < 0:
        raise InputError(f"--seed: must be 0 or more (got {seed})")
    if not (0 < probe_s < math.inf):
        raise InputError(f"--probe: must be more than 0 s (got {probe_s:g})")
    read: dict[Link, Trace] = {}
    files: dict[str, str] = {}
    for spec in traces:
        link, eq, file = spec.partition("=")
        a, tilde, b = link.partition("~")
        if not eq or not tilde or not a or not b or not file:
            raise InputError(f"--trace {spec}: expected A~B=FILE (a link between devices A and B)")
        key = _link_of(scenario, a, b, f"--trace {spec}")
        if key in read:
            raise InputError(f"--trace {spec}: the link {a}~{b} has two traces")
        path = Path(file)
        if base is not None and not path.is_absolute():
            path = base / path
        read[key] = read_trace(path)
        files[f"{a}~{b}"] = file
    devices = {d["id"]: d for d in scenario["devices"]}
    profiles: dict[str, BatteryProfile] = {}
    for spec in batteries:
        device, eq, text = spec.partition("=")
        if not eq or not device:
            raise InputError(f"--battery {spec}: expected DEVICE=PROFILE, e.g. cam-1=solar:6-18:5W")
        if device not in devices:
            raise InputError(f"--battery {spec}: device {device!r} is not in the scenario")
        if devices[device].get("battery") is None:
            raise InputError(f"--battery {spec}: device {device} has no battery in the scenario")
        profiles[device] = parse_profile(device, text)
    fails = []
    for spec in failures:
        f = parse_failure(spec)
        if f.device not in devices:
            raise InputError(f"--fail {spec}: device {f.device!r} is not in the scenario")
        fails.append(f)
    return Inputs(
        scenario=scenario,
        scenario_name=scenario_name,
        policies=tuple(policies),
        hours=hours,
        step_s=step_s,
        seed=seed,
        traces=read,
        trace_files=files,
        batteries=profiles,
        failures=tuple(fails),
        probe_s=probe_s,
    )


__all__ = [
    "BANDWIDTH_STEP",
    "BATTERY_STEP_PCT",
    "PROBE_S",
    "ROLLOUT_S",
    "InputError",
    "Inputs",
    "Link",
    "load_scenario_dict",
    "prepare",
]
