"""ExecutionQueue: one room's FIFO of cell executions, document-first.

A cell is queued by id; its source is read from the document when it starts (a cell
``enqueue_code`` appends is written with the code the kernel got); its outputs go back
into the document through the OutputWriter. Every state change of an
execution is saved to the runtime state (what peers see) and to the ExecutionLog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from runtimed import timeline
from runtimed.daemon.execution.input_prompts import (
    InputClient,
    InputPrompts,
    error_text,
    not_available,
)
from runtimed.daemon.execution.kernel_gate import (
    ExecutingKernel,
    KernelGate,
    StartedExecution,
    interrupt_until_done,
)
from runtimed.daemon.execution.output_writer import OutputWriter
from runtimed.daemon.execution.queue_records import QueueRecords, new_record
from runtimed.daemon.execution.records import ExecutionLog, ExecutionRecord
from runtimed.daemon.kernels import (
    ExecutionAbortedError,
    KernelDiedError,
    KernelError,
    KernelLifecycle,
    Message,
)
from runtimed.daemon.kernels.outputs import error_output
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.daemon.tasks import stop_task
from runtimed.documents.notebook import NotebookDoc, new_cell_id
from runtimed.documents.runtime import FINAL_STATUSES
from runtimed.errors import RuntimedError

log = logging.getLogger(__name__)


EventSink = Callable[[dict[str, Any]], None]


class ExecutionQueue:
    """FIFO per room. A cell already waiting keeps its execution id; in a run-all batch
    an error cancels the cells behind it."""

    def __init__(
        self,
        nb: NotebookDoc,
        runtime_state: RuntimeState,
        writer: OutputWriter,
        execution_log: ExecutionLog,
        gate: KernelGate,
        broadcast: EventSink,
        name: str = "queue",
        kernel_now: Callable[[], ExecutingKernel | None] | None = None,
    ) -> None:
        """``kernel_now``: the room's kernel, if any (no waiting): a cell queued while
        nothing runs is sent to it at once, from ``enqueue``, when it runs."""
        self.nb = nb
        self.runtime_state = runtime_state
        self.writer = writer
        self.records = QueueRecords(runtime_state, execution_log)
        self.gate = gate
        self.kernel_now = kernel_now
        self.broadcast = broadcast
        self.name = name
        self._queue: deque[ExecutionRecord] = deque()
        self._current: ExecutionRecord | None = None
        #: An execution ``enqueue`` sent to the kernel, for the worker to see through.
        self._started: StartedExecution | None = None
        # Set when the kernel really begins the current cell (its execute_input): an
        # interrupt that arrives before that is lost by the kernel.
        self._began = asyncio.Event()
        self._interrupts: set[asyncio.Task[None]] = set()
        self._done_waiters: dict[str, list[asyncio.Future[ExecutionRecord]]] = {}
        self._msg_cells: dict[str, str] = {}
        #: The clients that answer the prompts of queued executions, by execution id.
        self._input_clients: dict[str, InputClient] = {}
        self.prompts = InputPrompts()
        self._wake = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None
        self._closed = False
        self.runtime_state.set_queue(None, [])

    # --- queueing ------------------------------------------------------------------------

    def enqueue(
        self, cell_id: str, batch: str | None = None, input_client: InputClient | None = None
    ) -> str:
        """Queue a cell; a cell already waiting in the queue keeps its execution id.
        ``input_client`` answers the cell's ``input()`` (none: StdinNotAvailable)."""
        cell_type = self.nb.cell_type(cell_id)  # raises "not found"
        if cell_type != "code":
            raise RuntimedError(f"cell {cell_id} is a {cell_type} cell, not code", "not_code")
        for queued in self._queue:
            if queued.cell_id == cell_id:
                return queued.execution_id
        record = new_record(cell_id, batch)
        if not self._start_now(record, input_client):
            self._queue_record(record, input_client)
        return record.execution_id

    def enqueue_code(self, code: str, input_client: InputClient | None = None) -> ExecutionRecord:
        """Append a code cell holding ``code`` and queue it; returns its queued record. An
        idle running kernel gets the code before the cell is written."""
        record = new_record(new_cell_id(), None)
        if not self._start_now(record, input_client, code):
            self.nb.insert_cell(None, code, cell_id=record.cell_id)
            self._queue_record(record, input_client)
        return record

    def _queue_record(self, record: ExecutionRecord, input_client: InputClient | None) -> None:
        self._queue.append(record)
        if input_client is not None:
            self._input_clients[record.execution_id] = input_client
        self.records.save(record)
        self._publish()
        self.start()
        self._wake.set()

    def enqueue_all(self, stop_on_error: bool = True) -> list[str]:
        """Queue every code cell in order; an error cancels the rest of this batch
        (unless ``stop_on_error`` is False)."""
        batch = f"batch-{uuid.uuid4().hex[:8]}" if stop_on_error else None
        return [self.enqueue(c.id, batch) for c in self.nb.get_cells() if c.cell_type == "code"]

    def cancel_queued(self, batch: str | None = None, reason: str = "cancelled") -> int:
        """Cancel waiting executions (of one batch, or all); returns how many."""
        keep: deque[ExecutionRecord] = deque()
        cancelled = 0
        while self._queue:
            record = self._queue.popleft()
            if batch is not None and record.batch != batch:
                keep.append(record)
                continue
            cancelled += 1
            self._input_clients.pop(record.execution_id, None)
            self._finish(record, "cancelled", success=False, error=reason)
        self._queue = keep
        self._publish()
        return cancelled

    def record(self, execution_id: str) -> ExecutionRecord | None:
        return self.records.get(execution_id)

    def cell_of(self, msg_id: str) -> str | None:
        """The cell whose execute_request had this msg_id (for late output)."""
        return self._msg_cells.get(msg_id)

    async def wait_done(self, execution_id: str) -> ExecutionRecord:
        """The final record of an execution, once it has ended."""
        record = self.record(execution_id)
        if record is None:
            raise RuntimedError(f"execution {execution_id} not found", "not_found")
        if record.status in FINAL_STATUSES:
            return record
        waiter: asyncio.Future[ExecutionRecord] = asyncio.get_running_loop().create_future()
        self._done_waiters.setdefault(execution_id, []).append(waiter)
        return await waiter

    # --- the worker ----------------------------------------------------------------------

    def start(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=self.name)

    def _start_now(
        self, record: ExecutionRecord, input_client: InputClient | None, code: str | None = None
    ) -> bool:
        """Nothing runs or waits and the kernel runs: send the cell now, before anything
        else the daemon does in this turn (the worker sees it through). ``code``: a new
        cell's, written once the kernel has it."""
        if self._current is not None or self._queue or self._started is not None or self._closed:
            return False
        kernel = self.kernel_now() if self.kernel_now is not None else None
        if kernel is None or kernel.lifecycle is not KernelLifecycle.RUNNING:
            return False
        self._current = record
        try:
            self._started = self._start(record, kernel, input_client, queued=True, code=code)
        except Exception:  # as in the worker: it ends, never left queued or running
            log.exception("execution %s failed unexpectedly", record.execution_id)
            self._finish(record, "error", error="internal error (see runtimed.log)")
            raise
        self.start()
        self._wake.set()
        return True

    async def _work(self) -> None:
        while not self._closed:
            started, self._started = self._started, None
            if started is not None:
                record = started.record
            elif self._queue:
                record = self._queue.popleft()
                self._current = record
            else:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                if started is not None:
                    await self._complete(started)
                else:
                    await self._run(record, self._input_clients.pop(record.execution_id, None))
            except Exception:  # one bad execution must not stop the queue
                log.exception("execution %s failed unexpectedly", record.execution_id)
                self._finish(record, "error", error="internal error (see runtimed.log)")
            finally:
                self.prompts.ended(record.execution_id)
                if self._current is not None:
                    self._current = None
                    self._publish()

    async def _run(self, record: ExecutionRecord, input_client: InputClient | None) -> None:
        try:
            kernel = await self.gate()
        except RuntimedError as exc:
            self._finish(record, "error", error=exc.message)
            return
        started = self._start(record, kernel, input_client)
        if started is not None:
            await self._complete(started)

    def _start(
        self,
        record: ExecutionRecord,
        kernel: ExecutingKernel,
        input_client: InputClient | None,
        queued: bool = False,
        code: str | None = None,
    ) -> StartedExecution | None:
        """Send the cell to the kernel, then mark it running (``queued``: record it as
        queued first; ``code``: the cell is new, appended after the send); None when it
        ended at once."""
        try:
            source = self.nb.get_source(record.cell_id) if code is None else code
        except RuntimedError:
            self._finish(record, "cancelled", error="the cell was deleted before it ran")
            return None
        self._began.clear()
        # Send first, then do the bookkeeping while the kernel works: its messages are
        # handled only once the loop runs again, after the outputs were reset below.
        cell_id = record.cell_id
        on_input = None
        if input_client is not None:
            on_input = self.prompts.asker(kernel, record.execution_id, cell_id, input_client)
        try:
            execution = kernel.submit(source, on_input=on_input)
            timeline.stamp("kernel.submitted")
        except KernelError as exc:
            if code is not None:
                self.nb.insert_cell(None, code, cell_id=cell_id)
            self._finish(record, "error", error=exc.message)
            return None
        if code is not None:
            self.nb.insert_cell(None, code, cell_id=cell_id)
        self._msg_cells[execution.msg_id] = cell_id
        if queued:
            self.records.save(record)
        record = self.records.save(
            msgspec.structs.replace(record, status="running", started_at=time.time())
        )
        self._current = record
        self._publish(executing=record.execution_id)
        self.writer.begin(cell_id)
        timeline.stamp("worker.began")
        return StartedExecution(record, execution, on_input is not None)

    async def _complete(self, started: StartedExecution) -> None:
        """Feed the execution's messages to the writer until it ends, then finish it."""
        record, execution, asks = started.record, started.execution, started.asks_input
        cell_id = record.cell_id
        try:
            reply = await execution.wait(
                lambda msg: self._on_message(cell_id, msg if asks else not_available(msg))
            )
        except KernelDiedError as exc:
            self._kernel_died(record, exc)
            return
        except ExecutionAbortedError as exc:
            self._finish(record, "cancelled", error=exc.message)
            return
        except KernelError as exc:
            self._finish(record, "error", error=exc.message)
            return
        timeline.stamp("worker.woke")
        if reply.synthesized:  # the kernel wrote no error output either
            names = {"ename": reply.ename, "evalue": reply.evalue}
            traceback = [f"{reply.ename}: {reply.evalue}"]
            self.writer.add(cell_id, error_output({**names, "traceback": traceback}))
        count = reply.execution_count or self.writer.execution_count(cell_id)
        status = "done" if reply.success else "error"
        error = error_text(reply.ename, reply.evalue) if not reply.success else None
        self._finish(record, status, execution_count=count, success=reply.success, error=error)
        if not reply.success and record.batch:
            self.cancel_queued(batch=record.batch, reason="an earlier cell of run-all failed")

    def _on_message(self, cell_id: str, msg: Message) -> None:
        if msg.get("msg_type") == "execute_input":
            self._began.set()
        self.writer.on_message(cell_id, msg)

    def _kernel_died(self, record: ExecutionRecord, exc: KernelDiedError) -> None:
        message = (
            f"the kernel died while running this cell (exit code {exc.exit_code}); "
            "restart it with restart_kernel()"
        )
        died = {"output_type": "error", "ename": "KernelDied", "evalue": message}
        self.writer.add(record.cell_id, {**died, "traceback": [message]})
        self._finish(record, "error", success=False, error=message)
        self.cancel_queued(reason="the kernel died")

    def _finish(self, record: ExecutionRecord, status: str, **fields: Any) -> None:
        success = fields.pop("success", status == "done")
        final = msgspec.structs.replace(
            record, status=status, success=success, ended_at=time.time(), **fields
        )
        # Waiters first: their answers then join the frames below in one write to a peer
        # (their tasks run before the write that the first frame schedules).
        for waiter in self._done_waiters.pop(record.execution_id, []):
            if not waiter.done():
                waiter.set_result(final)
        # Outputs reach peers before the record says done.
        self.writer.finish(record.cell_id, final.execution_count, "execution_count" in fields)
        self.records.save(final, log=False)
        if self._current is not None and self._current.execution_id == record.execution_id:
            self._current = None
            self._publish()
        self.broadcast({"event": "execution_done", **final.as_dict()})
        # The history's row (outputs read from the document, JSON) once the result is on
        # its way to the peers: nobody waits for it.
        self.records.log.record(final)
        timeline.stamp("worker.finished")

    def _publish(self, executing: str | None = None) -> None:
        current = executing or (self._current.execution_id if self._current else None)
        if current is not None:
            record = self.records.live(current)
            if record is None or record.status != "running":
                current = None
        self.runtime_state.set_queue(current, [r.execution_id for r in self._queue])

    # --- interrupt -----------------------------------------------------------------------

    async def interrupt(self, kernel: ExecutingKernel) -> int:
        """Interrupt the running cell and clear the queue; returns how many were cancelled."""
        cancelled = self.cancel_queued(reason="interrupted")
        in_input = self.prompts.cancel("interrupted")
        if self._current is not None and not self._began.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._began.wait(), timeout=2)
        current = self._current
        await kernel.interrupt()
        if current is not None and not in_input:
            eid = current.execution_id
            task = asyncio.create_task(interrupt_until_done(kernel, eid, self._runs(eid)))
            self._interrupts.add(task)
            task.add_done_callback(self._interrupts.discard)
        return cancelled

    def _runs(self, execution_id: str) -> Callable[[], bool]:
        return lambda: self._current is not None and self._current.execution_id == execution_id

    # --- teardown ------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop the worker; whoever still waits for an execution gets an error."""
        self._closed = True
        self._wake.set()
        if self._worker is not None:
            await stop_task(self._worker)
        for task in list(self._interrupts):
            task.cancel()

    def fail_waiters(self, error: RuntimedError) -> None:
        waiters, self._done_waiters = self._done_waiters, {}
        for waiter in (w for ws in waiters.values() for w in ws if not w.done()):
            waiter.set_exception(error)
