"""Links remembered and discovered through HTTP (issue 17, item 7): `GET /v1/links` with
age, freshness and the solver's figure; the peers an agent probes; link proposals."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
import pytest

from agents.battery import open_battery
from agents.state import ServingState
from tests.api.conftest import Backend, agent_auth, beat, enroll, make_app, serve

pytestmark = pytest.mark.anyio


async def _propose(client: httpx.AsyncClient, agent: dict[str, Any], **body: Any) -> httpx.Response:
    return await client.post(
        f"/v1/agents/{agent['device_id']}/link-proposals", json=body, headers=agent_auth(agent)
    )


async def test_links_show_the_remembered_figure_its_age_and_what_the_solver_uses(
    client: httpx.AsyncClient,
) -> None:
    cam = await enroll(client, "cam-1")
    await enroll(client, "edge-1")
    r = await client.post("/v1/links", json={"a": "cam-1", "b": "edge-1", "mbps": 40, "rtt_ms": 8})
    assert r.status_code == 201, r.text
    (declared,) = (await client.get("/v1/links")).json()["declared"]
    assert declared["planned"] == {"mbps": 40, "rtt_ms": 8, "source": "declared"}

    await beat(client, cam, links=[{"peer": "edge-1", "mbps": 25, "rtt_ms": 9}])
    body = (await client.get("/v1/links")).json()
    (measured,) = body["measured"]
    assert (measured["mbps"], measured["measured_mbps"], measured["fresh"]) == (25, 25, True)
    assert 0 <= measured["age_s"] < 60
    assert measured["planned"] == {"mbps": 25, "rtt_ms": 9, "source": "measured"}
    assert body["declared"][0]["planned"] == measured["planned"]
    # A measurement above the declared capacity is planned at the capacity.
    await beat(client, cam, links=[{"peer": "edge-1", "mbps": 900, "rtt_ms": 9}])
    (measured,) = (await client.get("/v1/links")).json()["measured"]
    assert measured["measured_mbps"] == 900 and measured["mbps"] > 25
    assert measured["planned"]["mbps"] == 40


async def test_an_agent_probes_its_declared_ends_and_its_site_with_tokens_they_accept(
    client: httpx.AsyncClient,
) -> None:
    cam = await enroll(client, "cam-1", labels={"site": "lab"})
    edge = await enroll(client, "edge-1", labels={"site": "lab"})
    await enroll(client, "cloud-1")
    await enroll(client, "gw-1", labels={"site": "depot"})
    r = await client.post("/v1/links", json={"a": "cam-1", "b": "cloud-1", "mbps": 9, "rtt_ms": 40})
    assert r.status_code == 201, r.text

    r = await client.get("/v1/agents/cam-1/peers", headers=agent_auth(cam))
    assert r.status_code == 200, r.text
    peers = {p["device_id"]: p for p in r.json()["peers"]}
    assert set(peers) == {"cloud-1", "edge-1"}
    assert (peers["cloud-1"]["declared"], peers["cloud-1"]["same_site"]) == (True, False)
    assert (peers["edge-1"]["declared"], peers["edge-1"]["same_site"]) == (False, True)
    assert peers["edge-1"]["data_plane_url"] == "http://edge-1.local:9000"

    # The edge's agent accepts the token the camera was given for it, and only it.
    state = ServingState(battery=open_battery("none", 1.0, 2.0))
    state.allow_probe(edge["agent_token"])
    assert state.probe_ok(peers["edge-1"]["token"])
    assert not state.probe_ok(peers["cloud-1"]["token"])
    # An agent asks for its own peers only.
    other = await client.get("/v1/agents/cam-1/peers", headers=agent_auth(edge))
    assert other.status_code == 403, other.text


async def test_a_proposal_waits_for_an_operator_and_becomes_a_declared_link(
    client: httpx.AsyncClient,
) -> None:
    cam = await enroll(client, "cam-1", labels={"site": "lab"})
    edge = await enroll(client, "edge-1", labels={"site": "lab"})
    await enroll(client, "cam-2", labels={"site": "lab"})
    await enroll(client, "gw-1", labels={"site": "depot"})

    first = await _propose(client, cam, peer="edge-1", mbps=80, rtt_ms=3)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "pending"
    again = await _propose(client, edge, peer="cam-1", mbps=70, rtt_ms=4)  # the other end
    assert again.json()["id"] == first.json()["id"]
    (proposal,) = (await client.get("/v1/links/proposals")).json()
    assert (proposal["a"], proposal["b"], proposal["site"]) == ("cam-1", "edge-1", "lab")
    assert (proposal["mbps"], proposal["proposer"]) == (70, "edge-1")
    assert (await client.get("/v1/links")).json()["declared"] == []

    # Bad input names the field or the id.
    for body, field in (
        ({"peer": "gw-1", "mbps": 5, "rtt_ms": 1}, "peer"),  # another site
        ({"peer": "ghost", "mbps": 5, "rtt_ms": 1}, "peer"),
        ({"peer": "cam-1", "mbps": 5, "rtt_ms": 1}, "peer"),  # itself
        ({"peer": "edge-1", "mbps": -1, "rtt_ms": 1}, "body.mbps"),
    ):
        bad = await _propose(client, cam, **body)
        assert bad.status_code == 422, bad.text
        assert bad.json()["detail"].startswith(field), bad.json()
    missing = await client.post("/v1/links/proposals/424242/accept")
    assert missing.status_code == 404
    assert "424242" in missing.json()["detail"]
    assert (await client.post("/v1/links/proposals/0/accept")).status_code == 422
    # Operators decide; an agent cannot.
    denied = await client.post(
        f"/v1/links/proposals/{proposal['id']}/accept", headers=agent_auth(cam)
    )
    assert denied.status_code in (401, 403), denied.text

    accepted = await client.post(f"/v1/links/proposals/{proposal['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    view = accepted.json()
    assert (view["state"], view["decided_by"]) == ("accepted", "operator:admin")
    (link,) = (await client.get("/v1/links")).json()["declared"]
    assert (link["id"], link["a"], link["b"], link["mbps"]) == (
        view["link_id"],
        "cam-1",
        "edge-1",
        70,
    )
    assert (await client.post(f"/v1/links/proposals/{proposal['id']}/reject")).status_code == 409
    declared = await _propose(client, cam, peer="edge-1", mbps=80, rtt_ms=3)
    assert declared.status_code == 409, declared.text

    # A rejected pair stays rejected when its agents propose it again.
    other = (await _propose(client, cam, peer="cam-2", mbps=30, rtt_ms=2)).json()
    rejected = await client.post(f"/v1/links/proposals/{other['id']}/reject")
    assert rejected.json()["state"] == "rejected"
    assert (await _propose(client, cam, peer="cam-2", mbps=31, rtt_ms=2)).json() == {
        "id": other["id"], "state": "rejected",
    }  # fmt: skip
    actions = [e["action"] for e in (await client.get("/v1/audit")).json()]
    for action in ("link.proposed", "link.proposal.accepted", "link.declared",
                   "link.proposal.rejected"):  # fmt: skip
        assert action in actions, actions


async def test_the_accept_same_site_policy_declares_a_proposal_at_once(
    backend: Backend, pool: ProcessPoolExecutor
) -> None:
    backend.settings = backend.settings.model_copy(update={"link_proposals": "accept-same-site"})
    async with serve(make_app(backend, pool)) as client:
        cam = await enroll(client, "cam-1", labels={"site": "lab"})
        await enroll(client, "edge-1", labels={"site": "lab"})
        r = await _propose(client, cam, peer="edge-1", mbps=80, rtt_ms=3)
        assert r.json()["state"] == "accepted", r.text
        (proposal,) = (await client.get("/v1/links/proposals")).json()
        assert proposal["decided_by"] == "policy:accept-same-site"
        (link,) = (await client.get("/v1/links")).json()["declared"]
        assert (link["a"], link["b"], link["id"]) == ("cam-1", "edge-1", proposal["link_id"])


async def test_the_openapi_document_has_the_new_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in (
        ("/v1/links/proposals", "get"),
        ("/v1/links/proposals/{proposal_id}/accept", "post"),
        ("/v1/links/proposals/{proposal_id}/reject", "post"),
        ("/v1/agents/{device_id}/peers", "get"),
        ("/v1/agents/{device_id}/link-proposals", "post"),
    ):
        assert method in paths[path], path
        assert "404" in paths[path][method]["responses"], path
