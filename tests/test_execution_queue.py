"""ExecutionQueue in-process: FIFO, records at queue/start/end, run-all cancellation,
kernel-gate errors. A scripted kernel stands in for ipykernel (no daemon, no process):
the queue's contract with a kernel is its small ``ExecutingKernel`` protocol."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from helpers import iopub_message
from runtimed.daemon.execution.output_writer import OutputWriter
from runtimed.daemon.execution.queue import ExecutionQueue
from runtimed.daemon.execution.records import ExecutionRecord, MemoryExecutionLog
from runtimed.daemon.kernels import ExecuteReply, KernelLifecycle
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.runtime import RuntimeDoc
from runtimed.errors import RuntimedError


class ScriptedExecution:
    def __init__(self, kernel: ScriptedKernel, code: str) -> None:
        self.kernel = kernel
        self.code = code
        self.msg_id = f"msg-{len(kernel.ran)}"

    async def wait(self, callback: Callable[[dict[str, Any]], object]) -> ExecuteReply:
        self.kernel.ran.append(self.code)
        count = len(self.kernel.ran)
        callback(iopub_message("execute_input", {"code": self.code, "execution_count": count}))
        await asyncio.sleep(self.kernel.delay)
        if "raise" in self.code:
            content = {"ename": "ValueError", "evalue": "boom", "traceback": ["ValueError: boom"]}
            callback(iopub_message("error", content))
            return ExecuteReply(self.msg_id, "error", count, "ValueError", "boom")
        callback(iopub_message("stream", {"name": "stdout", "text": f"ran {self.code}\n"}))
        return ExecuteReply(self.msg_id, "ok", count)


class ScriptedKernel:
    """Runs "code" by echoing it; code containing `raise` fails."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.ran: list[str] = []
        self.lifecycle = KernelLifecycle.RUNNING
        self.interrupts = 0

    def submit(self, code: str, *, on_input: object = None) -> ScriptedExecution:
        return ScriptedExecution(self, code)

    def reply_input(self, request: object, value: str) -> None:
        raise AssertionError("these cells never ask for input")

    async def interrupt(self) -> None:
        self.interrupts += 1


class RecordingLog(MemoryExecutionLog):
    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[str, str]] = []

    def record(self, record: ExecutionRecord) -> None:
        self.history.append((record.execution_id, record.status))
        super().record(record)


def make_queue(kernel: ScriptedKernel | None = None, gate_error: str | None = None) -> Any:
    nb = NotebookDoc()
    runtime = RuntimeState(RuntimeDoc())
    events: list[dict[str, Any]] = []
    log = RecordingLog()
    scripted = kernel or ScriptedKernel()

    async def gate() -> ScriptedKernel:
        if gate_error:
            raise RuntimedError(gate_error, "no_kernel")
        return scripted

    queue = ExecutionQueue(nb, runtime, OutputWriter(nb), log, gate, events.append)
    return nb, runtime, queue, log, events, scripted


async def test_cells_run_in_order_and_every_state_is_recorded() -> None:
    nb, runtime, queue, log, events, kernel = make_queue()
    ids = [nb.insert_cell(None, f"c{i}") for i in range(3)]
    executions = [queue.enqueue(cid) for cid in ids]
    finals = [await queue.wait_done(e) for e in executions]
    assert kernel.ran == ["c0", "c1", "c2"]
    assert [f.status for f in finals] == ["done"] * 3
    assert [f.execution_count for f in finals] == [1, 2, 3]
    for execution_id in executions:  # the log was fed at queue, start and end
        statuses = [status for eid, status in log.history if eid == execution_id]
        assert statuses == ["queued", "running", "done"]
    assert [e["execution_id"] for e in events] == executions
    runtime.flush()
    doc = RuntimeDoc(runtime.doc.doc)
    assert doc.execution(executions[0])["status"] == "done"
    assert nb.get_cell(ids[2]).execution_count == 3
    assert nb.get_cell(ids[2]).outputs[0]["text"] == "ran c2\n"
    await queue.close()


async def test_a_waiting_cell_keeps_its_execution_id() -> None:
    nb, _, queue, _, _, _ = make_queue(ScriptedKernel(delay=0.05))
    first, second = nb.insert_cell(None, "a"), nb.insert_cell(None, "b")
    queue.enqueue(first)
    waiting = queue.enqueue(second)
    assert queue.enqueue(second) == waiting
    await queue.wait_done(waiting)
    await queue.close()


async def test_run_all_stops_at_the_first_error() -> None:
    nb, _, queue, _, _, kernel = make_queue()
    nb.insert_cell(None, "ok")
    nb.insert_cell(None, "# md", "markdown")
    nb.insert_cell(None, "raise")
    nb.insert_cell(None, "after")
    ids = queue.enqueue_all()
    finals = [await queue.wait_done(e) for e in ids]
    assert [f.status for f in finals] == ["done", "error", "cancelled"]
    assert finals[1].error == "ValueError: boom"
    assert "run-all" in (finals[2].error or "")
    assert kernel.ran == ["ok", "raise"]
    await queue.close()


async def test_bad_cells_are_refused_at_once() -> None:
    nb, _, queue, _, _, _ = make_queue()
    md = nb.insert_cell(None, "text", "markdown")
    with pytest.raises(RuntimedError) as info:
        queue.enqueue(md)
    assert info.value.code == "not_code"
    with pytest.raises(RuntimedError, match="not found"):
        queue.enqueue("cell-missing")
    await queue.close()


async def test_no_kernel_ends_the_execution_with_the_reason() -> None:
    nb, _, queue, _, _, _ = make_queue(gate_error="the kernel could not start: no env")
    final = await queue.wait_done(queue.enqueue(nb.insert_cell(None, "x")))
    assert final.status == "error" and final.error == "the kernel could not start: no env"
    await queue.close()


async def test_a_cell_deleted_while_queued_is_cancelled() -> None:
    nb, _, queue, _, _, kernel = make_queue(ScriptedKernel(delay=0.05))
    first, doomed = nb.insert_cell(None, "a"), nb.insert_cell(None, "b")
    queue.enqueue(first)
    execution = queue.enqueue(doomed)
    nb.delete_cell(doomed)
    final = await queue.wait_done(execution)
    assert final.status == "cancelled" and kernel.ran == ["a"]
    await queue.close()


async def test_interrupt_cancels_what_waits() -> None:
    nb, _, queue, _, _, kernel = make_queue(ScriptedKernel(delay=0.2))
    running = queue.enqueue(nb.insert_cell(None, "slow"))
    waiting = queue.enqueue(nb.insert_cell(None, "next"))
    await asyncio.sleep(0.05)
    assert await queue.interrupt(kernel) == 1
    assert kernel.interrupts >= 1
    assert (await queue.wait_done(waiting)).status == "cancelled"
    await queue.wait_done(running)
    await queue.close()


async def test_the_runtime_document_keeps_recent_records_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import runtimed.daemon.execution.queue_records as queue_module

    monkeypatch.setattr(queue_module, "KEEP_RECORDS_IN_DOC", 5)
    nb, runtime, queue, log, _, _ = make_queue()
    cell = nb.insert_cell(None, "x")
    executions = [await queue.wait_done(queue.enqueue(cell)) for _ in range(12)]
    runtime.flush()
    stored = RuntimeDoc(runtime.doc.doc).executions_map
    assert sorted(stored.keys()) == sorted(e.execution_id for e in executions[-5:])
    assert log.get(executions[0].execution_id) is not None  # the log still has it
    await queue.close()
