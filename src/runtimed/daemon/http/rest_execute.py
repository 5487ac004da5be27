"""What the REST handlers share: the notebook service's parts they use, and running one
cell of a room (``?wait=S`` waits for the end; otherwise, or past S, 202 and the
execution's id)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol

from aiohttp import web

from runtimed.daemon.channels.room_requests import RoomRequests
from runtimed.daemon.execution.input_prompts import InputClient
from runtimed.daemon.execution.room_kernel import RoomKernel
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.history import HistoryLog
from runtimed.daemon.http.rest_errors import reply
from runtimed.daemon.http.rest_types import ExecutionResult
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.daemon.runtimes import RuntimeRegistry
from runtimed.documents.runtime import FINAL_STATUSES
from runtimed.errors import RuntimedError
from runtimed.protocol.room import ExecutionRecord

#: The longest ``?wait=S``: past it a client polls ``GET /api/executions/{id}``.
MAX_WAIT_SECS = 3600.0


class NotebookChannelView(Protocol):
    """The notebook channel's room requests (save goes through them, as on the socket)."""

    @property
    def requests(self) -> RoomRequests: ...


class NotebookParts(Protocol):
    """What the REST API uses of the daemon's ``NotebookService``."""

    @property
    def runtimes(self) -> RuntimeRegistry: ...

    @property
    def rooms(self) -> RoomRegistry: ...

    @property
    def room_kernels(self) -> RoomKernels: ...

    @property
    def history(self) -> HistoryLog: ...

    @property
    def channel(self) -> NotebookChannelView: ...


#: The notebook service, once the daemon's start sequence has built it.
NotebookAccess = Callable[[], Awaitable[NotebookParts]]


def keep_alive(rooms: RoomRegistry, room: NotebookRoom) -> None:
    """A room used over REST without peers is evicted ``keep_alive_secs`` after its last
    use, as one whose last peer left (pinned rooms stay)."""
    if not room.peers and room.notebook_id in rooms.rooms:
        room.on_empty(room)


class RoomHolds:
    """Rooms kept open (pinned) while executions asked for over REST are queued or
    running: a client that got 202 polls the history, and the room it left without peers
    must not close (and stop its kernel) under the cell. Once the last of them ends the
    room's eviction clock starts."""

    def __init__(self) -> None:
        #: Notebook id -> the executions holding it.
        self._held: dict[str, set[str]] = {}

    def hold(self, rooms: RoomRegistry, room_kernel: RoomKernel, execution_id: str) -> None:
        room = room_kernel.room
        notebook_id = room.notebook_id
        held = self._held.get(notebook_id)
        if held is None:
            if notebook_id in rooms.pinned:
                return  # a runtime's own room: pinned until the runtime is killed
            held = self._held[notebook_id] = set()
            rooms.pinned.add(notebook_id)
        held.add(execution_id)
        room.spawn(self._release_when_done(rooms, room_kernel, execution_id))

    def held(self, notebook_id: str) -> set[str]:
        """The executions holding a room open."""
        return set(self._held.get(notebook_id, ()))

    async def _release_when_done(
        self, rooms: RoomRegistry, room_kernel: RoomKernel, execution_id: str
    ) -> None:
        room = room_kernel.room
        try:
            await room_kernel.queue.wait_done(execution_id)
        except RuntimedError:
            pass  # the room closed: nothing to hold
        finally:
            held = self._held.get(room.notebook_id, set())
            held.discard(execution_id)
            if not held:
                self._held.pop(room.notebook_id, None)
                rooms.pinned.discard(room.notebook_id)
                keep_alive(rooms, room)


async def run_cell(
    rooms: RoomRegistry,
    holds: RoomHolds,
    room_kernel: RoomKernel,
    cell_id: str,
    wait: float | None,
    input_client: InputClient | None = None,
) -> web.Response:
    """Queue the cell; answer with its record (200 once ended, with the cell's outputs;
    202 while queued or running). ``input_client`` answers its ``input()``."""
    room = room_kernel.room
    keep_alive(rooms, room)
    execution_id = room_kernel.enqueue(cell_id, input_client)
    record = room_kernel.record(execution_id)
    if record is None:  # the queue saves a record before enqueue returns
        raise RuntimedError(f"execution {execution_id} not found", "not_found")
    holds.hold(rooms, room_kernel, execution_id)
    if wait is not None:
        with contextlib.suppress(TimeoutError):
            record = await asyncio.wait_for(room_kernel.queue.wait_done(execution_id), wait)
        record = room_kernel.record(execution_id) or record  # as it is now
    return execution_reply(room, record)


def execution_reply(room: NotebookRoom, record: ExecutionRecord) -> web.Response:
    """An execution's record; an ended one with its cell's outputs (200), else 202."""
    if record.status not in FINAL_STATUSES:
        return reply(ExecutionResult(room.notebook_id, record.cell_id, record), status=202)
    try:
        outputs = room.nb.get_cell(record.cell_id).outputs
    except RuntimedError:  # the cell was deleted meanwhile
        outputs = None
    return reply(ExecutionResult(room.notebook_id, record.cell_id, record, outputs))
