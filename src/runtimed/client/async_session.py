"""AsyncSession: a client's live copy of one notebook room.

The session holds a pycrdt replica of the room's document. Local edits are applied to the
replica and sent as Yjs updates; every mutating call then does a round trip, so when it
returns the daemon has applied and logged the edit. Remote edits arrive on a reader task.
After a lost connection the next call reconnects and the Yjs sync exchange resends
whatever the daemon does not have, so nothing is lost or duplicated.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import anyio._backends._asyncio  # noqa: F401 - pycrdt's Doc() loads it on first use in a loop
import pycrdt
from pycrdt import Doc, create_sync_message, create_update_message, handle_sync_message

from runtimed.client.blobs import AsyncBlobClient
from runtimed.client.connection import open_async_connection
from runtimed.client.results import ExecutionResult
from runtimed.documents.blob_refs import output_refs, resolve_output
from runtimed.documents.notebook import Cell, NotebookDoc
from runtimed.documents.runtime import RuntimeDoc
from runtimed.errors import RuntimedError
from runtimed.protocol.notebook import FrameType, pack, pack_json, parse_json, unpack
from runtimed.protocol.stream import FramedStream

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 30.0
REQUEST_TIMEOUT = 60.0
LAUNCH_TIMEOUT = 900.0  # may build an env from the notebook's own dependencies

EventListener = Callable[[dict[str, Any]], None]


class AsyncSession:
    """A notebook session on asyncio. ``Session`` is its blocking twin.

    ``notebook_id=None`` opens a new untitled notebook with a random id.
    """

    def __init__(
        self,
        notebook_id: str | None = None,
        socket_path: str | Path | None = None,
        *,
        path: str | Path | None = None,
        client_name: str | None = None,
    ) -> None:
        self._path = os.path.abspath(path) if path is not None else None
        self._notebook_id = notebook_id or (self._path or f"untitled-{uuid.uuid4().hex[:12]}")
        self._socket_path = socket_path
        self._blobs: AsyncBlobClient | None = None
        self._client_name = client_name
        self._nb = NotebookDoc()
        self._runtime: Doc[Any] = Doc()
        self._stream: FramedStream | None = None
        self._reader: asyncio.Task[None] | None = None
        self._epoch: str | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._synced = asyncio.Event()
        self._applying_remote = False
        self._listeners: list[EventListener] = []
        self._closed = False
        self._ever_connected = False
        self._connect_lock = asyncio.Lock()
        self._finished: dict[str, dict[str, Any]] = {}
        self._exec_waiters: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._listeners.append(self._on_execution_event)
        self._observe()

    # --- identity ------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, socket_path: str | Path | None = None) -> Self:
        """A session on the notebook file at ``path`` (created on save if missing)."""
        return cls(socket_path=socket_path, path=path)

    @property
    def notebook_id(self) -> str:
        return self._notebook_id

    @property
    def path(self) -> str | None:
        return self._path

    @property
    def is_connected(self) -> bool:
        return self._stream is not None and self._reader is not None and not self._reader.done()

    @property
    def document(self) -> NotebookDoc:
        """The local replica (read it; change it through the session's methods)."""
        return self._nb

    @property
    def runtime_doc(self) -> Doc[Any]:
        return self._runtime

    def __repr__(self) -> str:
        state = "connected" if self.is_connected else "disconnected"
        return f"<{type(self).__name__} notebook_id={self._notebook_id!r} {state}>"

    # --- connection ------------------------------------------------------------------

    async def connect(self) -> Self:
        """Join the room and wait until the local replica has the room's full state."""
        async with self._connect_lock:
            if self.is_connected:
                return self
            self._closed = False
            await self._open_stream()
        return self

    async def _open_stream(self) -> None:
        if self._path is not None:
            params: dict[str, Any] = {"path": self._path}
            channel = "open_notebook"
        else:
            params, channel = {"notebook_id": self._notebook_id}, "notebook_sync"
        stream, reply = await open_async_connection(
            self._socket_path, channel, epoch=self._epoch, client=self._client_name, **params
        )
        if reply.get("reset") or (self._epoch is not None and reply.get("epoch") != self._epoch):
            self._reset_replica()  # history from another epoch is replaced, never merged
        self._epoch = reply.get("epoch")
        self._notebook_id = reply.get("notebook_id", self._notebook_id)
        self._path = reply.get("path") or self._path
        self._stream = stream
        self._synced.clear()
        self._reader = asyncio.create_task(self._read_loop(stream))
        await stream.write_frame(pack(FrameType.NOTEBOOK_SYNC, create_sync_message(self._nb.doc)))
        await stream.write_frame(pack(FrameType.RUNTIME_SYNC, create_sync_message(self._runtime)))
        try:
            await asyncio.wait_for(self._wait_synced(), CONNECT_TIMEOUT)
        except TimeoutError:
            await self._drop_stream()
            raise RuntimedError(
                "the daemon did not send the notebook state in time", "timeout"
            ) from None
        self._ever_connected = True

    async def _wait_synced(self) -> None:
        reader = self._reader
        assert reader is not None
        synced = asyncio.ensure_future(self._synced.wait())
        await asyncio.wait({synced, reader}, return_when=asyncio.FIRST_COMPLETED)
        if not synced.done():
            synced.cancel()
            raise RuntimedError("the daemon closed the notebook connection", "disconnected")

    async def close(self) -> None:
        """Leave the room. The daemon keeps the notebook (and its kernel) for other peers."""
        self._closed = True
        await self._drop_stream()
        if self._blobs is not None:
            await self._blobs.close()

    async def _drop_stream(self) -> None:
        stream, reader = self._stream, self._reader
        self._stream = self._reader = None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader
        if stream is not None:
            await stream.close()
        self._fail_pending(RuntimedError("the connection to the daemon was closed", "disconnected"))

    async def _ensure_connected(self) -> FramedStream:
        if self._closed and self._ever_connected:
            raise RuntimedError("this session is closed", "closed")
        if not self.is_connected:
            await self._drop_stream()
            await self.connect()
        assert self._stream is not None
        return self._stream

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- replica -------------------------------------------------------------------

    def _observe(self) -> None:
        self._nb.doc.observe(self._on_local_update)

    def _reset_replica(self) -> None:
        self._nb = NotebookDoc()
        self._runtime = Doc()
        self._observe()

    def _on_local_update(self, event: pycrdt.TransactionEvent) -> None:
        if self._applying_remote or self._stream is None:
            return  # offline edits reach the daemon through the sync exchange on reconnect
        with contextlib.suppress(Exception):
            self._stream.write_frame_nowait(
                pack(FrameType.NOTEBOOK_SYNC, create_update_message(event.update))
            )

    async def _read_loop(self, stream: FramedStream) -> None:
        try:
            while (frame := await stream.read_frame()) is not None:
                self._handle_frame(stream, frame)
        except (ConnectionError, asyncio.IncompleteReadError, RuntimedError) as exc:
            log.debug("notebook connection lost: %s", exc)
        finally:
            self._fail_pending(RuntimedError("lost the connection to the daemon", "disconnected"))

    def _handle_frame(self, stream: FramedStream, frame: bytes) -> None:
        frame_type, payload = unpack(frame)
        if frame_type is FrameType.NOTEBOOK_SYNC:
            self._apply_remote(stream, frame_type, payload, self._nb.doc)
            if len(payload) > 1 and payload[1] == 1:  # SYNC_STEP2: we hold the full state
                self._synced.set()
        elif frame_type is FrameType.RUNTIME_SYNC:
            self._apply_remote(stream, frame_type, payload, self._runtime)
        elif frame_type is FrameType.RESPONSE:
            response = parse_json(payload, "response")
            future = self._pending.pop(int(response.get("id") or 0), None)
            if future is not None and not future.done():
                future.set_result(response)
        elif frame_type is FrameType.EVENT:
            event = parse_json(payload, "event")
            for listener in list(self._listeners):
                listener(event)

    def _apply_remote(
        self, stream: FramedStream, frame_type: FrameType, payload: bytes, doc: Doc[Any]
    ) -> None:
        self._applying_remote = True
        try:
            reply = handle_sync_message(payload[1:], doc)
        finally:
            self._applying_remote = False
        if reply is not None:
            stream.write_frame_nowait(pack(frame_type, reply))

    def _fail_pending(self, error: RuntimedError) -> None:
        pending, self._pending = self._pending, {}
        waiters, self._exec_waiters = self._exec_waiters, {}
        for future in [*pending.values(), *waiters.values()]:
            if not future.done():
                future.set_exception(error)
                future.exception()  # a waiter may have given up: no "never retrieved" noise

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener(event)`` for each event the daemon sends to this room."""
        self._listeners.append(listener)

    def remove_listener(self, listener: EventListener) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    # --- requests --------------------------------------------------------------------

    async def request(
        self, kind: str, timeout: float | None = REQUEST_TIMEOUT, **params: Any
    ) -> Any:
        """Send a room request and return its result; errors raise RuntimedError."""
        stream = await self._ensure_connected()
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        await stream.write_frame(
            pack_json(FrameType.REQUEST, {"id": request_id, "type": kind, **params})
        )
        try:
            response = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise RuntimedError(f"{kind} got no answer within {timeout} s", "timeout") from None
        if not response.get("ok"):
            raise RuntimedError(
                response.get("error") or f"{kind} failed", response.get("code", "error")
            )
        return response.get("result")

    async def _confirm(self) -> None:
        await self.request("sync")

    # --- document API ------------------------------------------------------------------

    async def create_cell(
        self, source: str = "", cell_type: str = "code", index: int | None = None
    ) -> str:
        """Insert a cell (at the end when ``index`` is None); returns its ``cell-<uuid>`` id."""
        await self._ensure_connected()
        cell_id = self._nb.insert_cell(index, source, cell_type)
        await self._confirm()
        return cell_id

    async def get_cell(self, cell_id: str) -> Cell:
        return self._nb.get_cell(cell_id)

    async def get_cells(self) -> list[Cell]:
        """Every cell, in document order."""
        return self._nb.get_cells()

    async def set_source(self, cell_id: str, text: str) -> None:
        await self._ensure_connected()
        self._nb.set_source(cell_id, text)
        await self._confirm()

    async def append_source(self, cell_id: str, text: str) -> None:
        await self._ensure_connected()
        self._nb.append_source(cell_id, text)
        await self._confirm()

    async def insert_source(self, cell_id: str, index: int, text: str) -> None:
        """Insert ``text`` at character ``index`` of the cell's source."""
        await self._ensure_connected()
        self._nb.insert_source(cell_id, index, text)
        await self._confirm()

    async def move_cell(self, cell_id: str, index: int) -> None:
        await self._ensure_connected()
        self._nb.move_cell(cell_id, index)
        await self._confirm()

    async def delete_cell(self, cell_id: str) -> None:
        await self._ensure_connected()
        self._nb.delete_cell(cell_id)
        await self._confirm()

    async def set_metadata(self, key: str, value: Any) -> None:
        """Set a key of the notebook's metadata (JSON-serialisable value)."""
        json.dumps(value)
        await self._ensure_connected()
        self._nb.set_metadata(key, value)
        await self._confirm()

    async def get_metadata(self, key: str) -> Any:
        return self._nb.get_metadata(key)

    async def sync(self) -> None:
        """Wait until the daemon has applied everything this session sent."""
        await self._confirm()

    async def save(self, path: str | Path | None = None) -> str:
        """Write the notebook as .ipynb (to its own file when ``path`` is None)."""
        target = os.path.abspath(path) if path is not None else None
        result = await self.request("save", path=target)
        return str(result["path"])

    # --- kernel and execution API ------------------------------------------------------

    @property
    def kernel(self) -> dict[str, Any]:
        """The room's kernel state from the runtime document (lifecycle, activity, ...)."""
        return RuntimeDoc(self._runtime).kernel()

    @property
    def kernel_started(self) -> bool:
        return self.kernel.get("lifecycle") == "running"

    @property
    def env_source(self) -> str | None:
        """The resolved environment source of the running kernel, e.g. ``uv:prewarmed``."""
        value = self.kernel.get("env_source")
        return str(value) if value else None

    async def start_kernel(
        self,
        kernel_type: str = "python",
        env_source: str = "auto",
        notebook_path: str | None = None,
    ) -> dict[str, Any]:
        """Start the room's kernel (a no-op when one runs); returns the kernel's state."""
        path = os.path.abspath(notebook_path) if notebook_path else None
        result: dict[str, Any] = await self.request(
            "launch_kernel",
            LAUNCH_TIMEOUT,
            kernel_type=kernel_type,
            env_source=env_source,
            notebook_path=path,
        )
        return result

    async def queue_cell(self, cell_id: str) -> str:
        """Queue a cell for execution and return its execution id at once."""
        result = await self.request("execute_cell", cell_id=cell_id)
        return str(result["execution_id"])

    async def execute_cell(self, cell_id: str, timeout: float | None = None) -> ExecutionResult:
        """Run a cell (its source as the document holds it) and wait for its outputs.

        Starts the kernel first when none runs.
        """
        # One request that the daemon answers when the cell has run: the answer arrives in
        # the same write as the outputs (a round trip less than queue + wait).
        try:
            event = await self.request("execute_cell", timeout, cell_id=cell_id, wait=True)
        except RuntimedError as exc:
            if exc.code != "timeout":
                raise
            raise RuntimedError(
                f"cell {cell_id} did not finish within {timeout} s "
                "(it keeps running; interrupt() stops it)",
                "timeout",
            ) from None
        self._on_execution_event(event)
        return await self._result(event)

    async def run(self, code: str, timeout: float | None = None) -> ExecutionResult:
        """Append a code cell with ``code`` and execute it."""
        await self._ensure_connected()
        # No separate ack: the execute request travels behind the cell's update frame.
        cell_id = self._nb.insert_cell(None, code)
        return await self.execute_cell(cell_id, timeout)

    async def run_all(self, timeout: float | None = None) -> list[ExecutionResult]:
        """Run every code cell in order; an error cancels the cells after it."""
        result = await self.request("run_all_cells")
        return [await self.wait_for_execution(eid, timeout) for eid in result["execution_ids"]]

    async def wait_for_execution(
        self, execution_id: str, timeout: float | None = None
    ) -> ExecutionResult:
        event = self._finished.get(execution_id)
        if event is None:
            future = self._exec_waiters.get(execution_id)
            if future is None:
                future = asyncio.get_running_loop().create_future()
                self._exec_waiters[execution_id] = future
            try:
                event = await asyncio.wait_for(asyncio.shield(future), timeout)
            except TimeoutError:
                raise RuntimedError(
                    f"execution {execution_id} did not finish within {timeout} s "
                    "(it keeps running; interrupt() stops it)",
                    "timeout",
                ) from None
        return await self._result(event)

    async def _result(self, event: dict[str, Any]) -> ExecutionResult:
        cell_id = str(event["cell_id"])
        try:
            cell = self._nb.get_cell(cell_id)
        except RuntimedError:
            cell = Cell(id=cell_id, cell_type="code", source="")
        return ExecutionResult.from_cell(cell, event, await self._prefetch(cell.outputs))

    # --- blobs -------------------------------------------------------------------------

    async def get_blob(self, digest: str) -> bytes:
        """A blob's bytes, from the daemon's blob store (cached by hash)."""
        if self._blobs is None:
            self._blobs = AsyncBlobClient(self._socket_path)
        return await self._blobs.get(digest)

    async def _prefetch(self, outputs: list[dict[str, Any]]) -> Callable[[str], bytes]:
        """Fetch every blob ``outputs`` refer to; returns a lookup for resolving them."""
        fetched: dict[str, bytes] = {}
        for output in outputs:
            for ref in output_refs(output):
                if ref["blob"] not in fetched:
                    fetched[ref["blob"]] = await self.get_blob(ref["blob"])
        return fetched.__getitem__

    async def get_outputs(self, cell_id: str) -> list[dict[str, Any]]:
        """A cell's outputs with blob references resolved: ordinary nbformat outputs."""
        outputs = self._nb.get_cell(cell_id).outputs
        fetch = await self._prefetch(outputs)
        return [resolve_output(o, fetch) for o in outputs]

    def _on_execution_event(self, event: dict[str, Any]) -> None:
        if event.get("event") != "execution_done":
            return
        execution_id = str(event.get("execution_id"))
        self._finished[execution_id] = event
        if len(self._finished) > 10_000:  # bounded memory for long-lived sessions
            self._finished.pop(next(iter(self._finished)))
        future = self._exec_waiters.pop(execution_id, None)
        if future is not None and not future.done():
            future.set_result(event)

    async def interrupt(self) -> int:
        """Interrupt the running cell and clear the queue; returns how many were cancelled."""
        result = await self.request("interrupt")
        return int(result["cancelled"])

    async def restart_kernel(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("restart_kernel", LAUNCH_TIMEOUT)
        return result

    async def shutdown_kernel(self) -> None:
        await self.request("shutdown_kernel")

    async def clear_outputs(self, cell_id: str) -> None:
        await self.request("clear_outputs", cell_id=cell_id)

    async def complete(self, code: str, cursor_pos: int | None = None) -> dict[str, Any]:
        """Completions for ``code`` at ``cursor_pos`` (default: the end)."""
        pos = len(code) if cursor_pos is None else cursor_pos
        result: dict[str, Any] = await self.request("complete", code=code, cursor_pos=pos)
        return result
