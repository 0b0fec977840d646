"""The data plane's errors as RFC 9457 problem+json answers.

Kept apart from the routes so that the bare hop handler (`agents.hoproute`) and the
FastAPI app (`agents.dataplane`) answer errors the same way without importing each other.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse


class HopError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class HopUnreachable(HopError):
    """The route beyond a hop is broken (the next hop did not answer, or answered that the
    one after it did not): what a local fallback may answer instead."""


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    titles = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 413: "Content Too Large",
              415: "Unsupported Media Type", 422: "Unprocessable Content",
              502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip
    return JSONResponse(
        {"type": "about:blank", "title": titles.get(status, "Error"), "status": status,
         "detail": detail},
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )  # fmt: skip
