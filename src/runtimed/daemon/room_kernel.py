"""RoomKernel: the one kernel of a room, its FIFO queue, and outputs written into the
room's notebook document.

Execution is document-first: a cell is queued by id, its source is read from the
document when it starts, and every output goes back into the document (coalesced into
one transaction every few ms) so that every peer sees the same thing. Kernel state, the
queue and one record per execution live in the room's runtime document.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pycrdt import Array

from runtimed.daemon.kernels import (
    ExecutionAbortedError,
    KernelConfig,
    KernelDiedError,
    KernelError,
    KernelLifecycle,
    KernelSession,
    KernelState,
    OutputChange,
    OutputStore,
)
from runtimed.daemon.rooms.room_store import room_key
from runtimed.documents.blob_refs import BlobRef, encode_payload, is_binary_mime, make_ref
from runtimed.documents.runtime import FINAL_STATUSES
from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from collections.abc import Callable

    from runtimed.daemon.blobs import BlobStore
    from runtimed.daemon.env_resolver import EnvResolver, ResolvedEnv
    from runtimed.daemon.rooms.notebook_room import NotebookRoom
    from runtimed.paths import RuntimePaths

log = logging.getLogger(__name__)

FLUSH_DELAY_SECS = 0.005
# A growing stream keeps only a live tail in the document: once its completed lines reach
# SPILL_CHUNK characters they move to a blob of their own (written once, never again) and
# the output's text becomes [ref, ref, ..., "tail"]. A line longer than SPILL_LINE_CAP
# without a newline spills too. When the execution ends, a tail over the blob threshold
# becomes a blob as well, so a finished stream holds only references.
SPILL_CHUNK = 256 * 1024
SPILL_LINE_CAP = 4 * SPILL_CHUNK
SUPPORTED_LANGUAGES = ("python",)


@dataclass(frozen=True)
class ExecutionRecord:
    """One run of one cell, as stored in the runtime document."""

    execution_id: str
    cell_id: str
    status: str = "queued"
    execution_count: int | None = None
    success: bool | None = None
    queued_at: float = 0.0
    started_at: float | None = None
    ended_at: float | None = None
    error: str | None = None
    batch: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Its fields as a plain dict (they are all scalars: no deep copy needed)."""
        return dict(vars(self))


