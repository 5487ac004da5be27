"""ExecutionWaiters in process: execution_done events end waits, in any order."""

from __future__ import annotations

import asyncio

import pytest

from runtimed.client.execution_waiters import ExecutionWaiters
from runtimed.errors import RuntimedError


def done(execution_id: str) -> dict[str, object]:
    return {"event": "execution_done", "execution_id": execution_id, "status": "done"}


async def test_a_waiter_that_gives_up_leaves_the_others_waiting() -> None:
    waiters = ExecutionWaiters()
    patient = asyncio.create_task(waiters.wait("e1", None))
    with pytest.raises(RuntimedError, match=r"did not finish within 0\.01 s") as timed_out:
        await waiters.wait("e1", 0.01)
    assert timed_out.value.code == "timeout"
    waiters.on_event({"event": "execution_started", "execution_id": "e1"})  # not the end
    assert not patient.done()
    waiters.on_event(done("e1"))
    assert (await patient)["status"] == "done"
    assert (await waiters.wait("e1", 0)) == done("e1")  # a late wait: at once


async def test_a_lost_connection_fails_every_wait() -> None:
    waiters = ExecutionWaiters()
    both = [asyncio.create_task(waiters.wait(e, None)) for e in ("e1", "e2")]
    await asyncio.sleep(0)
    waiters.fail_all(RuntimedError("lost", "disconnected"))
    for task in both:
        with pytest.raises(RuntimedError, match="lost"):
            await task
    cancelled = asyncio.create_task(waiters.wait("e3", None))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    waiters.on_event(done("e3"))  # nobody waits any more: nothing to resolve
