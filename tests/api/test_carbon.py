"""Carbon on devices through HTTP: zones, archetypes, cloud instances and inventories
derived by Boavizta's own functions, declared figures beside them, and bad input."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from orchestrator.carbon.boavizta import Boavizta, default_python
from tests.api.conftest import Backend, beat, enroll, fleet_with_model, make_app, serve

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def reference() -> Any:
    """Boavizta's own answers, straight from its worker, to compare the API with."""
    if not default_python().exists():
        pytest.fail(f"no Boavizta environment at {default_python()}: run `make boavizta`")
    client = Boavizta()
    yield client
    client.close()


async def test_a_zone_and_an_archetype_give_boaviztas_figures_and_declared_ones_win(
    client: httpx.AsyncClient, reference: Boavizta
) -> None:
    phone_agent = await enroll(client, "phone-1", tier="device")
    r = await client.patch(
        "/v1/devices/phone-1",
        json={"zone": "FRA", "carbon": {"kind": "terminal", "archetype": "smartphone-default"}},
    )
    assert r.status_code == 200, r.text
    view = r.json()
    phone = reference.derive({"kind": "terminal", "archetype": "smartphone-default"})
    france = reference.catalog.zones["FRA"].gco2_per_kwh
    assert view["embodied_kgco2e"] == phone["embodied_kgco2e"]
    assert view["lifetime_h"] == phone["lifetime_h"]
    assert view["grid_gco2_per_kwh"] == france
    carbon = view["carbon"]
    assert carbon["embodied_provenance"] == "boavizta:smartphone-default"
    assert carbon["derived"]["embodied_kgco2e"] == phone["embodied_kgco2e"]
    assert carbon["zone"] == "FRA"

    # A declared figure wins, and the derived one stays beside it.
    r = await client.patch("/v1/devices/phone-1", json={"embodied_kgco2e": 60})
    assert r.status_code == 200, r.text
    view = r.json()
    assert view["embodied_kgco2e"] == 60
    assert view["carbon"]["embodied_provenance"] == "declared"
    assert view["carbon"]["declared"]["embodied_kgco2e"] == 60
    assert view["carbon"]["derived"]["embodied_kgco2e"] == phone["embodied_kgco2e"]
    # Clearing it falls back on the derived figure.
    view = (await client.patch("/v1/devices/phone-1", json={"embodied_kgco2e": None})).json()
    assert view["embodied_kgco2e"] == phone["embodied_kgco2e"]

    # The scenario the solver sees (live devices) carries the figures in force.
    await beat(client, phone_agent)
    scenario = (await client.get("/v1/scenario")).json()
    dev = next(d for d in scenario["devices"] if d["id"] == "phone-1")
    assert dev["embodied_kgco2e"] == phone["embodied_kgco2e"]
    assert dev["grid_gco2_per_kwh"] == france


async def test_an_agent_inventory_is_derived_at_enrollment(
    client: httpx.AsyncClient, reference: Boavizta
) -> None:
    inventory = {
        "kind": "server",
        "cpu_model": "Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz",
        "cpu_sockets": 2,
        "cpu_cores": 52,
        "ram_gb": 192,
        "disks": [{"kind": "ssd", "size_gb": 960}],
    }
    agent = await enroll(
        client, "edge-1", inventory=inventory, zone="DEU", power_provenance="profile"
    )
    # A heartbeat with no power report measures nothing: the profile's figures stay.
    await beat(client, agent, utilization=0.1)
    await anyio.sleep(0.5)  # a change of provenance is written in the background
    view = (await client.get("/v1/devices/edge-1")).json()
    carbon = view["carbon"]
    assert carbon["embodied_provenance"] == (
        "boavizta:platform_compute_medium(cpu=2xIntel Xeon Gold 6230R, ram=192GB, ssd=960GB)"
    )
    own = reference.derive(
        {
            "kind": "server",
            "cpu": {"name": "Intel Xeon Gold 6230R", "units": 2, "core_units": 26},
            "ram_gb": 192.0,
            "ssd_gb": 960.0,
            "hdd_gb": None,
            "gpu_units": None,
        }
    )
    assert view["embodied_kgco2e"] == own["embodied_kgco2e"]
    # Nothing measures its power: Boavizta's CPU profile replaces the stand-in.
    assert carbon["power_provenance"] == "profile"
    assert view["power_w"] == {
        "idle": round(own["power"]["idle"], 3),
        "busy": round(own["power"]["busy"], 3),
    }
    assert carbon["inventory"]["cpu_model"] == inventory["cpu_model"]


