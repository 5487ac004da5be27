"""Notebook-channel requests, decoded once into ``RoomRequest`` Structs and dispatched by
type: the document requests here (saving through the room's ``NotebookFile``), kernel
requests to the room's ``RoomKernel`` (from ``RoomKernels``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from runtimed.daemon.envs.notebook_trust import NotebookTrust, trust_report
from runtimed.daemon.envs.sources import NotebookFacts
from runtimed.daemon.execution.room_kernel import RoomKernel
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.peer import Peer
from runtimed.errors import RuntimedError
from runtimed.protocol.room import (
    BatchQueued,
    Cancelled,
    ClearOutputsRequest,
    CompleteRequest,
    Done,
    ExecuteCellRequest,
    ExecutionQueued,
    GetExecutionRequest,
    GetInfoRequest,
    InputReplyRequest,
    InspectRequest,
    InterruptRequest,
    KernelInfoRequest,
    LaunchKernelRequest,
    RestartKernelRequest,
    RoomDetails,
    RoomRequest,
    RoomResult,
    RunAllCellsRequest,
    RunCodeRequest,
    Saved,
    SaveRequest,
    SendWidgetMessageRequest,
    SetWidgetStateRequest,
    ShutdownKernelRequest,
    Synced,
    SyncRequest,
    TrustRequest,
)


class RoomRequests:
    """Serves the requests of every room.

    ``room_kernels`` holds (and makes) the rooms' kernels; ``blob_fetch`` resolves blob
    references when a notebook is saved (the file gets the content).
    """

    def __init__(
        self,
        room_kernels: RoomKernels,
        blob_fetch: Callable[[str], bytes] | None,
        trust: NotebookTrust | None = None,
    ) -> None:
        self.room_kernels = room_kernels
        self.blob_fetch = blob_fetch
        #: Answers TrustRequest (the resolver's NotebookTrust: one gate for both).
        self.trust = trust

    async def handle(
        self, room: NotebookRoom, request: RoomRequest, peer: Peer | None = None
    ) -> RoomResult:
        """Answer ``request``; ``peer``: the client that sent it (none: the REST API)."""
        match request:
            case SyncRequest():
                return Synced(cells=len(room.nb.cells))
            case SaveRequest(path=path, force=force):
                written = room.file.save(_absolute(path, "save"), self.blob_fetch, force)
                room.broadcast_event({"event": "saved", "path": written}, exclude=None)
                return Saved(path=written)
            case GetInfoRequest():
                return RoomDetails(
                    notebook_id=room.notebook_id,
                    path=room.file.path,
                    epoch=room.epoch,
                    peers=len(room.peers),
                    cells=len(room.nb.cells),
                )
            case TrustRequest(approve=approve, packages=packages, env_source=source):
                if self.trust is None:
                    raise RuntimedError("this daemon has no trust store", "unknown_request")
                facts = NotebookFacts.of_document(room.nb, room.file.path)
                return await asyncio.to_thread(
                    trust_report, self.trust, facts, approve, packages, source or "auto"
                )
        return await self._kernel_request(self.room_kernels.of(room), request, peer)

    def peer_left(self, room: NotebookRoom, peer: Peer) -> None:
        """A prompt waiting for ``peer`` gets EOF (see InputPrompts)."""
        room_kernel = self.room_kernels.get(room.notebook_id)
        if room_kernel is not None:
            room_kernel.input_client_left(peer)

    async def _kernel_request(
        self, room_kernel: RoomKernel, request: RoomRequest, peer: Peer | None
    ) -> RoomResult:
        match request:
            case LaunchKernelRequest(kernel_type=kind, env_source=source, notebook_path=path):
                return await room_kernel.launch(
                    _non_empty(kind, "kernel_type"), source or "auto", path
                )
            case ExecuteCellRequest(cell_id=cell_id, stdin=stdin):
                # Answered at once; the result reaches every peer as the event
                # execution_done, in the same write as the cell's last outputs.
                cell_id = _non_empty(cell_id, "cell_id")
                return _queued(room_kernel, cell_id, peer if stdin else None)
            case RunCodeRequest(code=code, stdin=stdin):
                queued = room_kernel.queue.enqueue_code(code, peer if stdin else None)
                return ExecutionQueued(queued.execution_id, queued.cell_id)
            case InputReplyRequest(execution_id=execution_id, value=value):
                if peer is None:
                    raise RuntimedError(
                        "input_reply needs a notebook connection", "invalid_request"
                    )
                room_kernel.answer_input(execution_id, value, peer)
                return Done()
            case RunAllCellsRequest(stop_on_error=stop_on_error):
                return BatchQueued(room_kernel.enqueue_all(stop_on_error))
            case InterruptRequest():
                return Cancelled(await room_kernel.interrupt())
            case RestartKernelRequest():
                return await room_kernel.restart()
            case ShutdownKernelRequest():
                await room_kernel.shutdown()
                return Done()
            case ClearOutputsRequest(cell_id=cell_id):
                room_kernel.clear_outputs(_non_empty(cell_id, "cell_id"))
                return Done()
            case CompleteRequest(code=code, cursor_pos=cursor):
                return await room_kernel.complete(code, len(code) if cursor is None else cursor)
            case InspectRequest(code=code, cursor_pos=cursor, detail_level=level):
                pos = len(code) if cursor is None else cursor
                return await room_kernel.inspect(code, pos, level)
            case GetExecutionRequest(execution_id=execution_id):
                record = room_kernel.record(execution_id)
                if record is None:
                    raise RuntimedError(f"execution {execution_id} not found", "not_found")
                return record
            case KernelInfoRequest():
                return room_kernel.info()
            case SetWidgetStateRequest(model_id=model_id, state=state):
                room_kernel.comms.set_state(model_id, state)
                return Done()
            case SendWidgetMessageRequest(model_id=model_id, content=content):
                room_kernel.comms.send_custom(model_id, content)
                return Done()
        raise RuntimedError(f"unhandled request {type(request).__name__}", "unknown_request")


def _queued(room_kernel: RoomKernel, cell_id: str, input_client: Peer | None) -> ExecutionQueued:
    # An idle running kernel gets the cell from enqueue itself, before this answer
    # writes the runtime state and the reply (the client waits for the kernel, not for
    # the reply).
    return ExecutionQueued(room_kernel.enqueue(cell_id, input_client), cell_id)


def _absolute(path: str | None, what: str) -> str | None:
    """The daemon's working directory means nothing to a client: paths come absolute."""
    if path is not None and not os.path.isabs(path):
        raise RuntimedError(
            f"{what}: path must be absolute, not {path!r} (clients resolve relative paths "
            "against their own working directory)",
            "invalid_path",
        )
    return path


def _non_empty(value: str, name: str) -> str:
    if not value:
        raise RuntimedError(f"{name!r} must be a non-empty string", "invalid_request")
    return value
