"""The OpenAPI document declares the problem+json errors each route can answer
(api/openapi.py), one Problem schema for all of them."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_every_route_declares_its_problem_answers(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    problem = {"$ref": "#/components/schemas/Problem"}
    assert {"type", "title", "status", "detail"} <= set(
        spec["components"]["schemas"]["Problem"]["required"]
    )
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if path.startswith("/v1/")
    ]
    assert len(operations) > 40
    for path, method, op in operations:
        codes = set(op["responses"])
        expected = {"401", "403", "404", "413", "422"}
        if method in ("post", "put", "patch", "delete"):
            expected.add("409")
        assert expected <= codes, (method, path, codes)
        for code in codes - {"200", "201", "204"}:
            content = op["responses"][code]["content"]
            assert content == {"application/problem+json": {"schema": problem}}, (path, code)
    # And an answer is what it declares.
    r = await client.get("/v1/models/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
