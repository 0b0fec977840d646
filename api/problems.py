"""Every error as RFC 9457 problem+json, with a detail a person can act on."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from models_registry.errors import ModelError
from orchestrator.artifacts import disk_full
from orchestrator.errors import ServiceError, TooManyRequests
from orchestrator.outages import unavailable
from orchestrator.ratelimit import retry_after_header

MEDIA_TYPE = "application/problem+json"
log = logging.getLogger(__name__)
_UNPARSABLE = "There was an error parsing the body"


def problem(
    status: int,
    detail: str,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(
        _printable(body), status_code=status, media_type=MEDIA_TYPE, headers=headers
    )


def _printable(value: Any) -> Any:
    """Echoed input (a field name, a path) may hold a lone surrogate, which UTF-8 cannot
    encode: escaped, so the error itself never fails."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {_printable(k): _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    return value


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """('body', 'devices', 3, 'gflops') -> 'body.devices[3].gflops'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        msg = str(err.get("msg", ""))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        errors.append({"field": _loc(err.get("loc", ())), "message": msg, "type": err.get("type")})
    first = errors[0] if errors else {"field": "", "message": "invalid request"}
    detail = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return problem(422, detail, title="Invalid request", instance=request.url.path, errors=errors)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNPARSABLE:
        # FastAPI's answer to a body that is not even text (invalid UTF-8): a bad field
        # like any other, so 422 naming it.
        message = "not valid UTF-8 JSON"
        errors = [{"field": "body", "message": message, "type": "json_invalid"}]
        return problem(
            422, f"body: {message}", title="Invalid request", instance=request.url.path,
            errors=errors,
        )  # fmt: skip
    return problem(
        exc.status_code,
        str(exc.detail),
        instance=request.url.path,
        headers=dict(exc.headers) if exc.headers else None,
    )


async def _service(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    extra: dict[str, Any] = {"field": exc.field} if exc.field else {}
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, TooManyRequests):
        headers = {"Retry-After": retry_after_header(exc.retry_after_s)}
        extra["retry_after_s"] = round(exc.retry_after_s, 3)
    return problem(
        exc.status,
        exc.message,
        title=exc.title,
        instance=request.url.path,
        headers=headers,
        **extra,
    )


async def _model(request: Request, exc: Exception) -> JSONResponse:
    return problem(422, str(exc), title="Unusable model", instance=request.url.path)


async def _os_error(request: Request, exc: Exception) -> JSONResponse:
    if disk_full(exc):
        # Wherever it happened (the store, a partition job in the pool), the store's
        # writes remove their temporary file: nothing partial is left.
        log.error("disk full on %s %s: %s", request.method, request.url.path, exc)
        return problem(
            507,
            f"the artifact store's volume is full ({getattr(exc, 'strerror', exc)}); nothing "
            "of this request was kept. Free space there or enlarge it, then try again",
            title="Insufficient storage",
            instance=request.url.path,
        )
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    down = unavailable(exc)
    if down is not None:
        # Redis or PostgreSQL restarting: a retry will do, and the log needs no trace.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        log.warning("%s %s: %s is unreachable (%s)", request.method, request.url.path, down, first)
        return problem(
            503,
            f"{down} is unreachable for now; retry shortly",
            title="Service unavailable",
            instance=request.url.path,
            headers={"Retry-After": "1"},
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(
        500,
        f"internal error ({type(exc).__name__}); the server log has the details",
        instance=request.url.path,
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(ServiceError, _service)
    app.add_exception_handler(ModelError, _model)
    app.add_exception_handler(OSError, _os_error)
    app.add_exception_handler(Exception, _unexpected)
