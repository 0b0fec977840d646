"""The console's routes: server-rendered pages over the console service, each live through
the event stream (console.js refetches the page's `?fragment=1` on every event), the login
form, and the forms that change something (cordon, drain, uncordon), each POST-only with
its CSRF token. A missing or expired session redirects to the login page."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, PackageLoader, select_autoescape

from api.console import session as sessions
from api.console import svg
from api.deps import ControlPlaneDep, ServicesDep
from api.routers.events import event_stream
from api.wire import DEVICE_ID_PATTERN
from orchestrator.console_listing import (
    DEPLOYMENT_STATUSES,
    DEVICE_STATUSES,
    MAX_PER_PAGE,
    PER_PAGE,
    TIERS,
    Listing,
)
from orchestrator.errors import ServiceError
from orchestrator.services.registry import Services

STATIC_DIR = Path(__file__).parent / "static"
_env = Environment(loader=PackageLoader("api.console", "templates"), autoescape=select_autoescape())
_env.globals["svg"] = svg
templates = Jinja2Templates(env=_env)
router = APIRouter(prefix="/console", include_in_schema=False)

PAGES = ("fleet", "topology", "deployments", "plans", "charts", "models")
ACTIONS = {"cordon": "cordoned", "drain": "draining", "uncordon": "active"}
_DEVICE_ID = re.compile(DEVICE_ID_PATTERN)


class LoginRequired(Exception):
    """No valid session: the handler redirects to the login page, back here after."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


async def login_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    target = "/console/login"
    if exc.next_path.startswith("/console/") and "?" not in exc.next_path:
        target += "?next=" + quote(exc.next_path)
    return RedirectResponse(target, status_code=303)


async def _session(request: Request, cp: ControlPlaneDep) -> sessions.Session:
    found = await sessions.current(cp, request)
    if found is None:
        raise LoginRequired(request.url.path)
    return found


SessionDep = Annotated[sessions.Session, Depends(_session)]


