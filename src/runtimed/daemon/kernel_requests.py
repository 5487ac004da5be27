"""Kernel requests on the notebook channel: launch, execute, interrupt, restart, ..."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtimed.daemon.room_kernel import RoomKernel
from runtimed.errors import RuntimedError

if TYPE_CHECKING:
    from runtimed.daemon.app import Daemon
    from runtimed.daemon.rooms.notebook_room import NotebookRoom, RequestHandler
    from runtimed.daemon.rooms.peer import Peer


def _str(request: dict[str, Any], key: str, default: str | None = None) -> str:
    value = request.get(key, default)
    if not isinstance(value, str) or not value:
        raise RuntimedError(
            f"{request.get('type')}: {key!r} must be a non-empty string", "invalid_request"
        )
    return value


def kernel_handlers(daemon: Daemon) -> dict[str, RequestHandler]:
    """The kernel request table, bound to one daemon (its env resolver and paths)."""

    def kernel_of(room: NotebookRoom) -> RoomKernel:
        kernel = room.extensions.get("kernel")
        if kernel is None:
            kernel = RoomKernel(
                room,
                daemon.env_resolver,
                daemon.paths,
                blobs=daemon.blobs,
                blob_threshold=lambda: int(daemon.settings.get("output_blob_threshold")),
            )
            room.extensions["kernel"] = kernel
        assert isinstance(kernel, RoomKernel)
        return kernel

    async def launch_kernel(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        path = req.get("notebook_path")
        return await kernel_of(room).launch(
            _str(req, "kernel_type", "python"),
            _str(req, "env_source", "auto"),
            path if isinstance(path, str) else None,
        )

    async def execute_cell(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        kernel = kernel_of(room)
        execution_id = kernel.enqueue(_str(req, "cell_id"))
        if not req.get("wait"):
            return {"execution_id": execution_id}
        # Answer when it ended, with the fields of its execution_done event: the answer
        # travels in the same write as the outputs and the event.
        return {"event": "execution_done", **(await kernel.wait_done(execution_id)).as_dict()}

    async def run_all_cells(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        return {"execution_ids": kernel_of(room).enqueue_all()}

    async def interrupt(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        return {"cancelled": await kernel_of(room).interrupt()}

    async def restart_kernel(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        return await kernel_of(room).restart()

    async def shutdown_kernel(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        await kernel_of(room).shutdown()
        return {}

    async def clear_outputs(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        kernel_of(room).clear_outputs(_str(req, "cell_id"))
        return {}

    async def complete(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        code = req.get("code", "")
        cursor = req.get("cursor_pos", len(code) if isinstance(code, str) else 0)
        if not isinstance(code, str) or not isinstance(cursor, int):
            raise RuntimedError(
                "complete: code must be a string, cursor_pos an int", "invalid_request"
            )
        return await kernel_of(room).complete(code, cursor)

    async def get_execution(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        record = kernel_of(room).record(_str(req, "execution_id"))
        if record is None:
            raise RuntimedError(f"execution {req.get('execution_id')} not found", "not_found")
        return record.as_dict()

    async def kernel_info(room: NotebookRoom, peer: Peer, req: dict[str, Any]) -> Any:
        return kernel_of(room).info()

    return {
        "launch_kernel": launch_kernel,
        "execute_cell": execute_cell,
        "run_all_cells": run_all_cells,
        "interrupt": interrupt,
        "restart_kernel": restart_kernel,
        "shutdown_kernel": shutdown_kernel,
        "clear_outputs": clear_outputs,
        "complete": complete,
        "get_execution": get_execution,
        "kernel_info": kernel_info,
    }


async def close_room_kernel(room: NotebookRoom) -> None:
    """Eviction hook: a room that goes takes its kernel and its env with it."""
    kernel = room.extensions.pop("kernel", None)
    if isinstance(kernel, RoomKernel):
        await kernel.close()