async def test_an_unknown_cpu_in_an_inventory_falls_back_on_the_core_count(
    client: httpx.AsyncClient,
) -> None:
    inventory = {"kind": "server", "cpu_model": "Imaginary CPU 9000", "cpu_cores": 8, "ram_gb": 16}
    await enroll(client, "edge-2", inventory=inventory)
    carbon = (await client.get("/v1/devices/edge-2")).json()["carbon"]
    assert (
        carbon["embodied_provenance"] == "boavizta:platform_compute_medium(cpu=8 cores, ram=16GB)"
    )


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"zone": "Frnace"}, "zone", ["unknown grid zone 'Frnace'", "nearest known: France"]),
        (
            {"carbon": {"kind": "terminal", "archetype": "smartfone"}},
            "carbon.archetype",
            ["smartphone-default"],
        ),
        (
            {"carbon": {"kind": "cloud", "provider": "aws", "instance": "p3.2xlarg"}},
            "carbon.instance",
            ["p3.2xlarge"],
        ),
        (
            {"carbon": {"kind": "server", "cpu_name": "Xeon Gold 6231X"}},
            "carbon.cpu_name",
            ["Intel Xeon Gold"],
        ),
        (
            {"embodied_kgco2e": 10_000},
            "embodied_kgco2e",
            ["10000 is not plausible", "expected 0 to 500 kgCO2e for tier device"],
        ),
        ({"lifetime_h": 3}, "lifetime_h", ["720 to 175200 hours"]),
    ],
)
async def test_bad_carbon_input_is_a_422_naming_it(
    client: httpx.AsyncClient, body: dict[str, Any], field: str, words: list[str]
) -> None:
    await enroll(client, "cam-1", tier="device")
    before = (await client.get("/v1/devices/cam-1")).json()
    r = await client.patch("/v1/devices/cam-1", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    detail = r.json()["detail"]
    assert detail.startswith(f"{field}: "), detail
    for w in words:
        assert w in detail, (w, detail)
    # Nothing half-written.
    assert (await client.get("/v1/devices/cam-1")).json() == before


async def test_an_enrollment_with_an_unknown_zone_is_refused(client: httpx.AsyncClient) -> None:
    token = (await client.post("/v1/enrollment-tokens", json={})).json()["token"]
    body = {
        "token": token,
        "name": "cam-9",
        "tier": "device",
        "gflops": 5,
        "memory_mb": 100,
        "power_w": {"idle": 1, "busy": 2},
        "data_plane_url": "http://cam-9:9000",
        "zone": "Atlantis",
    }
    r = await client.post("/v1/agents/enroll", json=body, headers={"Authorization": ""})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("zone: unknown grid zone 'Atlantis'")
    assert (await client.get("/v1/devices")).json() == []


async def test_the_plan_in_force_shows_its_carbon_and_the_metric_counts_it(
    client: httpx.AsyncClient, cnn_bytes: bytes
) -> None:
    assert (await client.get("/v1/plan/carbon")).status_code == 404
    await fleet_with_model(client, cnn_bytes)
    for device, grid, kg in (("cam-1", 300.0, 20.0), ("edge-1", 400.0, 300.0)):
        r = await client.patch(
            f"/v1/devices/{device}", json={"grid_gco2_per_kwh": grid, "embodied_kgco2e": kg}
        )
        assert r.status_code == 200, r.text
    body = {"name": "detect", "model": "cnn", "source": "cam-1", "rate_rps": 5}
    assert (await client.post("/v1/deployments", json=body)).status_code == 201
    solved = (await client.post("/v1/plan/solve", json={})).json()
    assert solved["in_force"] is True
    carbon = (await client.get("/v1/plan/carbon")).json()
    assert carbon["version"] == solved["version"]
    (dep,) = carbon["deployments"]
    (app,) = solved["plan"]["apps"]
    per_inference = dep["per_inference"]
    assert per_inference["total_g"] == pytest.approx(app["carbon_g"], rel=1e-9)
    assert per_inference["operational_g"] > 0 and per_inference["embodied_g"] > 0
    assert dep["per_hour"]["total_g"] == pytest.approx(app["carbon_g"] * 5 * 3600, rel=1e-9)
    assert carbon["per_hour"]["total_g"] == pytest.approx(
        sum(d["per_hour"]["total_g"] for d in carbon["devices"]), rel=1e-9
    )
    # The metric counts the plan's grams as time passes: a second scrape counts more.
    await anyio.sleep(0.05)
    first = _grams((await client.get("/metrics", headers={"Authorization": ""})).text)
    await anyio.sleep(0.2)
    second = _grams((await client.get("/metrics", headers={"Authorization": ""})).text)
    hosts = {seg["device"] for seg in app["segments"]}
    assert {(d, "embodied") for d in hosts} <= set(first)
    assert all(second[key] > first[key] > 0 for key in first if key[0] in hosts)


def _grams(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("continuum_carbon_grams_total{"):
            labels, value = line.split("} ")
            fields = dict(p.split("=") for p in labels.split("{")[1].split(","))
            out[(fields["device"].strip('"'), fields["kind"].strip('"'))] = float(value)
    return out


async def test_a_grid_series_change_is_a_trigger_and_the_next_plan_uses_it(
    backend: Backend, pool: ProcessPoolExecutor, cnn_bytes: bytes, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    series = tmp_path / "grid.csv"
    header = f"time,zone,gco2_per_kwh\n{(now - timedelta(hours=1)).isoformat()},DEU,400\n"
    series.write_text(header)
    # Heartbeats every second: the loop acts once every device has reported (its grace).
    settings = backend.settings.model_copy(
        update={"grid_series": series, "heartbeat_interval_s": 1.0}
    )
    app = make_app(replace(backend, settings=settings), pool)
    async with serve(app) as client:
        agents = await fleet_with_model(client, cnn_bytes)
        r = await client.patch("/v1/devices/edge-1", json={"zone": "DEU"})
        assert r.status_code == 200, r.text

        async def beating() -> None:
            while True:
                for agent in agents.values():
                    await beat(client, agent, battery_pct=80)
                await anyio.sleep(0.3)

        async with anyio.create_task_group() as tg:
            tg.start_soon(beating)
            body = {"name": "detect", "model": "cnn", "source": "cam-1", "rate_rps": 5}
            assert (await client.post("/v1/deployments", json=body)).status_code == 201
            assert (await client.post("/v1/plan/solve", json={})).json()["in_force"]
            planned = (await client.get("/v1/plan")).json()["version"]
            scenario = (await client.get("/v1/scenario")).json()
            edge = next(d for d in scenario["devices"] if d["id"] == "edge-1")
            assert edge["grid_gco2_per_kwh"] == 400
            # The forecast grows a row for now: the running control plane reads it again.
            series.write_text(header + f"{datetime.now(UTC).isoformat()},DEU,150\n")
            with anyio.fail_after(60):
                while True:
                    audit = (await client.get("/v1/audit")).json()
                    fired = [e for e in audit if e["action"] == "trigger.grid"]
                    if fired:
                        break
                    await anyio.sleep(0.3)
            tg.cancel_scope.cancel()
        assert fired[0]["target"] == "DEU"
        assert fired[0]["reason"] == "grid DEU: 400 -> 150 gCO2e/kWh"
        scenario = (await client.get("/v1/scenario")).json()
        edge = next(d for d in scenario["devices"] if d["id"] == "edge-1")
        assert edge["grid_gco2_per_kwh"] == 150
        # The trigger re-solved (one edge box: the plan is kept or replaced, either way
        # with the trigger's reason).
        outcomes = ("placement.decided", "placement.kept")

        async def resolved() -> list[dict[str, Any]]:
            audit = (await client.get("/v1/audit")).json()
            return [
                e for e in audit if e["action"] in outcomes and "grid DEU" in (e["reason"] or "")
            ]

        with anyio.fail_after(30):
            while not await resolved():
                await anyio.sleep(0.2)
        assert (await client.get("/v1/plan")).json()["version"] >= planned


async def test_what_an_operator_set_survives_a_reenrollment(client: httpx.AsyncClient) -> None:
    await enroll(client, "phone-2", tier="device")
    r = await client.patch(
        "/v1/devices/phone-2",
        json={
            "zone": "FRA",
            "carbon": {"kind": "terminal", "archetype": "smartphone-default"},
            "lifetime_h": 20_000,
        },
    )
    assert r.status_code == 200, r.text
    before = r.json()
    # The agent lost its credential: an operator allows one re-enrollment.
    assert (await client.post("/v1/devices/phone-2/rekey")).status_code == 200
    await enroll(client, "phone-2", tier="device")
    after = (await client.get("/v1/devices/phone-2")).json()
    for key in ("embodied_kgco2e", "lifetime_h", "grid_gco2_per_kwh"):
        assert after[key] == before[key], key
    assert after["lifetime_h"] == 20_000
    assert after["carbon"]["zone"] == "FRA"
    assert after["carbon"]["embodied_provenance"] == "boavizta:smartphone-default"


async def test_without_boavizta_a_derived_figure_is_a_503_saying_what_to_do(
    backend: Backend, pool: ProcessPoolExecutor, tmp_path: Path
) -> None:
    settings = backend.settings.model_copy(update={"boavizta_python": tmp_path / "no-python"})
    missing = Boavizta(settings.boavizta_python)  # not the session's working one
    app = make_app(replace(backend, settings=settings, boavizta=missing), pool)
    async with serve(app) as client:
        await enroll(client, "cam-1")  # declared figures need no Boavizta
        r = await client.patch("/v1/devices/cam-1", json={"zone": "FRA"})
        assert r.status_code == 503, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert "run `make boavizta`" in r.json()["detail"]
        assert (await client.get("/v1/devices/cam-1")).json()["carbon"]["zone"] is None
        # An agent's inventory is kept, not derived: the enrollment goes on.
        inventory = {"kind": "server", "cpu_cores": 4, "ram_gb": 8}
        await enroll(client, "edge-1", inventory=inventory, zone="FRA")
        carbon = (await client.get("/v1/devices/edge-1")).json()["carbon"]
        assert carbon["inventory"]["cpu_cores"] == 4
        assert carbon["embodied_provenance"] == "declared" and carbon["zone"] == "FRA"
