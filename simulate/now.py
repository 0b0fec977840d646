"""The scenario of now as a scenario-v1 document: the run's scenario without the devices
that are down (and their links and apps), each pack at its level in the scenario, each
traced link at its figure of now (or at the agents' latest probe, for `measured`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from simulate.inputs import Link
from simulate.packs import Packs
from solver.costs import battery_budget_w
from solver.scenario import Device


class ScenarioNow:
    def __init__(self, base: dict[str, Any], packs: Packs) -> None:
        self.base, self.packs = base, packs
        # The last record of each pack's device and traced link, with its figure: handed
        # on as the very object it was while that figure stands. A re-plan compares the
        # scenario of now with older ones record by record (`orchestrator.replacement`),
        # and the same object is the same without a comparison of its fields.
        self._records: dict[Any, tuple[float, dict[str, Any]]] = {}
        self._devices = {d["id"]: d for d in base["devices"]}
        self._budgets: dict[str, tuple[float, float | None]] = {}  # device -> (level, W)

    def document(
        self,
        down: Collection[str],
        link_now: Mapping[Link, float],
        figures: Mapping[Link, float] | None = None,
    ) -> dict[str, Any]:
        packs, records = self.packs, self._records
        devices = []
        for d in self.base["devices"]:
            dev_id = d["id"]
            if dev_id in down:
                continue
            k = packs.index.get(dev_id)
            if k is not None:
                level = float(packs.in_scenario[k])
                kept = records.get(dev_id)
                if kept is None or kept[0] != level:
                    kept = records[dev_id] = (level, {**d, "battery": packs.battery_doc(dev_id)})
                d = kept[1]
            devices.append(d)
        links = []
        for lk in self.base.get("links", []):
            if lk["a"] in down or lk["b"] in down:
                continue
            key = (lk["a"], lk["b"])
            if key in link_now:
                mbps = (figures or link_now).get(key, link_now[key])
                kept = records.get(key)
                if kept is None or kept[0] != mbps:
                    kept = records[key] = (mbps, {**lk, "mbps": mbps})
                lk = kept[1]
            links.append(lk)
        apps = [
            a
            for a in self.base["apps"]
            if a["source"] not in down and a.get("sink", a["source"]) not in down
        ]
        return {**self.base, "devices": devices, "links": links, "apps": apps}

    def battery_limit(self, device: str, horizon_h: float) -> float | None:
        """What the pack of `device` pays for at its level in the scenario of now, by the
        cost model's own rule, made once per level: the engine asks whenever the plan's
        power on the device moves, and a validated device record per ask was a twentieth
        of a day of `neurosurgeon`."""
        level = float(self.packs.in_scenario[self.packs.index[device]])
        kept = self._budgets.get(device)
        if kept is None or kept[0] != level:
            doc = {**self._devices[device], "battery": self.packs.battery_doc(device)}
            kept = self._budgets[device] = (
                level, battery_budget_w(Device.model_validate(doc), horizon_h)
            )  # fmt: skip
        return kept[1]


__all__ = ["ScenarioNow"]
