"""Group commit (`orchestrator.live.batching`): writers that arrive together share one
flush, each returns once its own write is stored, and a failure reaches each of them."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.live.batching import GroupWrite

pytestmark = pytest.mark.anyio


class Store:
    """A flush that stores what it is given, after a turn of the event loop (as a round
    trip would), failing while `down`."""

    def __init__(self) -> None:
        self.values: dict[str, int] = {}
        self.batches: list[dict[str, int]] = []
        self.down = False

    async def flush(self, batch: dict[str, int]) -> None:
        self.batches.append(dict(batch))
        await asyncio.sleep(0.01)
        if self.down:
            raise ConnectionError("store down")
        self.values.update(batch)


async def test_writers_that_arrive_together_share_a_flush_and_each_sees_it_stored() -> None:
    store = Store()
    group: GroupWrite[int] = GroupWrite(store.flush)

    async def write(key: str, value: int) -> None:
        await group.put(key, value)
        assert store.values[key] == value  # stored before the writer returns

    await asyncio.gather(*(write(f"k{n}", n) for n in range(100)))

    assert store.values == {f"k{n}": n for n in range(100)}
    assert len(store.batches) == 1


async def test_writes_during_a_flush_go_in_the_next_one_in_order() -> None:
    store = Store()
    group: GroupWrite[int] = GroupWrite(store.flush)
    first = asyncio.create_task(group.put("a", 1))
    await asyncio.sleep(0.002)  # the first flush is in flight
    await asyncio.gather(group.put("a", 2), group.put("a", 3), group.put("b", 1), first)

    assert store.batches == [{"a": 1}, {"a": 3, "b": 1}]
    assert store.values == {"a": 3, "b": 1}


async def test_a_failed_flush_fails_each_of_its_writers_and_the_next_write_goes_through() -> None:
    store = Store()
    group: GroupWrite[int] = GroupWrite(store.flush)
    store.down = True
    results = await asyncio.gather(group.put("a", 1), group.put("b", 2), return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError]
    assert store.values == {}

    store.down = False
    await group.put("a", 5)
    assert store.values == {"a": 5}


async def test_a_cancelled_writer_does_not_hold_up_or_fail_the_others() -> None:
    store = Store()
    group: GroupWrite[int] = GroupWrite(store.flush)
    cancelled = asyncio.create_task(group.put("a", 1))
    others = asyncio.gather(group.put("b", 2), group.put("c", 3))
    await asyncio.sleep(0)
    cancelled.cancel()
    await others

    assert store.values == {"a": 1, "b": 2, "c": 3}  # the write itself was already sent
    assert cancelled.cancelled()
