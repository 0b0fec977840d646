import asyncio

import pytest

from orchestrator.background import Background

pytestmark = pytest.mark.anyio


async def test_stop_cancels_the_task_and_waits_for_its_cleanup() -> None:
    cleaned: list[str] = []

    async def run() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cleaned.append("done")

    task = Background("t")
    task.start(run)
    await asyncio.sleep(0)
    assert task.running
    await task.stop()
    assert cleaned == ["done"] and not task.running
    task.start(run)  # a stopped task can be started again
    await asyncio.sleep(0)
    assert task.running
    await task.stop()
    assert cleaned == ["done", "done"]


async def test_stop_without_start_does_nothing_and_a_second_start_is_refused() -> None:
    task = Background("t")
    await task.stop()
    assert not task.running

    async def run() -> None:
        await asyncio.sleep(3600)

    task.start(run)
    with pytest.raises(RuntimeError, match="t is already running"):
        task.start(run)
    await task.stop()
