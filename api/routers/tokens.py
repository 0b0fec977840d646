"""Enrollment tokens (for agents) and operator API keys."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, status

from api.deps import Admin, Operator, RowId, TokensDep
from api.schemas import (
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyRequest,
    EnrollmentTokenCreated,
    EnrollmentTokenInfo,
    EnrollmentTokenRequest,
)

router = APIRouter(tags=["credentials"])


@router.post("/enrollment-tokens", status_code=status.HTTP_201_CREATED)
async def create_enrollment_token(
    body: EnrollmentTokenRequest, tokens: TokensDep, actor: Operator
) -> EnrollmentTokenCreated:
    """A token an agent enrolls with; it expires, and may be single-use."""
    made = await tokens.create_enrollment_token(actor, body.ttl_s, body.single_use)
    return EnrollmentTokenCreated.model_validate(asdict(made))


@router.get("/enrollment-tokens")
async def list_enrollment_tokens(tokens: TokensDep, _: Operator) -> list[EnrollmentTokenInfo]:
    return [EnrollmentTokenInfo.model_validate(asdict(t)) for t in await tokens.enrollment_tokens()]


@router.delete("/enrollment-tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_enrollment_token(token_id: RowId, tokens: TokensDep, actor: Operator) -> None:
    await tokens.revoke_enrollment_token(actor, token_id)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_api_key(body: ApiKeyRequest, tokens: TokensDep, actor: Admin) -> ApiKeyCreated:
    """Another operator token, with its role: `viewer` (reads only), `operator` (reads
    and changes the fleet) or `admin` (also manages operator keys). Admins only. Its
    secret is shown once; only its hash is kept."""
    made = await tokens.create_api_key(actor, body.name, body.role)
    return ApiKeyCreated.model_validate(asdict(made))


@router.get("/api-keys")
async def list_api_keys(tokens: TokensDep, _: Admin) -> list[ApiKeyInfo]:
    return [ApiKeyInfo.model_validate(asdict(k)) for k in await tokens.api_keys()]


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: RowId, tokens: TokensDep, actor: Admin) -> None:
    await tokens.revoke_api_key(actor, key_id)
