"""The OpenAPI document with every error the API answers: problem+json (RFC 9457), one
`Problem` schema, declared on each operation that can answer it.

The routes raise service errors (api/problems.py maps them) and the middleware answers
401 and 413 ahead of the routes (api/limits.py): neither shows in FastAPI's own document,
which would list a 422 of another shape and nothing else.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from api.problems import MEDIA_TYPE


class FieldError(BaseModel):
    field: str
    message: str
    type: str | None = None


class Problem(BaseModel):
    """An error (RFC 9457). `field` names the field at fault when there is one; a 422 from
    validation lists every fault in `errors`."""

    # Some answers add members (readiness checks, for one).
    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    errors: list[FieldError] | None = None


_WHY = {
    "401": "No bearer token, or one the control plane does not know",
    "403": "The token is valid but not for this resource",
    "404": "The resource does not exist",
    "409": "The request conflicts with the current state (the message says which)",
    "413": "The body is over this route's limit",
    "422": "A field is invalid; `detail` and `errors` name it",
    "503": "A dependency is unreachable",
}
_WRITES = {"post", "put", "patch", "delete"}


def _codes(path: str, method: str) -> list[str]:
    if not path.startswith("/v1/"):
        return []
    codes = ["401", "403", "404", "413", "422"]
    if method in _WRITES:
        codes.append("409")
    return codes


def build(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        routes=app.routes,
    )
    ref = {"$ref": "#/components/schemas/Problem"}
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem_schema.pop("$defs", {}))
    schemas["Problem"] = problem_schema
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            for code in _codes(path, method):
                responses.setdefault(code, {"description": _WHY[code]})
            for code, response in responses.items():
                if code[0] in "45":
                    response["description"] = _WHY.get(code, response.get("description", ""))
                    response["content"] = {MEDIA_TYPE: {"schema": ref}}
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    app.openapi_schema = schema
    return schema
