"""Validation of scenario-v1: every error the contract lists names its field or id."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from solver.scenario import ScenarioError, load_scenario, parse_scenario

BASE: dict[str, Any] = {
    "version": 1,
    "devices": [
        {
            "id": "cam-1",
            "tier": "device",
            "gflops": 20,
            "memory_mb": 512,
            "power_w": {"idle": 1.5, "busy": 4.0},
            "battery": {"capacity_wh": 10, "level_pct": 60, "min_pct": 20},
        },
        {
            "id": "edge-1",
            "tier": "edge",
            "gflops": 200,
            "memory_mb": 4000,
            "power_w": {"idle": 5, "busy": 20},
        },
    ],
    "links": [{"a": "cam-1", "b": "edge-1", "mbps": 40, "rtt_ms": 8, "j_per_mb": 0.6}],
    "models": [
        {
            "id": "m",
            "input_mb": 0.6,
            "accuracy": 0.7,
            "layers": [
                {"name": "b0", "gflops": 1, "params_mb": 1, "out_mb": 1},
                {"name": "b1", "gflops": 1, "params_mb": 1, "out_mb": 0.1},
            ],
            "exits": [{"after": "b0", "prob": 0.3, "gflops": 0.01, "params_mb": 0.1}],
        },
    ],
    "apps": [{"id": "a", "model": "m", "source": "cam-1", "rate_rps": 2, "slo_ms": 500}],
}


def mutated(fn: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    fn(raw)
    return raw


def test_defaults_follow_the_contract() -> None:
    s = parse_scenario(BASE)
    assert s.horizon_h == 8 and s.max_utilization == 0.8
    assert (s.objective.energy, s.objective.carbon, s.objective.latency) == (1, 0, 0)
    assert s.objective.migration == 0
    dev = s.devices[1]
    assert (dev.grid_gco2_per_kwh, dev.embodied_kgco2e, dev.lifetime_h) == (0, 0, 35040)
    app = s.apps[0]
    assert app.sink_id == "cam-1" and app.max_stages == 3
    assert app.allowed_tiers == ("device", "edge", "cloud")


def test_shared_scenarios_load(shared_scenarios: list[Any]) -> None:
    for path in shared_scenarios:
        assert load_scenario(path).version == 1


CASES = [
    ("unknown field", lambda r: r["devices"][0].update(colour="red"), "devices[0] (cam-1).colour"),
    ("unknown top field", lambda r: r.update(extra=1), "extra: unknown field"),
    ("unknown link device", lambda r: r["links"][0].update(b="nope"), "'nope'"),
    (
        "self link",
        lambda r: r["links"].append({"a": "cam-1", "b": "cam-1", "mbps": 1, "rtt_ms": 1}),
        "to itself",
    ),
    (
        "duplicate link",
        lambda r: r["links"].append({"a": "edge-1", "b": "cam-1", "mbps": 1, "rtt_ms": 1}),
        "second link",
    ),
    (
        "duplicate device",
        lambda r: r["devices"].append(copy.deepcopy(r["devices"][0])),
        "duplicate id 'cam-1'",
    ),
    ("duplicate app", lambda r: r["apps"].append(copy.deepcopy(r["apps"][0])), "duplicate id 'a'"),
    ("unknown model", lambda r: r["apps"][0].update(model="zzz"), "unknown model 'zzz'"),
    ("unknown source", lambda r: r["apps"][0].update(source="zzz"), "unknown device 'zzz'"),
    (
        "exit after unknown",
        lambda r: r["models"][0]["exits"][0].update(after="b9"),
        "unknown block 'b9'",
    ),
    (
        "exit after last",
        lambda r: r["models"][0]["exits"][0].update(after="b1"),
        "'b1' is the last block",
    ),
    ("prob above 1", lambda r: r["models"][0]["exits"][0].update(prob=1.5), "prob"),
    ("negative prob", lambda r: r["models"][0]["exits"][0].update(prob=-0.1), "prob"),
    ("zero rate", lambda r: r["apps"][0].update(rate_rps=0), "rate_rps"),
    ("negative rate", lambda r: r["apps"][0].update(rate_rps=-1), "rate_rps"),
    ("two kinds", lambda r: r["apps"][0].update(variants=["m"]), "exactly one of"),
    ("no kind", lambda r: r["apps"][0].pop("model"), "exactly one of"),
    ("bad id", lambda r: r["devices"][0].update(id="has space"), "devices[0]"),
    ("busy below idle", lambda r: r["devices"][0]["power_w"].update(busy=1), "busy"),
    ("bad version", lambda r: r.update(version=2), "version"),
    (
        "cascade exit_prob",
        lambda r: r["apps"][0].update(
            model=None, cascade=[{"model": "m", "exit_prob": 2}, {"model": "m"}]
        ),
        "exit_prob",
    ),
]


@pytest.mark.parametrize(("case", "mutate", "needle"), CASES, ids=[c[0] for c in CASES])
def test_errors_name_the_field(case: str, mutate: Any, needle: str) -> None:
    raw = mutated(mutate)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(raw)
    message = str(info.value)
    assert needle in message, message
    assert "\n" not in message


def test_file_errors_are_one_line(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\ndevices: [\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(bad)
    with pytest.raises(ScenarioError, match="no such file"):
        load_scenario(tmp_path / "missing.yaml")


def test_json_and_yaml_files_give_the_same_scenario(tmp_path: Any) -> None:
    raw = copy.deepcopy(BASE)
    raw["devices"][0]["embodied_kgco2e"] = 1e-5  # json writes 1e-05, which YAML 1.1 reads as text
    as_json = tmp_path / "fleet.json"
    as_json.write_text(json.dumps(raw))
    as_yaml = tmp_path / "fleet.yaml"
    as_yaml.write_text(yaml.safe_dump(raw))
    assert load_scenario(as_json) == load_scenario(as_yaml) == parse_scenario(raw)
    assert load_scenario(as_json).devices[0].embodied_kgco2e == 1e-5


def test_broken_json_is_a_one_line_error(tmp_path: Any) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "devices": [\n')
    with pytest.raises(ScenarioError, match="not valid YAML or JSON at line") as info:
        load_scenario(bad)
    assert "\n" not in str(info.value)
