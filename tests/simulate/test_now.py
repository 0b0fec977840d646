"""The scenario of now: the run's scenario without the devices that are down, each pack at
its level, each traced link at its figure of now or at the agents' probe; the records
that did not change are handed on as the very objects they were."""

from __future__ import annotations

from typing import Any

import numpy as np

from simulate.now import ScenarioNow
from simulate.packs import Packs
from solver.generate import generate


def _plain(
    base: dict[str, Any],
    packs: Packs,
    down: frozenset[str],
    link_now: dict[tuple[str, str], float],
    figures: dict[tuple[str, str], float] | None,
) -> dict[str, Any]:
    """The document as the module's docstring says it, written out plainly."""
    devices = [
        {**d, "battery": packs.battery_doc(d["id"])} if d["id"] in packs.index else d
        for d in base["devices"]
        if d["id"] not in down
    ]
    links = []
    for lk in base["links"]:
        key = (lk["a"], lk["b"])
        if lk["a"] in down or lk["b"] in down:
            continue
        if key in link_now:
            lk = {**lk, "mbps": (figures or {}).get(key, link_now[key])}
        links.append(lk)
    apps = [a for a in base["apps"] if a["source"] not in down and a.get("sink") not in down]
    return {**base, "devices": devices, "links": links, "apps": apps}


def test_the_scenario_of_now_is_the_documented_one_step_after_step() -> None:
    base = generate(11, devices=40, apps=12, blocks=4)
    packs = Packs(base, {})
    assert len(packs.ids) >= 3
    traced = [(lk["a"], lk["b"]) for lk in base["links"][::3]]
    link_now = {key: 10.0 + k for k, key in enumerate(traced)}
    probes = {key: 5.0 + k for k, key in enumerate(traced[::2])}
    now = ScenarioNow(base, packs)
    rng = np.random.default_rng(3)
    cam = next(d["id"] for d in base["devices"] if d["tier"] == "device")
    downs = [frozenset(), frozenset(), frozenset({cam}), frozenset({cam}), frozenset()]
    last: dict[bool, dict[str, Any]] = {}
    for step, down in enumerate(downs * 2):
        moved = rng.random(len(packs.ids)) < 0.3
        packs.in_scenario[moved] -= rng.uniform(0.5, 2.0, size=int(moved.sum()))
        for key in traced[step % 3 :: 3]:
            link_now[key] = round(float(rng.uniform(1.0, 50.0)), 3)
        probes[traced[0]] = round(float(rng.uniform(1.0, 50.0)), 3)
        for figures in (None, probes):
            got = now.document(down, link_now, figures)
            want = _plain(base, packs, down, link_now, figures)
            assert got == want, (step, figures is None)
            before = last.get(figures is None)
            if before is not None and len(before["devices"]) == len(got["devices"]):
                # A pack whose level stood, and every device without one, is the record it was.
                for old, new in zip(before["devices"], got["devices"], strict=True):
                    if old == new:
                        assert old is new
            last[figures is None] = got
    assert packs.in_scenario.min() < 100.0