def _page(
    request: Request, name: str, user: sessions.Session, data: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """The page, or only its live part when the script asks (`?fragment=1`)."""
    fragment = request.query_params.get("fragment") == "1"
    context = {"user": user, "page": name, "pages": PAGES, **data}
    template = f"_{name}.html" if fragment else f"{name}.html"
    return templates.TemplateResponse(request, template, context, status_code=status)


# -- login ------------------------------------------------------------------------------
@router.get("", response_class=HTMLResponse)
async def root() -> Response:
    return RedirectResponse("/console/fleet", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/console/fleet") -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"next": _safe_next(next), "error": None, "field": None}
    )


@router.post("/login", response_class=HTMLResponse)
async def login(
    request: Request,
    cp: ControlPlaneDep,
    token: Annotated[str, Form(max_length=256)] = "",
    next: Annotated[str, Form(max_length=512)] = "/console/fleet",
) -> Response:
    token = token.strip()
    error = None
    if not token:
        error = "token: paste an operator token (the admin token, or an API key)"
    elif await cp.agents.operator_role(token) is None:
        error = "token: unknown or revoked operator token"
    if error is not None:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"next": _safe_next(next), "error": error, "field": "token"},
            status_code=401 if token else 422,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    sessions.issue(cp, response, token, secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(user: SessionDep, csrf: Annotated[str, Form(max_length=64)] = "") -> Response:
    if not sessions.csrf_ok(user, csrf):
        return _refused("csrf: the form is stale; reload the page and try again", 403)
    response = RedirectResponse("/console/login", status_code=303)
    sessions.clear(response)
    return response


def _safe_next(value: str) -> str:
    """Only a console page: never an open redirect to another site."""
    path = value.split("?", 1)[0]
    if path.startswith("/console/") and not path.startswith("//") and "\\" not in path:
        return path
    return "/console/fleet"


def _refused(detail: str, status: int) -> HTMLResponse:
    """A refused form as a page a person can read, naming the field."""
    body = _env.get_template("refused.html").render(detail=detail, status=status)
    return HTMLResponse(body, status_code=status)


# -- pages ------------------------------------------------------------------------------
def _listing(request: Request, statuses: tuple[str, ...]) -> tuple[Listing, str | None]:
    """The page's filter and page from its query, or the default and what was wrong (the
    field named): a bad link shows the first page with the error, not a stack trace."""
    q = request.query_params
    try:
        page, per_page = int(q.get("page", "1")), int(q.get("per_page", str(PER_PAGE)))
    except ValueError:
        return Listing(), "page: a whole number (page and per_page)"
    text, tier, status = q.get("q", "").strip(), q.get("tier", ""), q.get("status", "")
    if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
        return Listing(), f"page: from 1, and per_page from 1 to {MAX_PER_PAGE}"
    if len(text) > 128:
        return Listing(), "q: at most 128 characters"
    if tier and tier not in TIERS:
        return Listing(), f"tier: one of {', '.join(TIERS)}, not {tier!r}"
    if status and status not in statuses:
        return Listing(), f"status: one of {', '.join(statuses)}, not {status!r}"
    return Listing(page, per_page, text, tier, status, q.get("all") == "1"), None


def _listed(
    request: Request, name: str, user: sessions.Session, data: dict[str, Any], error: str | None
) -> HTMLResponse:
    """A page with a listing: links that keep its filter (`link(...)`), and its error."""

    def link(**changes: Any) -> str:
        params = {k: v for k, v in request.query_params.items() if k != "fragment"}
        if "page" not in changes:
            params.pop("page", None)  # a new filter starts at its first page
        params.update({k: str(v) for k, v in changes.items()})
        kept = {k: v for k, v in params.items() if v not in ("", "0")}
        return request.url.path + ("?" + urlencode(kept) if kept else "")

    context = {**data, "link": link, "error": error}
    return _page(request, name, user, context, 200 if error is None else 422)


@router.get("/fleet", response_class=HTMLResponse)
async def fleet(request: Request, user: SessionDep, services: ServicesDep) -> Response:
    listing, error = _listing(request, DEVICE_STATUSES)
    data = await services.console.fleet(listing)
    flash = request.query_params.get("flash")
    return _listed(request, "fleet", user, {"fleet": data, "flash": flash}, error)


@router.post("/devices/{device_id}/{action}")
async def device_action(
    device_id: str,
    action: str,
    user: SessionDep,
    services: ServicesDep,
    csrf: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    if not sessions.csrf_ok(user, csrf):
        return _refused("csrf: the form is stale or forged; reload the page and try again", 403)
    if action not in ACTIONS:
        return _refused(f"action: must be one of {', '.join(ACTIONS)}, not {action!r}", 422)
    if not _DEVICE_ID.fullmatch(device_id):
        return _refused(f"device: {device_id!r} is not a device id", 422)
    if not user.may_write:
        return _refused(
            f"{user.actor} has the {user.role} role, which reads only: it may not {action}"
            " a device; ask an admin for an operator token",
            403,
        )
    try:
        await services.devices.set_state(user.actor, device_id, ACTIONS[action])
    except ServiceError as exc:
        return _refused(f"device: {exc.message}", exc.status)
    flash = quote(f"{device_id}: {action} done")
    return RedirectResponse(f"/console/fleet?flash={flash}", status_code=303)


@router.get("/topology", response_class=HTMLResponse)
async def topology(request: Request, user: SessionDep, services: ServicesDep) -> Response:
    listing, error = _listing(request, ())
    data = await services.console.topology(listing)
    return _listed(request, "topology", user, {"topo": data}, error)


@router.get("/deployments", response_class=HTMLResponse)
async def deployments(request: Request, user: SessionDep, services: ServicesDep) -> Response:
    listing, error = _listing(request, DEPLOYMENT_STATUSES)
    data = await services.console.deployments(listing)
    return _listed(request, "deployments", user, {"deps": data}, error)


@router.get("/plans", response_class=HTMLResponse)
async def plans(request: Request, user: SessionDep, services: ServicesDep) -> Response:
    rows = await services.console.plans(50)
    data: dict[str, Any] = {"rows": rows, "diff": None, "error": None}
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if a is not None or b is not None:
        data.update(await _diff(services, a, b))
    return _page(request, "plans", user, data, 200 if data["error"] is None else 422)


async def _diff(services: Services, a: str | None, b: str | None) -> dict[str, Any]:
    for name, value in (("a", a), ("b", b)):
        if value is None or not value.isdigit() or not 0 < int(value) < 2**31:
            return {"error": f"{name}: give a plan version number (got {value or 'nothing'})"}
    assert a is not None and b is not None
    try:
        return {"diff": await services.console.diff(int(a), int(b)), "error": None}
    except ServiceError as exc:
        return {"error": exc.message}


@router.get("/plans/{version}/scenario.json")
async def replay(version: int, user: SessionDep, services: ServicesDep) -> Response:
    """The version's scenario, downloadable: `continuum solve` replays the decision."""
    try:
        scenario = await services.console.scenario(version)
    except ServiceError as exc:
        return _refused(f"version: {exc.message}", exc.status)
    return Response(
        json.dumps(scenario, indent=1),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="scenario-v{version}.json"'},
    )


@router.get("/charts", response_class=HTMLResponse)
async def charts(request: Request, user: SessionDep, services: ServicesDep) -> Response:
    raw = request.query_params.get("hours", "6")
    try:
        hours = float(raw)
        error = None if 0.1 <= hours <= 24 * 90 else "hours: between 0.1 and 2160"
    except ValueError:
        hours, error = 6.0, f"hours: a number of hours, not {raw!r}"
    if error is not None:
        hours = 6.0
    data = await services.console.charts(hours)
    return _page(request, "charts", user, {"charts": data, "error": error})


@router.get("/models", response_class=HTMLResponse)
async def models(request: Request, user: SessionDep, services: ServicesDep) -> Response:
    rows = await services.console.models()
    chosen = request.query_params.get("model") or (rows[0]["id"] if rows else None)
    model = next((m for m in rows if m["id"] == chosen), None)
    return _page(request, "models", user, {"models": rows, "model": model})


@router.get("/events")
async def events(request: Request, user: SessionDep, services: ServicesDep) -> StreamingResponse:
    """The event stream for the pages' script (EventSource sends the cookie, no header)."""
    return event_stream(request, services.events)
