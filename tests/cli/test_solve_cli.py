"""`continuum solve` and `continuum check`, run as a person runs them: in a subprocess."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from solver import Code
from solver.generate import generate
from solver.plan import PlanDoc

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "factory-line.yaml"
SCRIPT = Path(sys.executable).parent / "continuum"
SOLVER_NAMES = ["ilp", "heuristic", "all-device", "all-cloud", "neurosurgeon"]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The installed console script (`pip install -e .`), else the same app via -c."""
    if SCRIPT.exists():
        cmd = [str(SCRIPT)]
    else:
        cmd = [sys.executable, "-c", "from cli.main import main; main()"]
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def base() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    return raw


def assert_bad_input(result: subprocess.CompletedProcess[str], *names: str) -> None:
    """Exit 2, one `error: ` line naming each of `names`, nothing on stdout."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for name in names:
        assert name in lines[0], (name, lines[0])


# -- happy paths -------------------------------------------------------------------------------
def test_solve_prints_tables_for_people() -> None:
    result = run("solve", EXAMPLE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for app in base()["apps"]:
        assert app["id"] in out
    for title in ("apps", "devices", "links"):
        assert title in out
    # Segment chains and cascade stages, then the status line with the proven bound.
    assert "@cloud-gpu" in out and "mobilenetv2@" in out
    assert "optimal  solver ilp  objective" in out and "bound" in out
    assert "(gap 0.00%)" in out  # proven optimal: the bound is the objective


def test_solve_json_is_exactly_a_plan_document() -> None:
    result = run("solve", EXAMPLE, "--json")
    assert result.returncode == 0, result.stderr
    doc = PlanDoc.model_validate(json.loads(result.stdout))
    assert doc.status.value == "optimal" and doc.solver == "ilp"
    assert {a.id for a in doc.apps} == {a["id"] for a in base()["apps"]}
    assert all(a.slo_met for a in doc.apps)


@pytest.mark.parametrize("name", ["all-device", "all-cloud", "neurosurgeon"])
def test_a_baseline_that_breaks_constraints_still_prints_its_plan(name: str) -> None:
    result = run("solve", EXAMPLE, "--solver", name, "--json")
    assert result.returncode == 0, result.stderr
    doc = PlanDoc.model_validate(json.loads(result.stdout))
    assert doc.solver == name
    assert len(doc.apps) == len(base()["apps"])
    assert (doc.status.value == "infeasible") == bool(doc.violations)


def test_compare_prints_one_row_per_solver() -> None:
    result = run("solve", EXAMPLE, "--compare")
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    # Two tables, one row per solver each: the comparison, then carbon with payback.
    assert [row.split("│")[1].strip() for row in rows] == SOLVER_NAMES * 2
    for header in ("objective", "energy J/s", "carbon g/h", "broken", "SLO misses", "solve s"):
        assert header in result.stdout
    assert "payback against all-device" in result.stdout
    payback = {row.split("│")[1].strip(): row.split("│")[-2].strip() for row in rows[5:]}
    assert payback["all-device"] == "(reference)"
    assert payback["ilp"].endswith("days)")


def test_solve_shows_carbon_per_deployment_and_device() -> None:
    result = run("solve", EXAMPLE)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "carbon per deployment" in out and "carbon per device" in out
    for header in ("op mg/inf", "emb mg/inf", "op g/h", "emb g/h", "total g/h"):
        assert header in out


def test_compare_json_is_a_list_of_rows() -> None:
    result = run("solve", EXAMPLE, "--compare", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["solver"] for r in rows] == SOLVER_NAMES
    ilp = rows[0]
    assert ilp["status"] == "optimal" and ilp["broken"] == 0 and ilp["slo_misses"] == 0
    all_device = rows[2]
    assert all_device["status"] == "infeasible"
    assert all_device["broken"] == len(all_device["violations"]) > 0
    # Carbon split in its two parts, adding up to the row's total; payback against
    # all-device for the others.
    carbon = ilp["carbon"]
    total = carbon["operational_g_per_h"] + carbon["embodied_g_per_h"]
    assert total == pytest.approx(ilp["carbon_g_per_h"], rel=1e-9)
    p = carbon["payback"]
    assert p["reference"] == "all-device" and "payback" not in all_device["carbon"]
    assert p["hours"] == pytest.approx(
        p["extra_embodied_kgco2e"] * 1000 / p["operational_saving_g_per_h"]
    )


def test_infeasible_scenario_exits_zero_with_a_reason(tmp_path: Path) -> None:
    raw = base()
    raw["apps"][4]["slo_ms"] = 1  # label-5 cannot answer in 1 ms anywhere
    path = tmp_path / "tight.yaml"
    path.write_text(yaml.safe_dump(raw))
    table = run("solve", path)
    assert table.returncode == 0, table.stderr
    assert "infeasible" in table.stdout and "reason: app label-5" in table.stdout
    doc = PlanDoc.model_validate(json.loads(run("solve", path, "--json").stdout))
    assert doc.status.value == "infeasible" and doc.apps == []
    assert doc.reason is not None and "label-5" in doc.reason


def test_shared_scenarios_solve_to_their_expected_optimum(shared_scenarios: list[Path]) -> None:
    for path in shared_scenarios:
        expected = json.loads(path.with_suffix(".expected.json").read_text())
        result = run("solve", path, "--json")
        assert result.returncode == 0, (path.name, result.stderr)
        doc = PlanDoc.model_validate(json.loads(result.stdout))
        assert doc.status.value == expected["status"], path.name
        if expected["objective"] is None:
            assert doc.apps == [] and doc.reason, path.name
        else:
            assert doc.objective == pytest.approx(expected["objective"], rel=1e-6), path.name


# -- check -------------------------------------------------------------------------------------
def test_check_accepts_the_plan_solve_wrote(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(run("solve", EXAMPLE, "--json").stdout)
    result = run("check", EXAMPLE, plan)
    assert result.returncode == 0, result.stderr
    objective = json.loads(plan.read_text())["objective"]
    assert f"objective {objective:.9g}" in result.stdout
    assert "every constraint holds" in result.stdout


def test_check_lists_violations_and_exits_one(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(run("solve", EXAMPLE, "--solver", "all-device", "--json").stdout)
    result = run("check", EXAMPLE, plan)
    assert result.returncode == 1
    violations = json.loads(plan.read_text())["violations"]
    printed = [line for line in result.stdout.splitlines() if line.startswith("violation: ")]
    assert printed == [f"violation: {v}" for v in violations]


def test_check_rejects_a_malformed_plan(tmp_path: Path) -> None:
    doc = json.loads(run("solve", EXAMPLE, "--json").stdout)
    doc["apps"][0]["segments"][0]["first"] = "stage9"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(doc))
    assert_bad_input(run("check", EXAMPLE, plan), "apps[0] (weld-1)", "stage9")


def test_check_rejects_a_plan_that_is_not_json(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("{ not json")
    assert_bad_input(run("check", EXAMPLE, plan), "plan.json", "not valid JSON")


# -- bad input: one test per error the contract lists, plus the command's own ---------------------
Edit = Callable[[dict[str, Any]], None]


def bad_scenario(tmp_path: Path, edit: Edit) -> Path:
    raw = copy.deepcopy(base())
    edit(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _dup_link(raw: dict[str, Any]) -> None:
    raw["links"].append({"a": "edge-a", "b": "cam-1", "mbps": 10, "rtt_ms": 1})


CONTRACT_ERRORS: dict[str, tuple[Edit, tuple[str, ...]]] = {
    "unknown top-level field": (lambda r: r.update(colour="red"), ("colour", "unknown field")),
    "unknown nested field": (
        lambda r: r["devices"][0].update(gpu=True),
        ("devices[0] (cam-1).gpu", "unknown field"),
    ),
    "unknown device in a link": (
        lambda r: r["links"][0].update(b="edge-z"),
        ("links[0].b", "edge-z"),
    ),
    "unknown model": (
        lambda r: r["apps"][0].update(model="resnet99"),
        ("apps[0] (weld-1).model", "resnet99"),
    ),
    "unknown source device": (
        lambda r: r["apps"][0].update(source="cam-9"),
        ("apps[0] (weld-1).source", "cam-9"),
    ),
    "link to itself": (lambda r: r["links"][0].update(b="cam-1"), ("links[0]", "cam-1")),
    "two links between one pair": (_dup_link, ("links[8]", "edge-a", "cam-1")),
    "duplicate device id": (
        lambda r: r["devices"].append(dict(r["devices"][0])),
        ("devices", "duplicate id", "cam-1"),
    ),
    "duplicate app id": (
        lambda r: r["apps"].append(dict(r["apps"][0])),
        ("apps", "duplicate id", "weld-1"),
    ),
    "exit after an unknown block": (
        lambda r: r["models"][0]["exits"][0].update(after="stage9"),
        ("models[0] (resnet50-ee)", "exits[0].after", "stage9"),
    ),
    "exit after the last block": (
        lambda r: r["models"][0]["exits"][0].update(after="fc"),
        ("models[0] (resnet50-ee)", "exits[0].after", "last block"),
    ),
    "exit probability above 1": (
        lambda r: r["models"][0]["exits"][0].update(prob=1.5),
        ("models[0] (resnet50-ee).exits[0].prob",),
    ),
    "cascade exit probability below 0": (
        lambda r: r["apps"][3]["cascade"][0].update(exit_prob=-0.1),
        ("apps[3] (ppe-4).cascade[0].exit_prob",),
    ),
    "zero rate": (lambda r: r["apps"][0].update(rate_rps=0), ("apps[0] (weld-1).rate_rps",)),
    "negative rate": (lambda r: r["apps"][5].update(rate_rps=-2), ("apps[5] (intrusion-6)",)),
    "negative overhead": (
        lambda r: r["devices"][2].update(overhead_ms=-1),
        ("devices[2] (cam-3).overhead_ms", "greater than or equal to 0"),
    ),
    "unknown sink device": (
        lambda r: r["apps"][3].update(sink="dash-9"),
        ("apps[3] (ppe-4).sink", "dash-9"),
    ),
    "unknown variant": (
        lambda r: r["apps"][2]["variants"].append("vgg19"),
        ("apps[2] (pallet-3).variants[3]", "vgg19"),
    ),
    "unknown cascade model": (
        lambda r: r["apps"][3]["cascade"][1].update(model="vit"),
        ("apps[3] (ppe-4).cascade[1].model", "vit"),
    ),
    "duplicate model id": (
        lambda r: r["models"].append(dict(r["models"][1])),
        ("models", "duplicate id", "resnet50"),
    ),
    "exit probability below 0": (
        lambda r: r["models"][0]["exits"][1].update(prob=-0.2),
        ("models[0] (resnet50-ee).exits[1].prob",),
    ),
    "min_accuracy above 1": (
        lambda r: r["apps"][2].update(min_accuracy=1.2),
        ("apps[2] (pallet-3).min_accuracy",),
    ),
    "zero link bandwidth": (
        lambda r: r["links"][7].update(mbps=0),
        ("links[7].mbps", "greater than 0"),
    ),
}


@pytest.mark.parametrize("mode", [(), ("--json",)], ids=["table", "json"])
@pytest.mark.parametrize("case", list(CONTRACT_ERRORS))
def test_contract_error_exits_2_with_one_line(
    tmp_path: Path, case: str, mode: tuple[str, ...]
) -> None:
    """Exit 2, one line naming the field or id, and no plan on standard output."""
    edit, names = CONTRACT_ERRORS[case]
    assert_bad_input(run("solve", bad_scenario(tmp_path, edit), *mode), *names)


def test_missing_file_exits_2(tmp_path: Path) -> None:
    assert_bad_input(run("solve", tmp_path / "nope.yaml"), "nope.yaml", "no such file")


def test_not_yaml_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("devices: [\n")
    assert_bad_input(run("solve", path), "broken.yaml", "not valid YAML")


def test_unknown_solver_exits_2() -> None:
    assert_bad_input(run("solve", EXAMPLE, "--solver", "simplex"), "--solver", "simplex")


def test_negative_time_limit_exits_2() -> None:
    assert_bad_input(run("solve", EXAMPLE, "--time-limit", "-5"), "--time-limit")


def test_threads_below_one_exits_2() -> None:
    assert_bad_input(run("solve", EXAMPLE, "--solver", "heuristic", "--threads", "0"), "--threads")


# -- --place-what-fits ---------------------------------------------------------------------------
def _cut_off_camera(tmp_path: Path) -> Path:
    """The example with cam-6's only link at 50 kbit/s: its 0.6 MB frames cannot reach
    the edge box in time for intrusion-6, and cam-6 cannot serve it alone."""
    raw = base()
    for link in raw["links"]:
        if "cam-6" in (link["a"], link["b"]):
            link["mbps"] = 0.05
    path = tmp_path / "cut-off.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_without_place_what_fits_one_app_that_cannot_fit_leaves_no_plan(tmp_path: Path) -> None:
    result = run("solve", _cut_off_camera(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    doc = PlanDoc.model_validate(json.loads(result.stdout))
    assert doc.status.value == "infeasible" and doc.apps == []
    assert doc.reason is not None and doc.reason.startswith("app intrusion-6:")
    assert "unplaced" not in json.loads(result.stdout)


def test_place_what_fits_prints_the_plan_for_the_rest_and_the_app_set_aside(
    tmp_path: Path,
) -> None:
    result = run("solve", _cut_off_camera(tmp_path), "--place-what-fits")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for app in base()["apps"][:5]:
        assert app["id"] in out
    assert "optimal  solver ilp  objective" in out
    aside = out[out.index("set aside (1 app)") :]
    rows = [line for line in aside.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and "│ intrusion-6 " in rows[0], aside
    cells = [cell.strip() for cell in rows[0].split("│")]
    assert cells[2] in {c.value for c in Code}, cells  # the reason's code
    assert cells[3].startswith("app intrusion-6: "), cells  # and its sentence, in full


def test_place_what_fits_json_is_a_plan_of_the_rest_plus_the_unplaced_apps(
    tmp_path: Path,
) -> None:
    scenario = _cut_off_camera(tmp_path)
    result = run("solve", scenario, "--place-what-fits", "--json")
    assert result.returncode == 0, result.stderr
    raw = json.loads(result.stdout)
    unplaced = raw.pop("unplaced")
    assert [u["id"] for u in unplaced] == ["intrusion-6"]
    assert set(unplaced[0]) == {"id", "code", "reason"}
    # The same reason, code and sentence, as the all-or-nothing plan gives.
    whole = PlanDoc.model_validate(json.loads(run("solve", scenario, "--json").stdout))
    assert unplaced[0]["code"] == whole.reason_code
    assert unplaced[0]["reason"] == whole.reason
    assert unplaced[0]["reason"].startswith("app intrusion-6:")
    doc = PlanDoc.model_validate(raw)
    assert doc.status.value == "optimal" and doc.reason is None
    assert [a.id for a in doc.apps] == [a["id"] for a in base()["apps"][:5]]
    # The plan is the contract's plan for the scenario without the app set aside: the
    # one evaluator finds it sound there, and names the missing app on the full scenario.
    plan = tmp_path / "plan.json"
    plan.write_text(result.stdout)
    rest = yaml.safe_load(scenario.read_text())
    rest["apps"] = [a for a in rest["apps"] if a["id"] != "intrusion-6"]
    rest_path = tmp_path / "rest.yaml"
    rest_path.write_text(yaml.safe_dump(rest))
    check = run("check", rest_path, plan)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"objective {doc.objective:.9g}" in check.stdout
    full = run("check", scenario, plan)
    assert full.returncode == 1 and "intrusion-6: not placed" in full.stdout


def test_place_what_fits_on_a_feasible_scenario_sets_nothing_aside() -> None:
    plain = json.loads(run("solve", EXAMPLE, "--json").stdout)
    result = run("solve", EXAMPLE, "--place-what-fits", "--json")
    assert result.returncode == 0, result.stderr
    raw = json.loads(result.stdout)
    assert raw.pop("unplaced") == []
    assert raw["objective"] == pytest.approx(plain["objective"], rel=1e-9)
    assert [a["segments"] or a["stages"] for a in raw["apps"]] == [
        a["segments"] or a["stages"] for a in plain["apps"]
    ]
    table = run("solve", EXAMPLE, "--place-what-fits")
    assert table.returncode == 0 and "set aside" not in table.stdout


def test_place_what_fits_on_a_generated_fleet_sets_aside_the_app_its_uplink_cannot_carry(
    tmp_path: Path,
) -> None:
    raw = generate(5, devices=300, apps=150, blocks=8)
    app = raw["apps"][7]
    # Its camera's uplinks cannot carry its frames, and the app may not stay on it; with
    # no SLO, bandwidth is the one thing that rules it out.
    for link in raw["links"]:
        if app["source"] in (link["a"], link["b"]):
            link["mbps"] = 0.001
    app["allowed_tiers"] = ["edge", "cloud"]
    app.pop("slo_ms", None)
    path = tmp_path / "fleet.json"
    path.write_text(json.dumps(raw))
    whole = json.loads(run("solve", path, "--solver", "heuristic", "--json").stdout)
    assert whole["status"] == "infeasible" and whole["apps"] == []
    result = run("solve", path, "--solver", "heuristic", "--place-what-fits", "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [u["id"] for u in doc["unplaced"]] == [app["id"]]
    assert doc["unplaced"][0]["code"] == "bandwidth"
    assert "bandwidth" in doc["unplaced"][0]["reason"]
    assert doc["status"] == "feasible"
    assert {a["id"] for a in doc["apps"]} == {a["id"] for a in raw["apps"]} - {app["id"]}


def test_place_what_fits_says_so_when_its_time_limit_stops_it(tmp_path: Path) -> None:
    # No solve finishes in a millisecond: the search stops after the first, infeasible,
    # plan, whose reason names the app it could not set aside in time.
    result = run(
        "solve", _cut_off_camera(tmp_path), "--solver", "heuristic", "--place-what-fits",
        "--json", "--time-limit", "0.001",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    raw = json.loads(result.stdout)
    assert raw["status"] == "infeasible" and raw["apps"] == [] and raw["unplaced"] == []
    assert raw["reason"].startswith("app intrusion-6:")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("note: --place-what-fits stopped"), lines
    assert "intrusion-6" in lines[0] and "--time-limit 0.001 s" in lines[0]


def test_place_what_fits_with_compare_exits_2() -> None:
    result = run("solve", EXAMPLE, "--place-what-fits", "--compare")
    assert_bad_input(result, "--place-what-fits", "--compare")
