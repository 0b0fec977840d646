"""Neighbour discovery (issue 17): which peers an agent probes, and the links it proposes.

An agent probes the other end of every link declared to it (even one no plan sends over,
at a low rate: agents/probes.py) and every device that carries the same `site` label, so
that it can propose a link to such a neighbour with the Mbit/s and RTT it measured. A
proposal waits for an operator (`POST /v1/links/proposals/{id}/accept|reject`) unless the
`link_proposals` setting is `accept-same-site`, which declares it at once. Either way the
decision is audited, and an accepted proposal is an ordinary declared link. One proposal
per pair: a new measurement updates a pending one; a rejected pair stays rejected (its
agents would otherwise propose it again every few seconds).

A probe needs a token the peer accepts though the two may share no deployment: the
peer's probe token, an HMAC keyed with the SHA-256 of the peer's agent token. The control
plane keeps that hash (never the token) and the peer can compute it from its own token,
so no new secret is stored, and a re-key changes it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from orchestrator import audit, fleet
from orchestrator.db.tables import Device, Link, LinkProposal
from orchestrator.errors import Conflict, Invalid, NotFound

SITE_LABEL = "site"
PROBE_CONTEXT = b"continuum-probe-v1"
POLICY_ACTOR = "policy:accept-same-site"


def probe_token(agent_token_hash: str) -> str:
    """The token a device's data plane accepts on `/v1/probe` from any agent."""
    return hmac.new(agent_token_hash.encode(), PROBE_CONTEXT, hashlib.sha256).hexdigest()


def _site(device: Device) -> str | None:
    site = (device.labels or {}).get(SITE_LABEL)
    return str(site) if site not in (None, "") else None


def probe_peers(session: Session, device_id: str) -> list[dict[str, Any]]:
    """The devices `device_id` should probe: every other end of a link declared to it,
    and every device of its site, each with how to reach it and its probe token."""
    me = session.get(Device, device_id)
    if me is None:
        raise NotFound(f"no device {device_id!r}")
    declared: set[str] = set()
    for link in session.scalars(select(Link).where(or_(Link.a == device_id, Link.b == device_id))):
        declared.add(link.b if link.a == device_id else link.a)
    site = _site(me)
    peers = []
    for device in session.scalars(select(Device).order_by(Device.id)):
        if device.id == device_id:
            continue
        same_site = site is not None and _site(device) == site
        if device.id in declared or same_site:
            peers.append({
                "device_id": device.id, "data_plane_url": device.data_plane_url,
                "token": probe_token(device.agent_token_hash),
                "declared": device.id in declared, "same_site": same_site,
            })  # fmt: skip
    return peers


def propose(session: Session, proposer: str, spec: dict[str, Any], policy: str) -> LinkProposal:
    """Store (or refresh) proposer's proposal of a link to spec["peer"], measured at
    spec["mbps"] and spec["rtt_ms"]; accepted at once under the accept-same-site policy."""
    peer_id = spec["peer"]
    me, peer = session.get(Device, proposer), session.get(Device, peer_id)
    if me is None:
        raise NotFound(f"no device {proposer!r}")
    if peer is None or peer_id == proposer:
        raise Invalid(f"peer: no other device {peer_id!r}", field="peer")
    site = _site(me)
    if site is None or _site(peer) != site:
        raise Invalid(f"peer: {peer_id!r} is not in this device's site ({site!r})", field="peer")
    lo, hi = (proposer, peer_id) if proposer < peer_id else (peer_id, proposer)
    if session.scalar(select(Link).where(Link.a == lo, Link.b == hi)) is not None:
        raise Conflict(f"a link between {lo!r} and {hi!r} is already declared")
    found = session.scalar(select(LinkProposal).where(LinkProposal.a == lo, LinkProposal.b == hi))
    if found is not None and found.state != "pending":
        return found
    if found is None:
        found = LinkProposal(
            a=lo, b=hi, proposer=proposer, site=site, mbps=spec["mbps"],
            rtt_ms=spec["rtt_ms"], state="pending", created_at=audit.now(),
        )  # fmt: skip
        session.add(found)
        session.flush()
        figures = {"id": found.id, "mbps": spec["mbps"], "rtt_ms": spec["rtt_ms"]}
        audit.record(session, proposer, "link.proposed", f"link:{lo}~{hi}", detail=figures)
    else:
        found.proposer, found.mbps, found.rtt_ms = proposer, spec["mbps"], spec["rtt_ms"]
    if policy == "accept-same-site":
        decide(session, POLICY_ACTOR, found.id, accept=True)
    return found


def proposals(session: Session) -> list[LinkProposal]:
    return list(session.scalars(select(LinkProposal).order_by(LinkProposal.id)))


def decide(session: Session, actor: str, proposal_id: int, *, accept: bool) -> LinkProposal:
    """Accept (declare the link, at the proposal's measured figures) or reject."""
    found = session.get(LinkProposal, proposal_id)
    if found is None:
        raise NotFound(f"no link proposal with id {proposal_id}")
    if found.state != "pending":
        raise Conflict(f"link proposal {proposal_id} is already {found.state}")
    if accept:
        link = fleet.declare_link(
            session, actor, {"a": found.a, "b": found.b, "mbps": found.mbps,
                             "rtt_ms": found.rtt_ms, "j_per_mb": 0.0}
        )  # fmt: skip
        found.link_id = link.id
    found.state = "accepted" if accept else "rejected"
    found.decided_by, found.decided_at = actor, audit.now()
    action = "link.proposal.accepted" if accept else "link.proposal.rejected"
    audit.record(session, actor, action, f"link:{found.a}~{found.b}", detail={"id": found.id})
    return found


def view(found: LinkProposal) -> dict[str, Any]:
    return {
        "id": found.id, "a": found.a, "b": found.b, "proposer": found.proposer,
        "site": found.site, "mbps": found.mbps, "rtt_ms": found.rtt_ms, "state": found.state,
        "created_at": found.created_at, "decided_by": found.decided_by,
        "decided_at": found.decided_at, "link_id": found.link_id,
    }  # fmt: skip
