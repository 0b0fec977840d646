"""Credentials: enrollment tokens (agents enroll with one) and operator API keys. A secret
is shown once, when it is made; only its hash is kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from orchestrator import fleet
from orchestrator.services.context import Context


@dataclass(frozen=True)
class EnrollmentTokenCreated:
    id: int
    token: str
    expires_at: datetime
    single_use: bool


@dataclass(frozen=True)
class EnrollmentTokenInfo:
    id: int
    expires_at: datetime
    single_use: bool
    uses: int
    created_by: str
    created_at: datetime


@dataclass(frozen=True)
class ApiKeyCreated:
    id: int
    name: str
    token: str
    role: str


@dataclass(frozen=True)
class ApiKeyInfo:
    id: int
    name: str
    created_at: datetime
    revoked_at: datetime | None
    role: str


class TokensService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    # -- enrollment tokens -------------------------------------------------------------------
    async def create_enrollment_token(
        self, actor: str, ttl_s: float | None, single_use: bool
    ) -> EnrollmentTokenCreated:
        """A token that expires after `ttl_s` (default: the configured lifetime)."""
        ttl = ttl_s if ttl_s is not None else self._ctx.settings.enrollment_token_ttl_s
        row, secret = await self._ctx.run_sync(
            fleet.create_enrollment_token, actor, ttl, single_use
        )
        return EnrollmentTokenCreated(
            id=row.id, token=secret, expires_at=row.expires_at, single_use=row.single_use
        )

    async def enrollment_tokens(self) -> list[EnrollmentTokenInfo]:
        rows = await self._ctx.run_sync(fleet.list_enrollment_tokens)
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

    async def revoke_enrollment_token(self, actor: str, token_id: int) -> None:
        await self._ctx.run_sync(fleet.revoke_enrollment_token, actor, token_id)

    # -- operator API keys -------------------------------------------------------------------
    async def create_api_key(self, actor: str, name: str, role: str = "operator") -> ApiKeyCreated:
        """`role`: viewer, operator or admin (`orchestrator.tokens.ROLES`)."""
        key, secret = await self._ctx.run_sync(fleet.create_api_key, actor, name, role)
        return ApiKeyCreated(id=key.id, name=key.name, token=secret, role=key.role)

    async def api_keys(self) -> list[ApiKeyInfo]:
        keys = await self._ctx.run_sync(fleet.list_api_keys)
        return [
            ApiKeyInfo(
                id=k.id, name=k.name, created_at=k.created_at, revoked_at=k.revoked_at, role=k.role
            )
            for k in keys
        ]

    async def revoke_api_key(self, actor: str, key_id: int) -> None:
        await self._ctx.run_sync(fleet.revoke_api_key, actor, key_id)
