"""Carbon shown whole: operational and embodied, per inference and per hour, per device
and per deployment, read off the evaluator's own per-device costs (scenario-v1's carbon
term, split in its two parts), and the payback of a plan that uses more hardware.

Per inference on device d (the contract's carbon term):
    operational = joules paid by d / 3.6e6 * d.grid_gco2_per_kwh
    embodied    = compute seconds on d * d.embodied_kgco2e * 1000 / (d.lifetime_h * 3600)
Per hour, each times rate_rps * 3600. The sum over devices is the plan's carbon_g.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from solver import Evaluation, Scenario


@dataclass(frozen=True, slots=True)
class Split:
    operational_g: float = 0.0
    embodied_g: float = 0.0

    @property
    def total_g(self) -> float:
        return self.operational_g + self.embodied_g

    def __add__(self, other: Split) -> Split:
        return Split(self.operational_g + other.operational_g, self.embodied_g + other.embodied_g)

    def scaled(self, k: float) -> Split:
        return Split(self.operational_g * k, self.embodied_g * k)


@dataclass(frozen=True, slots=True)
class DeviceCarbon:
    device: str
    per_hour: Split
    inferences_per_h: float  # of the deployments that compute or send on it
    embodied_kgco2e: float  # the whole device's, for payback
    computes: bool  # hosts some work (not only sends): its hardware is used

    @property
    def per_inference(self) -> Split:
        return self.per_hour.scaled(1.0 / self.inferences_per_h if self.inferences_per_h else 0)


@dataclass(frozen=True, slots=True)
class DeploymentCarbon:
    app: str
    rate_rps: float
    per_inference: Split
    by_device: dict[str, Split]  # per inference

    @property
    def per_hour(self) -> Split:
        return self.per_inference.scaled(self.rate_rps * 3600.0)


@dataclass(frozen=True, slots=True)
class CarbonReport:
    devices: list[DeviceCarbon]
    deployments: list[DeploymentCarbon]
    per_hour: Split = field(default_factory=Split)

    def used_devices(self) -> dict[str, float]:
        """Devices that compute something in the plan -> their whole embodied kgCO2e."""
        return {d.device: d.embodied_kgco2e for d in self.devices if d.inferences_per_h > 0}


def breakdown(scenario: Scenario, evaluation: Evaluation) -> CarbonReport:
    devices = {d.id: d for d in scenario.devices}
    per_device: dict[str, Split] = {d: Split() for d in devices}
    rate_on: dict[str, float] = dict.fromkeys(devices, 0.0)
    computes: set[str] = set()
    deployments: list[DeploymentCarbon] = []
    for app_id, record in evaluation.records.items():
        cost, rate = record.cost, record.app.rate_rps
        by_device: dict[str, Split] = {}
        for d in set(cost.joules) | set(cost.compute_s):
            dev = devices[d]
            op = cost.joules.get(d, 0.0) / 3.6e6 * dev.grid_gco2_per_kwh
            seconds = cost.compute_s.get(d, 0.0)
            emb = seconds * dev.embodied_kgco2e * 1000.0 / (dev.lifetime_h * 3600.0)
            by_device[d] = Split(op, emb)
            per_device[d] = per_device[d] + by_device[d].scaled(rate * 3600.0)
            rate_on[d] += rate * 3600.0
            if seconds > 0:
                computes.add(d)
        total = sum(by_device.values(), Split())
        deployments.append(DeploymentCarbon(app_id, rate, total, by_device))
    rows = [
        DeviceCarbon(d, per_device[d], rate_on[d], devices[d].embodied_kgco2e, d in computes)
        for d in devices
        if per_device[d].total_g > 0 or rate_on[d] > 0
    ]
    return CarbonReport(rows, deployments, sum((r.per_hour for r in rows), Split()))


@dataclass(frozen=True, slots=True)
class Payback:
    """A plan against a reference plan: the embodied carbon of the hardware it uses that the
    reference does not, and the hours of service after which its operational saving has
    repaid it. `hours` None: it saves nothing, so it never pays back; 0: no extra hardware."""

    extra_embodied_kg: float
    saving_g_per_h: float
    hours: float | None


def payback(candidate: CarbonReport, reference: CarbonReport) -> Payback:
    used, ref_used = candidate.used_devices(), reference.used_devices()
    extra_kg = sum(kg for d, kg in used.items() if d not in ref_used)
    saving = reference.per_hour.operational_g - candidate.per_hour.operational_g
    if extra_kg <= 0:
        return Payback(0.0, saving, 0.0)
    if saving <= 0:
        return Payback(extra_kg, saving, None)
    return Payback(extra_kg, saving, extra_kg * 1000.0 / saving)
