"""Devices, enrollment, declared links and operator credentials (durable side only).

Every function takes the caller's Session and leaves committing to it, so an action and
its audit entry land together or not at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from orchestrator import audit, tokens
from orchestrator.db.tables import ApiKey, Device, EnrollmentToken, Link
from orchestrator.errors import Conflict, Invalid, NotFound, Unauthorized

DEVICE_STATES = ("active", "cordoned", "draining")


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns: they were stored in UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=audit.now().tzinfo)


# -- operator API keys -----------------------------------------------------------------------
def ensure_admin_key(session: Session, token: str) -> None:
    """Register the admin token (by hash) unless it already is.

    One insert that does nothing when the hash is there (PostgreSQL's `ON CONFLICT DO
    NOTHING`, SQLite's own): replicas starting together on one database all succeed. A
    look-up then an insert let two of them both find nothing, and the second's commit
    failed on the unique hash (a replica exited at start with a UniqueViolation)."""
    row = {
        "name": "admin",
        "token_hash": tokens.hash_token(token),
        "created_at": audit.now(),
        "role": "admin",
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = pg_insert(ApiKey).values(**row)
        session.execute(pg.on_conflict_do_nothing(index_elements=["token_hash"]))
    elif dialect == "sqlite":
        lite = sqlite_insert(ApiKey).values(**row)
        session.execute(lite.on_conflict_do_nothing(index_elements=["token_hash"]))
    else:  # engine.normalize_url admits these two only
        raise ValueError(f"unsupported database dialect {dialect!r}")


def operator_for(session: Session, token: str) -> ApiKey | None:
    key = session.scalar(select(ApiKey).where(ApiKey.token_hash == tokens.hash_token(token)))
    if key is None or key.revoked_at is not None:
        return None
    return key


def create_api_key(
    session: Session, actor: str, name: str, role: str = "operator"
) -> tuple[ApiKey, str]:
    if role not in tokens.ROLES:
        raise Invalid(f"role: must be one of {', '.join(tokens.ROLES)}", field="role")
    secret = tokens.new_token(tokens.API_KEY_PREFIX)
    key = ApiKey(name=name, token_hash=tokens.hash_token(secret), created_at=audit.now(), role=role)
    session.add(key)
    session.flush()
    audit.record(
        session, actor, "api_key.created", f"api_key:{key.id}", detail={"name": name, "role": role}
    )
    return key, secret


def list_api_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(session: Session, actor: str, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"no API key with id {key_id}")
    if key.revoked_at is None:
        key.revoked_at = audit.now()
        audit.record(session, actor, "api_key.revoked", f"api_key:{key_id}")
    return key


# -- enrollment ---------------------------------------------------------------------------------
def create_enrollment_token(
    session: Session, actor: str, ttl_s: float, single_use: bool
) -> tuple[EnrollmentToken, str]:
    secret = tokens.new_token(tokens.ENROLL_PREFIX)
    created = audit.now()
    row = EnrollmentToken(
        token_hash=tokens.hash_token(secret),
        expires_at=created + timedelta(seconds=ttl_s),
        single_use=single_use,
        uses=0,
        created_by=actor,
        created_at=created,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        actor,
        "enrollment_token.created",
        f"enrollment_token:{row.id}",
        detail={"single_use": single_use, "expires_at": row.expires_at.isoformat()},
    )
    return row, secret


def list_enrollment_tokens(session: Session) -> list[EnrollmentToken]:
    return list(session.scalars(select(EnrollmentToken).order_by(EnrollmentToken.id)))


def revoke_enrollment_token(session: Session, actor: str, token_id: int) -> None:
    row = session.get(EnrollmentToken, token_id)
    if row is None:
        raise NotFound(f"no enrollment token with id {token_id}")
    session.delete(row)
    audit.record(session, actor, "enrollment_token.revoked", f"enrollment_token:{token_id}")


def _claim_enrollment_token(session: Session, secret: str) -> EnrollmentToken:
    digest = tokens.hash_token(secret)
    row = session.scalar(select(EnrollmentToken).where(EnrollmentToken.token_hash == digest))
    if row is None:
        raise Unauthorized("unknown enrollment token")
    if _aware(row.expires_at) <= audit.now():
        raise Unauthorized("the enrollment token has expired; ask the operator for a new one")
    if row.single_use:
        # A conditional update: two agents racing on one single-use token, one wins.
        claimed = session.execute(
            update(EnrollmentToken)
            .where(EnrollmentToken.id == row.id, EnrollmentToken.uses == 0)
            .values(uses=1)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise Unauthorized("the enrollment token was single-use and is already used")
    else:
        row.uses += 1
    return row


def enroll(
    session: Session,
    request: dict[str, Any],
    agent_token: str | None = None,
    carbon: dict[str, Any] | None = None,
) -> tuple[Device, str, bool]:
    """Register (or re-register) a device; returns it, its new agent token, and whether
    it already existed. Re-enrolling rotates the agent token and keeps the device's state,
    but only for the device's own agent (`agent_token`, its current credential) or after
    an operator's re-key (`rekey`): an enrollment token alone must not take a device over.
    `carbon`: its carbon columns (`orchestrator.carbon.devices.enroll_carbon`), over the
    request's."""
    _claim_enrollment_token(session, request["token"])
    secret = tokens.new_token(tokens.AGENT_PREFIX)
    stamp = audit.now()
    device = session.get(Device, request["name"])
    existed = device is not None
    rekeyed = False
    if device is not None:
        own = agent_token is not None and tokens.same(
            tokens.hash_token(agent_token), device.agent_token_hash
        )
        if not own and device.rekey_at is None:
            raise Conflict(
                f"name: device {device.id!r} is already enrolled; re-enrolling it needs its "
                f"agent token (as 'Authorization: Bearer'), or an operator's "
                f"`POST /v1/devices/{device.id}/rekey` first",
                field="name",
            )
        rekeyed = not own
    battery = request.get("battery")
    power = request["power_w"]
    fields: dict[str, Any] = {
        "name": request["name"],
        "tier": request["tier"],
        "gflops": request["gflops"],
        "memory_mb": request["memory_mb"],
        "power_idle_w": power["idle"],
        "power_busy_w": power["busy"],
        "battery_capacity_wh": battery["capacity_wh"] if battery else None,
        "battery_min_pct": battery["min_pct"] if battery else 20.0,
        "grid_gco2_per_kwh": request.get("grid_gco2_per_kwh", 0.0),
        "embodied_kgco2e": request.get("embodied_kgco2e", 0.0),
        "lifetime_h": request.get("lifetime_h", 35040.0),
        "labels": dict(request.get("labels") or {}),
        "data_plane_url": request["data_plane_url"],
        "emulated": bool(request.get("emulated", False)),
        "agent_token_hash": tokens.hash_token(secret),
        "rekey_at": None,  # a re-key allows one re-enrollment
        "updated_at": stamp,
        **(carbon or {}),
    }
    if device is None:
        device = Device(id=request["name"], state="active", created_at=stamp, **fields)
        session.add(device)
    else:
        for key, value in fields.items():
            setattr(device, key, value)
    audit.record(
        session,
        f"agent:{device.id}",
        "device.reenrolled" if existed else "device.enrolled",
        f"device:{device.id}",
        detail={
            "tier": device.tier,
            "gflops": device.gflops,
            "memory_mb": device.memory_mb,
            "rekeyed": rekeyed,
        },
    )
    return device, secret, existed


def rekey_device(session: Session, actor: str, device_id: str) -> Device:
    """Allow one re-enrollment of the device without its agent token (an agent that lost
    its data directory, or a replaced machine). Its current token keeps working until then."""
    device = get_device(session, device_id)
    device.rekey_at = audit.now()
    device.updated_at = device.rekey_at
    audit.record(session, actor, "device.rekey_allowed", f"device:{device_id}")
    return device


def agent_token_hashes(session: Session) -> dict[str, str]:
    """Token hash -> device id, for the heartbeat path's in-memory cache."""
    rows = session.execute(select(Device.agent_token_hash, Device.id))
    return {digest: device_id for digest, device_id in rows}


def device_power_states(session: Session) -> dict[str, tuple[str, str]]:
    """Device id -> (tier, power provenance), for the heartbeat path's power checks."""
    rows = session.execute(select(Device.id, Device.tier, Device.power_provenance))
    return {device_id: (tier, provenance) for device_id, tier, provenance in rows}


def set_power_provenance(session: Session, device_id: str, provenance: str) -> None:
    """Record a device's power provenance (a heartbeat reported a change)."""
    device = session.get(Device, device_id)
    if device is not None:
        device.power_provenance = provenance


def device_for_token_hash(session: Session, digest: str) -> str | None:
    return session.scalar(select(Device.id).where(Device.agent_token_hash == digest))


# -- devices -------------------------------------------------------------------------------------
def list_devices(session: Session) -> list[Device]:
    return list(session.scalars(select(Device).order_by(Device.id)))


def get_device(session: Session, device_id: str) -> Device:
    device = session.get(Device, device_id)
    if device is None:
        raise NotFound(f"no device {device_id!r}")
    return device


def update_device(session: Session, actor: str, device_id: str, changes: dict[str, Any]) -> Device:
    device = get_device(session, device_id)
    # Carbon columns as resolved (orchestrator/carbon/devices.py), None included: a cleared
    # declared figure is None.
    for key, value in (changes.pop("carbon_columns", None) or {}).items():
        setattr(device, key, value)
    if "power_w" in changes and changes["power_w"] is not None:
        power = changes.pop("power_w")
        device.power_idle_w = power["idle"]
        device.power_busy_w = power["busy"]
        device.power_provenance = "declared"
    if "battery" in changes:
        # A partial battery merges into the one declared; null removes it.
        battery = changes.pop("battery")
        if not battery:
            device.battery_capacity_wh = None
        else:
            capacity = battery.get("capacity_wh") or device.battery_capacity_wh
            if capacity is None:
                raise Invalid(
                    f"battery.capacity_wh: device {device_id!r} has no battery yet; "
                    "give its capacity",
                    field="battery.capacity_wh",
                )
            device.battery_capacity_wh = capacity
            if battery.get("min_pct") is not None:
                device.battery_min_pct = battery["min_pct"]
    for key, value in changes.items():
        if value is not None:
            setattr(device, key, value)
    device.updated_at = audit.now()
    audit.record(session, actor, "device.updated", f"device:{device_id}", detail=_jsonable(changes))
    return device


def set_device_state(session: Session, actor: str, device_id: str, state: str) -> Device:
    if state not in DEVICE_STATES:
        raise Invalid(f"state: must be one of {', '.join(DEVICE_STATES)}", field="state")
    device = get_device(session, device_id)
    previous = device.state
    device.state = state
    device.updated_at = audit.now()
    audit.record(
        session,
        actor,
        f"device.{state}" if state != "active" else "device.uncordoned",
        f"device:{device_id}",
        detail={"from": previous},
    )
    return device


def delete_device(session: Session, actor: str, device_id: str) -> Device:
    device = get_device(session, device_id)
    session.execute(delete(Link).where(or_(Link.a == device_id, Link.b == device_id)))
    session.delete(device)
    audit.record(session, actor, "device.deleted", f"device:{device_id}")
    return device


# -- declared links -----------------------------------------------------------------------------
def declare_link(session: Session, actor: str, spec: dict[str, Any]) -> Link:
    a, b = spec["a"], spec["b"]
    if a == b:
        raise Invalid(f"b: a link joins two different devices (got {a!r} twice)", field="b")
    for end, ref in (("a", a), ("b", b)):
        if session.get(Device, ref) is None:
            raise Invalid(f"{end}: unknown device {ref!r}", field=end)
    lo, hi = (a, b) if a < b else (b, a)
    if session.scalar(select(Link).where(Link.a == lo, Link.b == hi)) is not None:
        raise Conflict(f"a link between {lo!r} and {hi!r} is already declared")
    link = Link(
        a=lo,
        b=hi,
        mbps=spec["mbps"],
        rtt_ms=spec["rtt_ms"],
        j_per_mb=spec.get("j_per_mb", 0.0),
        created_at=audit.now(),
    )
    session.add(link)
    session.flush()
    audit.record(session, actor, "link.declared", f"link:{lo}~{hi}", detail=_jsonable(spec))
    return link


def list_links(session: Session) -> list[Link]:
    return list(session.scalars(select(Link).order_by(Link.a, Link.b)))


def delete_link(session: Session, actor: str, link_id: int) -> None:
    link = session.get(Link, link_id)
    if link is None:
        raise NotFound(f"no declared link with id {link_id}")
    session.delete(link)
    audit.record(session, actor, "link.deleted", f"link:{link.a}~{link.b}")


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if isinstance(v, str | int | float | bool | dict)}
