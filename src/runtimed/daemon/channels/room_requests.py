"""Notebook-channel requests, decoded once into ``RoomRequest`` Structs and dispatched by
type: the document requests here, kernel requests to the room's ``RoomKernel``."""

from __future__ import annotations

import os
from collections.abc import Callable

from runtimed.daemon.execution.room_kernel import RoomKernel, RoomKernelDeps
from runtimed.daemon.rooms.notebook_room import NotebookRoom
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
    InterruptRequest,
    KernelInfoRequest,
    LaunchKernelRequest,
    RestartKernelRequest,
    RoomDetails,
    RoomRequest,
    RoomResult,
    RunAllCellsRequest,
    Saved,
    SaveRequest,
    ShutdownKernelRequest,
    Synced,
    SyncRequest,
)

KERNEL_KEY = "kernel"


class RoomRequests:
    """Serves the requests of every room.

    ``blob_fetch`` resolves blob references when a notebook is saved (the file gets the
    content); ``kernels`` is what a room's kernel is made from.
    """

    def __init__(self, kernels: RoomKernelDeps, blob_fetch: Callable[[str], bytes] | None) -> None:
        self.kernels = kernels
        self.blob_fetch = blob_fetch

    def kernel_of(self, room: NotebookRoom) -> RoomKernel:
        kernel = room.extensions.get(KERNEL_KEY)
        if kernel is None:
            kernel = room.extensions[KERNEL_KEY] = RoomKernel(room, self.kernels)
        assert isinstance(kernel, RoomKernel)
        return kernel

    async def handle(self, room: NotebookRoom, request: RoomRequest) -> RoomResult:
        match request:
            case SyncRequest():
                return Synced(cells=len(room.nb.cells))
            case SaveRequest(path=path, force=force):
                written = room.save_ipynb(_absolute(path, "save"), self.blob_fetch, force)
                room.broadcast_event({"event": "saved", "path": written}, exclude=None)
                return Saved(path=written)
            case GetInfoRequest():
                return RoomDetails(
                    notebook_id=room.notebook_id,
                    path=room.path,
                    epoch=room.epoch,
                    peers=len(room.peers),
                    cells=len(room.nb.cells),
                )
        return await self._kernel_request(self.kernel_of(room), request)

    async def _kernel_request(self, kernel: RoomKernel, request: RoomRequest) -> RoomResult:
        match request:
            case LaunchKernelRequest(kernel_type=kind, env_source=source, notebook_path=path):
                return await kernel.launch(_non_empty(kind, "kernel_type"), source or "auto", path)
            case ExecuteCellRequest(cell_id=cell_id, wait=wait):
                execution_id = kernel.enqueue(_non_empty(cell_id, "cell_id"))
                if not wait:
                    return ExecutionQueued(execution_id)
                # Answered when it ended: the answer travels in the same write as the
                # outputs and the execution_done event.
                return await kernel.wait_done(execution_id)
            case RunAllCellsRequest(stop_on_error=stop_on_error):
                return BatchQueued(kernel.enqueue_all(stop_on_error))
            case InterruptRequest():
                return Cancelled(await kernel.interrupt())
            case RestartKernelRequest():
                return await kernel.restart()
            case ShutdownKernelRequest():
                await kernel.shutdown()
                return Done()
            case ClearOutputsRequest(cell_id=cell_id):
                kernel.clear_outputs(_non_empty(cell_id, "cell_id"))
                return Done()
            case CompleteRequest(code=code, cursor_pos=cursor):
                return await kernel.complete(code, len(code) if cursor is None else cursor)
            case GetExecutionRequest(execution_id=execution_id):
                record = kernel.record(execution_id)
                if record is None:
                    raise RuntimedError(f"execution {execution_id} not found", "not_found")
                return record
            case KernelInfoRequest():
                return kernel.info()
        raise RuntimedError(f"unhandled request {type(request).__name__}", "unknown_request")


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


async def close_room_kernel(room: NotebookRoom) -> None:
    """Eviction hook: a room that goes takes its kernel and its env with it."""
    kernel = room.extensions.pop(KERNEL_KEY, None)
    if isinstance(kernel, RoomKernel):
        await kernel.close()
