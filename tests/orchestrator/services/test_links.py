"""The links service: declared links (SQL) beside measured ones (live state)."""

from __future__ import annotations

import pytest

from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.services.links import LinksService
from tests.orchestrator.services.harness import Harness

pytestmark = pytest.mark.anyio

SPEC = {"a": "edge-1", "b": "cam-1", "mbps": 50.0, "rtt_ms": 4.0, "j_per_mb": 0.5}


@pytest.fixture
async def links(ctx: Harness) -> LinksService:
    await ctx.enroll("cam-1")
    await ctx.enroll("edge-1")
    return LinksService(ctx)


async def test_declare_orders_the_ends_and_asks_for_a_replan(
    ctx: Harness, links: LinksService
) -> None:
    link = await links.declare("operator:ops", SPEC)
    assert {k: link[k] for k in ("a", "b", "mbps", "rtt_ms", "j_per_mb")} == {
        "a": "cam-1", "b": "edge-1", "mbps": 50.0, "rtt_ms": 4.0, "j_per_mb": 0.5,
    }  # fmt: skip
    assert isinstance(link["id"], int)
    assert ctx.link_changes == 1
    assert [r.reason for r in ctx.replans] == ["link cam-1~edge-1 declared by operator:ops"]


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        ({**SPEC, "b": "edge-1"}, Invalid, "b: a link joins two different devices"),
        ({**SPEC, "a": "ghost"}, Invalid, "a: unknown device 'ghost'"),
    ],
)
async def test_a_bad_declaration_is_refused(
    ctx: Harness, links: LinksService, spec: dict[str, object], error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        await links.declare("operator:ops", spec)
    assert (await links.views())["declared"] == []
    assert ctx.link_changes == 0 and ctx.replans == []


async def test_a_second_declaration_of_one_pair_conflicts(
    ctx: Harness, links: LinksService
) -> None:
    await links.declare("operator:ops", SPEC)
    with pytest.raises(Conflict, match="already declared"):
        await links.declare("operator:ops", {**SPEC, "a": "cam-1", "b": "edge-1"})
    assert len((await links.views())["declared"]) == 1


async def test_views_show_declared_and_measured_links(ctx: Harness, links: LinksService) -> None:
    await links.declare("operator:ops", SPEC)
    await ctx.live.put_link("cam-1", "edge-1", 42.0, 3.5, 60.0)
    view = await links.views()
    assert [(k["a"], k["b"], k["mbps"]) for k in view["declared"]] == [("cam-1", "edge-1", 50.0)]
    ((measured),) = view["measured"]
    assert (measured["a"], measured["b"], measured["mbps"], measured["rtt_ms"]) == (
        "cam-1", "edge-1", 42.0, 3.5,
    )  # fmt: skip


async def test_delete(ctx: Harness, links: LinksService) -> None:
    link = await links.declare("operator:ops", SPEC)
    await links.delete("operator:ops", link["id"])
    assert (await links.views())["declared"] == []
    assert ctx.link_changes == 2
    assert ctx.replans[-1].reason == f"link {link['id']} deleted by operator:ops"
    with pytest.raises(NotFound, match=f"no declared link with id {link['id']}"):
        await links.delete("operator:ops", link["id"])
