"""A cell's input() in-process: ExecutionQueue + InputPrompts around a KernelSession on
the kernel doubles (``ask PROMPT`` is a cell that calls input). Only the client that
queued the cell is asked and may answer; an interrupt cancels the prompt; a client that
leaves is answered EOF; a cell run without a client that answers gets
StdinNotAvailable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kernel_doubles import FakeBackend, fake_session
from runtimed.daemon.execution.output_writer import OutputWriter
from runtimed.daemon.execution.queue import ExecutionQueue
from runtimed.daemon.execution.records import MemoryExecutionLog
from runtimed.daemon.kernels import KernelSession
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.runtime import RuntimeDoc
from runtimed.errors import RuntimedError


@dataclass
class Client:
    """A peer as InputPrompts sees it: it gets events and may be gone."""

    closed: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    def send_event(self, event: dict[str, Any]) -> None:
        self.events.append(event)


@dataclass
class Room:
    nb: NotebookDoc
    queue: ExecutionQueue
    session: KernelSession
    kernel: FakeBackend

    def run(self, source: str, client: Client | None = None) -> str:
        return self.queue.enqueue(self.nb.insert_cell(None, source), input_client=client)

    def outputs(self, execution_id: str) -> list[dict[str, Any]]:
        record = self.queue.record(execution_id)
        assert record is not None
        return self.nb.get_cell(record.cell_id).outputs


async def until(predicate: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.001)


@pytest.fixture
async def room(tmp_path: Path) -> AsyncIterator[Room]:
    session, kernel = fake_session(tmp_path)
    await session.start()
    nb = NotebookDoc()

    async def gate() -> KernelSession:
        return session

    writer = OutputWriter(nb)
    runtime = RuntimeState(RuntimeDoc())
    queue = ExecutionQueue(nb, runtime, writer, MemoryExecutionLog(), gate, lambda e: None)
    yield Room(nb, queue, session, kernel)
    await queue.close()
    writer.close()
    await session.shutdown(now=True)


async def test_the_client_that_ran_the_cell_is_asked_and_answers(room: Room) -> None:
    asker, other = Client(), Client()
    execution_id = room.run("ask name? ", asker)
    await until(lambda: asker.events)
    event = asker.events[0]
    assert event == {
        "event": "input_request",
        "execution_id": execution_id,
        "cell_id": event["cell_id"],
        "prompt": "name? ",
        "password": False,
    }
    assert room.queue.prompts.waiting(execution_id)
    with pytest.raises(RuntimedError) as refused:
        room.queue.prompts.answer(execution_id, "mallory", other)
    assert refused.value.code == "not_your_execution"
    room.queue.prompts.answer(execution_id, "ada", asker)
    record = await room.queue.wait_done(execution_id)
    assert record.status == "done"
    assert room.outputs(execution_id)[0]["text"] == "got ada\n"
    with pytest.raises(RuntimedError) as late:  # answered already
        room.queue.prompts.answer(execution_id, "again", asker)
    assert late.value.code == "not_waiting_for_input"
    assert other.events == []


async def test_getpass_says_password(room: Room) -> None:
    asker = Client()
    execution_id = room.run("ask password secret: ", asker)
    await until(lambda: asker.events)
    assert asker.events[0]["password"] is True and asker.events[0]["prompt"] == "secret: "
    room.queue.prompts.answer(execution_id, "hunter2", asker)
    assert (await room.queue.wait_done(execution_id)).success


async def test_without_a_client_that_answers_the_cell_gets_stdin_not_available(
    room: Room,
) -> None:
    execution_id = room.run("ask x? ")
    record = await room.queue.wait_done(execution_id)
    assert record.status == "error"
    assert record.error is not None and record.error.startswith("StdinNotAvailable: ")
    error = room.outputs(execution_id)[0]
    assert error["ename"] == "StdinNotAvailable"
    assert "Session.run(code, stdin=...)" in error["evalue"]
    assert error["traceback"][-1].startswith("StdinNotAvailable: ")


async def test_an_interrupt_cancels_the_prompt(room: Room) -> None:
    asker = Client()
    execution_id = room.run("ask x? ", asker)
    await until(lambda: asker.events)
    await room.queue.interrupt(room.session)
    record = await room.queue.wait_done(execution_id)
    assert record.status == "error" and record.error is not None
    assert record.error.startswith("KeyboardInterrupt")
    assert asker.events[-1] == {
        "event": "input_cancelled",
        "execution_id": execution_id,
        "reason": "interrupted",
    }
    with pytest.raises(RuntimedError):
        room.queue.prompts.answer(execution_id, "too late", asker)


async def test_a_client_that_leaves_is_answered_eof(room: Room) -> None:
    asker = Client()
    execution_id = room.run("ask x? ", asker)
    await until(lambda: asker.events)
    asker.closed = True
    room.queue.prompts.client_left(asker)
    record = await room.queue.wait_done(execution_id)
    assert record.error is not None and record.error.startswith("EOFError")
    # One already gone when the kernel asks is answered EOF at once.
    gone = Client(closed=True)
    record = await room.queue.wait_done(room.run("ask y? ", gone))
    assert record.error is not None and record.error.startswith("EOFError")
    assert gone.events == []


def test_the_mcp_servers_answer_voids_only_the_prompt_it_answered() -> None:
    """The cell's next input() can ask before the answer's reply is read (both frames in
    one read): answering the first prompt must leave the second waiting."""
    from runtimed.mcp_server.input_waits import InputWaits

    waits = InputWaits()
    waits.on_event({"event": "input_request", "execution_id": "e", "prompt": "name? "})
    asked = waits.prompt("e")
    waits.on_event({"event": "input_request", "execution_id": "e", "prompt": "pin: "})
    waits.answered("e", asked)
    second = waits.prompt("e")
    assert second is not None and second["prompt"] == "pin: "
    waits.answered("e", second)
    assert waits.prompt("e") is None
