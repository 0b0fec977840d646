"""Enrollment tokens (for agents) and operator API keys."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import ControlPlaneDep, Operator
from api.schemas import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRequest,
    EnrollmentTokenCreated,
    EnrollmentTokenInfo,
    EnrollmentTokenRequest,
)
from orchestrator import fleet

router = APIRouter(tags=["credentials"])


@router.post("/enrollment-tokens", status_code=status.HTTP_201_CREATED)
async def create_enrollment_token(
    body: EnrollmentTokenRequest, cp: ControlPlaneDep, actor: Operator
) -> EnrollmentTokenCreated:
    """A token an agent enrolls with; it expires, and may be single-use."""
    ttl = body.ttl_s if body.ttl_s is not None else cp.settings.enrollment_token_ttl_s
    row, secret = await cp.run_sync(fleet.create_enrollment_token, actor, ttl, body.single_use)
    return EnrollmentTokenCreated(
        id=row.id, token=secret, expires_at=row.expires_at, single_use=row.single_use
    )


@router.get("/enrollment-tokens")
async def list_enrollment_tokens(cp: ControlPlaneDep, _: Operator) -> list[EnrollmentTokenInfo]:
    rows = await cp.run_sync(fleet.list_enrollment_tokens)
    return [
        EnrollmentTokenInfo(
            id=r.id,
            expires_at=r.expires_at,
            single_use=r.single_use,
            uses=r.uses,
            created_by=r.created_by,
            created_at=r.created_at,
        )
        for r in rows
    ]


@router.delete("/enrollment-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_enrollment_token(token_id: int, cp: ControlPlaneDep, actor: Operator) -> None:
    await cp.run_sync(fleet.revoke_enrollment_token, actor, token_id)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: ApiKeyRequest, cp: ControlPlaneDep, actor: Operator
) -> ApiKeyCreated:
    """Another operator token. Its secret is shown once; only its hash is kept."""
    key, secret = await cp.run_sync(fleet.create_api_key, actor, body.name)
    return ApiKeyCreated(id=key.id, name=key.name, token=secret)


@router.get("/api-keys")
async def list_api_keys(cp: ControlPlaneDep, _: Operator) -> list[ApiKeyInfo]:
    keys = await cp.run_sync(fleet.list_api_keys)
    return [
        ApiKeyInfo(id=k.id, name=k.name, created_at=k.created_at, revoked_at=k.revoked_at)
        for k in keys
    ]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: int, cp: ControlPlaneDep, actor: Operator) -> None:
    await cp.run_sync(fleet.revoke_api_key, actor, key_id)