class RoomKernel:
    """The kernel of one room. Created on the first kernel request of the room."""

    def __init__(
        self,
        room: NotebookRoom,
        resolver: EnvResolver,
        paths: RuntimePaths,
        blobs: BlobStore | None = None,
        blob_threshold: Callable[[], int] = lambda: 1024,
    ) -> None:
        self.room = room
        self.blobs = blobs
        self.blob_threshold = blob_threshold
        self._spilled: dict[tuple[str, int], list[Any]] = {}  # refs (text if unstored)
        self.resolver = resolver
        self.paths = paths
        self.runtime = room.runtime_state
        self.session: KernelSession | None = None
        self.resolved: ResolvedEnv | None = None
        self.store = OutputStore()
        self._queue: deque[ExecutionRecord] = deque()
        self._current: ExecutionRecord | None = None
        # Set when the kernel really begins the current cell (its execute_input): an
        # interrupt that arrives before that is lost by the kernel.
        self._began = asyncio.Event()
        self._interrupts: set[asyncio.Task[None]] = set()
        self._records: dict[str, ExecutionRecord] = {}
        self._done_waiters: dict[str, list[asyncio.Future[ExecutionRecord]]] = {}
        self._msg_cells: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._launch_lock = asyncio.Lock()
        self._worker: asyncio.Task[None] | None = None
        self._dirty: dict[str, set[int]] = {}
        self._flush_handle: asyncio.TimerHandle | None = None
        self._closed = False
        self.runtime.set_kernel(
            lifecycle="not_started",
            activity="idle",
            env_source=None,
            name=None,
            language=None,
            error=None,
        )
        self.runtime.set_queue(None, [])

    # --- state -------------------------------------------------------------------------

    @property
    def lifecycle(self) -> str:
        return str(self.runtime.kernel().get("lifecycle", "not_started"))

    @property
    def status(self) -> str:
        """For `list_rooms`: lifecycle, plus activity while running."""
        kernel = self.runtime.kernel()
        lifecycle = kernel.get("lifecycle", "not_started")
        return f"{lifecycle}/{kernel.get('activity')}" if lifecycle == "running" else lifecycle

    def info(self) -> dict[str, Any]:
        kernel = self.runtime.kernel()
        env = self.resolved.env if self.resolved else None
        return {
            **kernel,
            "python_path": env.python_path if env else None,
            "pid": self.session.pid if self.session else None,
        }

    def _on_state(self, state: KernelState) -> None:
        self.runtime.set_kernel(
            lifecycle=state.lifecycle.value, activity=state.activity, error=state.error
        )

    # --- launch ------------------------------------------------------------------------

    def _running(self) -> bool:
        return self.session is not None and self.session.lifecycle in (
            KernelLifecycle.RUNNING,
            KernelLifecycle.LAUNCHING,
            KernelLifecycle.RESTARTING,
        )

    async def launch(
        self,
        kernel_type: str = "python",
        env_source: str = "auto",
        notebook_path: str | None = None,
    ) -> dict[str, Any]:
        """Start the kernel (a no-op reporting the running one when it already runs)."""
        async with self._launch_lock:
            if self._running():
                return self.info()
            language = self._language(kernel_type)
            self.runtime.set_kernel(
                lifecycle="preparing_env",
                activity="unknown",
                env_source=env_source,
                language=language,
                error=None,
            )
            try:
                resolved = await self.resolver.resolve(
                    env_source, self.room.nb.metadata(), notebook_path or self.room.path
                )
            except RuntimedError as exc:
                self.runtime.set_kernel(lifecycle="dead", error=exc.message)
                raise
            self.resolved = resolved
            self.runtime.set_kernel(
                lifecycle="launching",
                env_source=resolved.env_source,
                name=f"{language} ({resolved.env_source})",
            )
            session = KernelSession(self._kernel_config(resolved), on_unrouted=self._on_unrouted)
            session.add_listener(self._on_state)
            try:
                await session.start()
            except KernelError as exc:
                self.runtime.set_kernel(lifecycle="dead", error=exc.message)
                await self._release_env()
                raise
            self.session = session
            self._ensure_worker()
            log.info(
                "kernel for %s running (%s, pid %s)",
                self.room.notebook_id,
                resolved.env_source,
                session.pid,
            )
            return self.info()

    def _language(self, kernel_type: str) -> str:
        metadata = self.room.nb.metadata()
        declared = (metadata.get("kernelspec") or {}).get("language") or (
            metadata.get("language_info") or {}
        ).get("name")
        for language in (kernel_type, declared):
            if language and str(language).lower() not in SUPPORTED_LANGUAGES:
                raise RuntimedError(
                    f"unknown kernel language {language!r}: runtimed runs python kernels",
                    "unsupported_language",
                )
        return "python"

    def _kernel_config(self, resolved: ResolvedEnv) -> KernelConfig:
        if self.room.path:
            cwd = Path(self.room.path).parent
        else:
            cwd = self.paths.cache_dir / "untitled" / room_key(self.room.notebook_id)
        cwd.mkdir(parents=True, exist_ok=True, mode=0o700)
        return KernelConfig.for_env(
            resolved.env,
            cwd=cwd,
            runtime_dir=self.paths.cache_dir / "kernels",
            ipython_dir=self.paths.cache_dir / "ipython",
        )

    # --- queue -------------------------------------------------------------------------

    def enqueue(self, cell_id: str, batch: str | None = None) -> str:
        """Queue a cell; a cell already waiting in the queue keeps its execution id."""
        cell_type = self.room.nb.cell_type(cell_id)  # raises "not found"
        if cell_type != "code":
            raise RuntimedError(f"cell {cell_id} is a {cell_type} cell, not code", "not_code")
        for queued in self._queue:
            if queued.cell_id == cell_id:
                return queued.execution_id
        record = ExecutionRecord(
            f"exec-{uuid.uuid4().hex[:16]}", cell_id, queued_at=time.time(), batch=batch
        )
        self._queue.append(record)
        self._save(record)
        self._publish_queue()
        self._ensure_worker()
        self._wake.set()
        return record.execution_id

    def enqueue_all(self) -> list[str]:
        """Queue every code cell in order; an error cancels the rest of this batch."""
        batch = f"batch-{uuid.uuid4().hex[:8]}"
        return [
            self.enqueue(cell.id, batch)
            for cell in self.room.nb.get_cells()
            if cell.cell_type == "code"
        ]

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name=f"queue-{self.room.notebook_id}")

    async def _work(self) -> None:
        while not self._closed:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            record = self._queue.popleft()
            self._current = record
            try:
                await self._run(record)
            except Exception:  # one bad execution must not stop the queue
                log.exception("execution %s failed unexpectedly", record.execution_id)
                self._finish(record, "error", error="internal error (see runtimed.log)")
            finally:
                if self._current is not None:
                    self._current = None
                    self._publish_queue()

    async def _run(self, record: ExecutionRecord) -> None:
        if self.session is None or self.session.lifecycle in (
            KernelLifecycle.NOT_STARTED,
            KernelLifecycle.SHUTDOWN,
        ):
            try:
                await self.launch()
            except RuntimedError as exc:
                self._finish(record, "error", error=f"the kernel could not start: {exc.message}")
                return
        session = self.session
        assert session is not None
        if session.lifecycle is not KernelLifecycle.RUNNING:
            self._finish(
                record,
                "error",
                error=f"the kernel is {session.lifecycle.value}; restart it with restart_kernel()",
            )
            return
        try:
            source = self.room.nb.get_source(record.cell_id)
        except RuntimedError:
            self._finish(record, "cancelled", error="the cell was deleted before it ran")
            return
        self._began.clear()
        # Send first, then do the bookkeeping while the kernel works: its messages are
        # handled only once this coroutine yields, after the outputs were reset below.
        try:
            execution = session.submit(source)
        except KernelError as exc:
            self._finish(record, "error", error=exc.message)
            return
        self._msg_cells[execution.msg_id] = record.cell_id
        record = self._save(replace(record, status="running", started_at=time.time()))
        self._publish_queue(executing=record.execution_id)
        with self.room.nb.doc.transaction():
            self._apply_changes(self.store.begin(record.cell_id))
            self._set_execution_count(record.cell_id, None)
            self._flush()
        try:
            reply = await execution.wait(lambda msg: self._on_message(record.cell_id, msg))
        except KernelDiedError as exc:
            self._kernel_died(record, exc)
            return
        except ExecutionAbortedError as exc:
            self._finish(record, "cancelled", error=exc.message)
            return
        except KernelError as exc:
            self._finish(record, "error", error=exc.message)
            return
        count = reply.execution_count or self.store.cell(record.cell_id).execution_count
        status = "done" if reply.success else "error"
        error = f"{reply.ename}: {reply.evalue}" if not reply.success else None
        self._finish(record, status, execution_count=count, success=reply.success, error=error)
        if not reply.success and record.batch:
            self._cancel_queued(batch=record.batch, reason="an earlier cell of run-all failed")

    def _kernel_died(self, record: ExecutionRecord, exc: KernelDiedError) -> None:
        message = (
            f"the kernel died while running this cell (exit code {exc.exit_code}); "
            "restart it with restart_kernel()"
        )
        error_output = {
            "output_type": "error",
            "ename": "KernelDied",
            "evalue": message,
            "traceback": [message],
        }
        self._apply_changes(self.store.cell(record.cell_id).add(error_output))
        self._finish(record, "error", success=False, error=message)
        self._cancel_queued(reason="the kernel died")

    def _finish(self, record: ExecutionRecord, status: str, **fields: Any) -> None:
        success = fields.pop("success", status == "done")
        final = replace(record, status=status, success=success, ended_at=time.time(), **fields)
        # Waiters first: their answers then join the frames below in one write to a peer
        # (their tasks run before the write that the first frame schedules).
        for waiter in self._done_waiters.pop(record.execution_id, []):
            if not waiter.done():
                waiter.set_result(final)
        with self.room.nb.doc.transaction():  # outputs reach peers before the record says done
            if "execution_count" in fields:
                self._set_execution_count(record.cell_id, final.execution_count)
            self._flush(final_cell=record.cell_id)
        self._save(final)
        if self._current is not None and self._current.execution_id == record.execution_id:
            self._current = None
            self._publish_queue()
        self.room.broadcast_event({"event": "execution_done", **final.as_dict()})

    async def wait_done(self, execution_id: str) -> ExecutionRecord:
        """The final record of an execution, once it has ended."""
        record = self._records.get(execution_id)
        if record is None:
            raise RuntimedError(f"execution {execution_id} not found", "not_found")
        if record.status in FINAL_STATUSES:
            return record
        waiter: asyncio.Future[ExecutionRecord] = asyncio.get_running_loop().create_future()
        self._done_waiters.setdefault(execution_id, []).append(waiter)
        return await waiter

    def _cancel_queued(self, batch: str | None = None, reason: str = "cancelled") -> int:
        keep: deque[ExecutionRecord] = deque()
        cancelled = 0
        while self._queue:
            record = self._queue.popleft()
            if batch is not None and record.batch != batch:
                keep.append(record)
                continue
            cancelled += 1
            self._finish(record, "cancelled", success=False, error=reason)
        self._queue = keep
        self._publish_queue()
        return cancelled

    def _save(self, record: ExecutionRecord) -> ExecutionRecord:
        self._records[record.execution_id] = record
        self.runtime.set_execution(
            record.execution_id, {k: v for k, v in vars(record).items() if k != "execution_id"}
        )
        return record

    def _publish_queue(self, executing: str | None = None) -> None:
        current = executing or (self._current.execution_id if self._current else None)
        if current is not None and self._records[current].status != "running":
            current = None
        self.runtime.set_queue(current, [r.execution_id for r in self._queue])

    def record(self, execution_id: str) -> ExecutionRecord | None:
        return self._records.get(execution_id)

    # --- outputs -----------------------------------------------------------------------

    def _on_message(self, cell_id: str, msg: dict[str, Any]) -> None:
        if msg.get("msg_type") == "execute_input":
            self._began.set()
        self._apply_changes(self.store.apply(cell_id, msg))
        self._spill_now(cell_id, msg)

    def _on_unrouted(self, msg: dict[str, Any]) -> None:
        parent = (msg.get("parent_header") or {}).get("msg_id")
        cell_id = self._msg_cells.get(str(parent))
        if cell_id is not None:
            self._apply_changes(self.store.apply(cell_id, msg))
            self._spill_now(cell_id, msg)

    def _spill_now(self, cell_id: str, msg: dict[str, Any]) -> None:
        """Spill a fast stream as it arrives, so the daemon never holds more than about
        SPILL_CHUNK of it (the flush timer may lag behind a flood of messages)."""
        if self.blobs is None or msg.get("msg_type", msg.get("header", {}).get("msg_type")) != (
            "stream"
        ):
            return
        cell = self.store.cell(cell_id)
        last = len(cell) - 1
        if last >= 0 and cell.is_stream(last):
            self._spill_one(cell_id, last, everything=False)

    def _apply_changes(self, changes: list[OutputChange]) -> None:
        for change in changes:
            if change.kind == "clear":
                for key in [k for k in self._spilled if k[0] == change.cell_id]:
                    del self._spilled[key]
            dirty = self._dirty.setdefault(change.cell_id, set())
            dirty.add(-1 if change.kind == "clear" else change.index)
        if changes and self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(FLUSH_DELAY_SECS, self._flush)

    def _flush(self, final_cell: str | None = None) -> None:
        """Write pending output changes into the document: one transaction for all cells.

        ``final_cell``: that cell's execution ended; its streams' tails may become blobs.
        """
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if final_cell is not None and self.blobs is not None:
            self._finalize_streams(final_cell)
        dirty, self._dirty = self._dirty, {}
        if not dirty:
            return
        with self.room.nb.doc.transaction():
            for cell_id, indexes in dirty.items():
                self._spill_streams(cell_id, indexes)
                self._write_outputs(cell_id, indexes)

    # --- blobs -------------------------------------------------------------------------

    def _put(self, data: bytes, media_type: str) -> BlobRef | None:
        assert self.blobs is not None
        try:
            return make_ref(self.blobs.put(data, media_type), len(data), media_type)
        except RuntimedError as exc:
            log.warning("output payload not stored: %s", exc.message)
            return None
        except OSError:
            log.exception("cannot write a blob; the payload stays inline")
            return None

    def _spill_streams(self, cell_id: str, indexes: set[int]) -> None:
        """Move the completed head of growing streams to blobs (see SPILL_CHUNK)."""
        if self.blobs is None:
            return
        cell = self.store.cell(cell_id)
        for index in indexes:
            if index >= 0 and cell.is_stream(index):
                self._spill_one(cell_id, index, everything=False)

    def _spill_one(self, cell_id: str, index: int, everything: bool) -> None:
        cell = self.store.cell(cell_id)
        head = cell.spill_stream(index, SPILL_CHUNK, SPILL_LINE_CAP, everything)
        if not head:
            return
        ref = self._put(head.encode(), "text/plain")
        if ref is None:  # keep the text rather than lose it
            ref_or_text: Any = head
        else:
            ref_or_text = ref
        self._spilled.setdefault((cell_id, index), []).append(ref_or_text)

    def _finalize_streams(self, cell_id: str) -> None:
        cell = self.store.cell(cell_id)
        threshold = self.blob_threshold()
        for index, output in enumerate(cell.outputs):
            if output.get("output_type") != "stream" or not cell.is_stream(index):
                continue
            tail = str(output.get("text", ""))
            if len(tail) > threshold:
                self._spill_one(cell_id, index, everything=True)
                self._dirty.setdefault(cell_id, set()).add(index)

    def _doc_output(self, cell_id: str, index: int, output: dict[str, Any]) -> dict[str, Any]:
        """The document's form of an output: big and binary payloads as blob references."""
        out = copy.deepcopy(output)
        if self.blobs is None:
            return out
        spilled = self._spilled.get((cell_id, index))
        if spilled and out.get("output_type") == "stream":
            tail = str(out.get("text", ""))
            parts = [copy.deepcopy(p) for p in spilled]
            out["text"] = [*parts, tail] if tail else (parts[0] if len(parts) == 1 else parts)
        data = out.get("data")
        if isinstance(data, dict):
            threshold = self.blob_threshold()
            for mime, value in list(data.items()):
                if not (is_binary_mime(mime) or _rough_size(value) > threshold):
                    continue
                payload = encode_payload(mime, value)
                if payload is None or (len(payload) <= threshold and not is_binary_mime(mime)):
                    continue
                ref = self._put(payload, mime)
                if ref is not None:
                    data[mime] = ref
                elif len(payload) > threshold:
                    data[mime] = f"[{mime} output of {len(payload)} bytes: too large to keep]"
        return out

    def _write_outputs(self, cell_id: str, indexes: set[int]) -> None:
        try:
            ycell = self.room.nb.ycell(cell_id)
        except RuntimedError:
            return  # deleted while running
        array = ycell.get("outputs")
        if not isinstance(array, Array):
            ycell["outputs"] = array = Array()
        outputs = self.store.outputs(cell_id)
        have = len(array)
        if -1 in indexes or len(outputs) < have:
            array.clear()
            array.extend([self._doc_output(cell_id, i, o) for i, o in enumerate(outputs)])
            return
        for index in sorted(i for i in indexes if i < have):
            array[index] = self._doc_output(cell_id, index, outputs[index])
        if len(outputs) > have:
            array.extend(
                [self._doc_output(cell_id, have + i, o) for i, o in enumerate(outputs[have:])]
            )

    def _set_execution_count(self, cell_id: str, count: int | None) -> None:
        with contextlib.suppress(RuntimedError):
            ycell = self.room.nb.ycell(cell_id)
            if ycell.get("execution_count") != count:
                ycell["execution_count"] = count

    def clear_outputs(self, cell_id: str) -> None:
        self.room.nb.get_cell(cell_id)  # raises "not found"
        self._apply_changes(self.store.clear(cell_id) or [OutputChange(cell_id, "clear")])
        self._flush()

    # --- control -----------------------------------------------------------------------

    def _require_session(self) -> KernelSession:
        if self.session is None or self.session.lifecycle is KernelLifecycle.SHUTDOWN:
            raise RuntimedError(
                "no kernel is running in this notebook; start one with start_kernel()", "no_kernel"
            )
        return self.session

    async def interrupt(self) -> int:
        """Interrupt the running cell and clear the queue; returns how many were cancelled."""
        session = self._require_session()
        cancelled = self._cancel_queued(reason="interrupted")
        if self._current is not None and not self._began.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._began.wait(), timeout=2)
        current = self._current
        await session.interrupt()
        if current is not None:
            task = asyncio.create_task(self._interrupt_until_done(session, current.execution_id))
            self._interrupts.add(task)
            task.add_done_callback(self._interrupts.discard)
        return cancelled

    async def _interrupt_until_done(self, session: KernelSession, execution_id: str) -> None:
        """A kernel can miss an interrupt that lands at an awkward moment: ask again, as a
        person would, until the cell ends (at most three more times)."""
        for _ in range(3):
            for _ in range(15):  # up to 0.75 s for the cell to end
                if self._current is None or self._current.execution_id != execution_id:
                    return
                await asyncio.sleep(0.05)
            if session.lifecycle is not KernelLifecycle.RUNNING:
                return
            log.info("interrupting %s again: the cell is still running", execution_id)
            with contextlib.suppress(KernelError):
                await session.interrupt()

    async def restart(self) -> dict[str, Any]:
        session = self._require_session()
        self._cancel_queued(reason="the kernel restarted")
        await session.restart()
        self._ensure_worker()
        return self.info()

    async def complete(self, code: str, cursor_pos: int) -> dict[str, Any]:
        result = await self._require_session().complete(code, cursor_pos)
        return {
            "matches": list(result.matches),
            "cursor_start": result.cursor_start,
            "cursor_end": result.cursor_end,
            "metadata": dict(result.metadata),
        }

    async def shutdown(self) -> None:
        """Stop the kernel and give its env back (pool envs are deleted)."""
        self._cancel_queued(reason="the kernel was shut down")
        session, self.session = self.session, None
        if session is not None:
            await session.shutdown()
        await self._release_env()
        self.runtime.set_kernel(lifecycle="shutdown", activity="idle")

    async def _release_env(self) -> None:
        resolved, self.resolved = self.resolved, None
        if resolved is not None:
            await self.resolver.release(resolved)

    async def close(self) -> None:
        """The room is going away: stop the queue, the kernel, and release the env."""
        self._closed = True
        self._wake.set()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(BaseException):
                await self._worker
        await self.shutdown()
        waiters, self._done_waiters = self._done_waiters, {}
        for waiter in (w for ws in waiters.values() for w in ws if not w.done()):
            waiter.set_exception(RuntimedError("the notebook was closed", "closed"))


def _rough_size(value: Any) -> int:
    """About how many bytes a MIME payload is (strings and lists of strings exactly)."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return sum(len(v) for v in value)
    import json

    try:
        return len(json.dumps(value))
    except (TypeError, ValueError):
        return 0
