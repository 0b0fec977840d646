"""Console sessions: the operator's token in an HttpOnly, SameSite=Strict cookie, signed
with a key derived from the admin token (so every replica that shares it accepts the
session, and no server-side store is needed), with its issue time; and the CSRF token
every form that changes something carries, derived from the same session.

The cookie is `ISSUED.TOKEN.SIGNATURE`. A session expires `console_session_ttl_s` after
its login whatever the browser does with the cookie (the issue time is signed), and dies
at once when its token is revoked (every request looks the token up).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from fastapi import Request, Response

from orchestrator.control_plane import ControlPlane

COOKIE = "continuum_session"
_PURPOSE = "continuum-console-session-v1"


@dataclass(frozen=True)
class Session:
    actor: str  # "operator:<key name>"
    role: str  # viewer | operator | admin
    csrf: str  # what every form that changes something must send back

    @property
    def may_write(self) -> bool:
        return self.role in ("operator", "admin")


def _sign(key: bytes, text: str) -> str:
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _csrf(key: bytes, issued: str, token: str) -> str:
    return _sign(key, f"csrf\0{issued}\0{token}")[:32]


def issue(cp: ControlPlane, response: Response, token: str, secure: bool) -> None:
    """Set the session cookie for a token already checked to be an operator's."""
    key = cp.agents.signing_key(_PURPOSE)
    issued = str(int(time.time()))
    value = f"{issued}.{token}.{_sign(key, f'{issued}.{token}')}"
    response.set_cookie(
        COOKIE,
        value,
        max_age=int(cp.settings.console_session_ttl_s),
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/console",
    )


def clear(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict")


async def current(cp: ControlPlane, request: Request) -> Session | None:
    """The request's session, or None: no cookie, a forged or expired one, or a token
    revoked since."""
    value = request.cookies.get(COOKIE, "")
    issued, _, rest = value.partition(".")
    token, _, signature = rest.rpartition(".")
    if not (issued.isdigit() and token and signature):
        return None
    key = cp.agents.signing_key(_PURPOSE)
    if not hmac.compare_digest(signature, _sign(key, f"{issued}.{token}")):
        return None
    if time.time() - int(issued) > cp.settings.console_session_ttl_s:
        return None
    found = await cp.agents.operator_role(token)
    if found is None:
        return None
    actor, role = found
    return Session(actor=actor, role=role, csrf=_csrf(key, issued, token))


def csrf_ok(session: Session, sent: str | None) -> bool:
    return bool(sent) and hmac.compare_digest(session.csrf, sent or "")


def token_of(request: Request) -> str | None:
    """The operator token in the session cookie (verified by `current` first)."""
    value = request.cookies.get(COOKIE, "")
    _, _, rest = value.partition(".")
    token, _, _ = rest.rpartition(".")
    return token or None
