"""The daemon's execution path in-process: ExecutionQueue, OutputWriter, NotebookDoc and
RuntimeState around a real KernelSession whose backend and wire are the doubles of
``kernel_doubles`` (no daemon, no kernel process). The queue's gate hands it the
session, as RoomKernel's does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kernel_doubles import FakeBackend, fake_session
from runtimed.daemon.execution.output_writer import OutputWriter
from runtimed.daemon.execution.queue import ExecutionQueue
from runtimed.daemon.execution.records import MemoryExecutionLog
from runtimed.daemon.kernels import KernelLifecycle, KernelSession
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.runtime import RuntimeDoc
from runtimed.errors import RuntimedError


@dataclass
class Room:
    """What a room holds for its kernel, minus the sync: enough to run cells."""

    nb: NotebookDoc
    runtime: RuntimeState
    queue: ExecutionQueue
    session: KernelSession
    kernel: FakeBackend
    events: list[dict[str, Any]]

    def cell(self, source: str) -> str:
        return self.nb.insert_cell(None, source)

    async def until(self, predicate: Callable[[], object], timeout: float = 2.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            assert asyncio.get_running_loop().time() < deadline, "timed out"
            await asyncio.sleep(0.001)

    def running_a_cell(self) -> bool:
        return any(wire.blocked for wire in self.kernel.wires)

    async def restart(self) -> None:
        """What RoomKernel.restart does: cancel the queue, restart, resume."""
        self.queue.cancel_queued(reason="the kernel restarted")
        await self.session.restart()
        self.queue.start()


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    session, kernel = fake_session(tmp_path)
    await session.start()
    nb = NotebookDoc()
    runtime = RuntimeState(RuntimeDoc())
    events: list[dict[str, Any]] = []

    async def gate() -> KernelSession:
        if session.lifecycle is not KernelLifecycle.RUNNING:
            raise RuntimedError(f"the kernel is {session.lifecycle.value}", "kernel_not_running")
        return session

    writer = OutputWriter(nb)
    log = MemoryExecutionLog()
    queue = ExecutionQueue(
        nb, runtime, writer, log, gate, events.append, kernel_now=lambda: session
    )
    yield Room(nb, runtime, queue, session, kernel, events)
    await queue.close()
    writer.close()
    await session.shutdown(now=True)


async def test_a_cell_runs_and_its_outputs_land_in_the_notebook(room: Room) -> None:
    first, second = room.cell("a = 1"), room.cell("raise NameError: name 'b' is not defined")
    done = await room.queue.wait_done(room.queue.enqueue(first))
    assert done.status == "done" and done.success and done.execution_count == 1
    cell = room.nb.get_cell(first)
    assert cell.execution_count == 1
    assert cell.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "ran a = 1\n"},
        {
            "output_type": "execute_result",
            "data": {"text/plain": "'a = 1'"},
            "metadata": {},
            "execution_count": 1,
        },
    ]
    failed = await room.queue.wait_done(room.queue.enqueue(second))
    assert failed.status == "error" and failed.error == "NameError: name 'b' is not defined"
    assert room.nb.get_cell(second).outputs[0]["ename"] == "NameError"
    room.runtime.flush()
    record = RuntimeDoc(room.runtime.doc.doc).execution(done.execution_id)
    assert record is not None and record["status"] == "done"
    assert room.queue.record(failed.execution_id) == failed
    assert [e["event"] for e in room.events] == ["execution_done"] * 2


async def test_an_idle_kernel_gets_the_cell_from_enqueue_itself(room: Room) -> None:
    """Nothing runs: the execute_request is sent before enqueue returns (before the
    daemon answers or writes anything else); a cell queued behind it waits its turn."""
    [wire] = room.kernel.wires
    sent = len(wire.sent)
    first = room.queue.enqueue(room.cell("block"))
    assert wire.sent[sent:] == ["execute_request"]
    second = room.queue.enqueue(room.cell("after"))
    assert wire.sent[sent:] == ["execute_request"]  # waits for the first
    assert room.queue.record(first).status == "running"  # type: ignore[union-attr]
    await room.until(room.running_a_cell)
    wire.interrupted()
    assert (await room.queue.wait_done(first)).error == "KeyboardInterrupt: "
    done = await room.queue.wait_done(second)
    assert done.status == "done" and wire.sent[sent:] == ["execute_request"] * 2
    assert [e["event"] for e in room.events] == ["execution_done"] * 2


async def test_enqueue_code_appends_the_cell_and_runs_it(room: Room) -> None:
    """An idle kernel gets the code first, then the cell is appended (run_code); behind a
    running cell the new cell is appended at once and waits its turn."""
    [wire] = room.kernel.wires
    sent = len(wire.sent)
    blocking = room.queue.enqueue_code("block")
    assert wire.sent[sent:] == ["execute_request"]
    assert room.nb.get_source(blocking.cell_id) == "block"
    behind = room.queue.enqueue_code("b = 2")
    assert room.nb.cell_ids()[-2:] == [blocking.cell_id, behind.cell_id]
    assert room.queue.record(behind.execution_id).status == "queued"  # type: ignore[union-attr]
    await room.until(room.running_a_cell)
    wire.interrupted()
    done = await room.queue.wait_done(behind.execution_id)
    assert done.status == "done" and done.cell_id == behind.cell_id
    assert room.nb.get_cell(behind.cell_id).outputs[0]["text"] == "ran b = 2\n"


async def test_kernel_death_mid_cell_fails_it_and_cancels_the_queue(room: Room) -> None:
    dying, after = room.cell("die"), room.cell("after")
    first, second = room.queue.enqueue(dying), room.queue.enqueue(after)
    died = await room.queue.wait_done(first)
    assert died.status == "error" and "the kernel died" in (died.error or "")
    [output] = room.nb.get_cell(dying).outputs
    assert output["output_type"] == "error" and output["ename"] == "KernelDied"
    assert "exit code -9" in output["evalue"]
    cancelled = await room.queue.wait_done(second)
    assert cancelled.status == "cancelled" and cancelled.error == "the kernel died"
    assert room.session.lifecycle is KernelLifecycle.DEAD
    refused = await room.queue.wait_done(room.queue.enqueue(after))
    assert refused.status == "error" and refused.error == "the kernel is dead"


async def test_interrupt_ends_the_cell_and_clears_the_queue(room: Room) -> None:
    running = room.queue.enqueue(room.cell("block"))
    waiting = room.queue.enqueue(room.cell("never"))
    await room.until(room.running_a_cell)
    assert await room.queue.interrupt(room.session) == 1
    interrupted = await room.queue.wait_done(running)
    assert interrupted.status == "error" and interrupted.error == "KeyboardInterrupt: "
    assert (await room.queue.wait_done(waiting)).status == "cancelled"
    assert room.kernel.interrupts == 1
    next_one = await room.queue.wait_done(room.queue.enqueue(room.cell("next")))
    assert next_one.status == "done" and next_one.execution_count == 2


async def test_restart_aborts_what_is_pending(room: Room) -> None:
    running = room.queue.enqueue(room.cell("block"))
    waiting = room.queue.enqueue(room.cell("never"))
    await room.until(room.running_a_cell)
    await room.restart()
    aborted = await room.queue.wait_done(running)
    assert aborted.status == "cancelled" and "restarted" in (aborted.error or "")
    assert (await room.queue.wait_done(waiting)).error == "the kernel restarted"
    fresh = await room.queue.wait_done(room.queue.enqueue(room.cell("fresh")))
    assert fresh.status == "done" and fresh.execution_count == 1  # a new namespace


async def test_a_kernel_idle_without_reply_ends_the_cell(room: Room) -> None:
    cell = room.cell("idle without reply")
    done = await room.queue.wait_done(room.queue.enqueue(cell))
    assert done.status == "error" and done.error == (
        "KernelError: the kernel went idle without replying"
    )
    assert done.execution_count == 1  # from its execute_input
    [output] = room.nb.get_cell(cell).outputs
    assert output["ename"] == "KernelError"
    after = await room.queue.wait_done(room.queue.enqueue(room.cell("after")))
    assert after.status == "done"
