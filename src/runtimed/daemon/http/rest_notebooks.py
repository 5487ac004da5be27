"""``/api/notebooks``: the daemon's rooms over REST. Opening is what the socket's
``open_notebook`` does (absolute paths; the room of a file is keyed by its real path);
the other operations act on open rooms, named in URLs by their URL-encoded id. A room
used over REST and joined by nobody is evicted ``keep_alive_secs`` after its last use."""

from __future__ import annotations

import os
import uuid
from typing import Any

from aiohttp import web

from runtimed.daemon.http.openapi import Endpoint
from runtimed.daemon.http.rest_errors import query_seconds, read_body, reply
from runtimed.daemon.http.rest_execute import (
    MAX_WAIT_SECS,
    NotebookAccess,
    NotebookParts,
    RoomHolds,
    keep_alive,
    run_cell,
)
from runtimed.daemon.http.rest_runtimes import WAIT
from runtimed.daemon.http.rest_types import (
    CellView,
    ExecuteCellBody,
    ExecutionResult,
    NotebookView,
    OpenNotebookBody,
    SaveNotebookBody,
)
from runtimed.daemon.http.web_input import InputConnections
from runtimed.daemon.rooms.notebook_room import NotebookRoom
from runtimed.daemon.rooms.room_registry import validate_notebook_id
from runtimed.errors import RuntimedError
from runtimed.protocol.control import RoomsReply
from runtimed.protocol.handshake import Handshake
from runtimed.protocol.room import RoomDetails, Saved, SaveRequest

#: Untitled notebooks opened over REST, named as the clients name theirs.
UNTITLED_PREFIX = "untitled-"


class NotebookRoutes:
    """Open, read, run and save notebooks."""

    def __init__(
        self, notebooks: NotebookAccess, holds: RoomHolds, inputs: InputConnections
    ) -> None:
        self.notebooks = notebooks
        self.holds = holds
        #: The pages' input connections an execution may name (``stdin``).
        self.inputs = inputs

    def endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("GET", "/api/notebooks", self.list_notebooks, "open notebooks", RoomsReply),
            Endpoint(
                "POST",
                "/api/notebooks",
                self.open_notebook,
                "open (or create) the .ipynb at an absolute path; no path: a new untitled one",
                RoomDetails,
                body=OpenNotebookBody,
            ),
            Endpoint(
                "GET",
                "/api/notebooks/{id}",
                self.get_notebook,
                "an open notebook's cells, each with its last execution",
                NotebookView,
            ),
            Endpoint(
                "POST",
                "/api/notebooks/{id}/cells/{cell}/execute",
                self.execute_cell,
                "run a code cell (its kernel starts if none runs); stdin: the input "
                "connection that answers its input()",
                ExecutionResult,
                body=ExecuteCellBody,
                query=(WAIT,),
                accepted=True,
                conflicts=True,
            ),
            Endpoint(
                "POST",
                "/api/notebooks/{id}/save",
                self.save_notebook,
                "write the notebook to its file (or to an absolute path)",
                Saved,
                body=SaveNotebookBody,
                conflicts=True,
            ),
        ]

    async def list_notebooks(self, request: web.Request) -> web.Response:
        return reply(RoomsReply((await self.notebooks()).rooms.list()))

    async def open_notebook(self, request: web.Request) -> web.Response:
        body = await read_body(request, OpenNotebookBody)
        if body.path is not None:
            # The path becomes the room's id: the same bounds (and no NUL, which no path
            # function takes).
            validate_notebook_id(body.path)
            _regular_file_or_missing(body.path)
            new = not os.path.exists(body.path)
            handshake = Handshake(channel="open_notebook", path=body.path)
        else:
            untitled = f"{UNTITLED_PREFIX}{uuid.uuid4().hex[:12]}"
            new = True
            handshake = Handshake(channel="notebook_sync", notebook_id=untitled)
        rooms = (await self.notebooks()).rooms
        room = await rooms.open(handshake)
        if new and not room.nb.cells:
            room.nb.insert_cell(None)  # a new notebook starts with a cell to type in
        keep_alive(rooms, room)
        return reply(
            RoomDetails(
                notebook_id=room.notebook_id,
                path=room.file.path,
                epoch=room.epoch,
                peers=len(room.peers),
                cells=len(room.nb.cells),
            )
        )

    async def get_notebook(self, request: web.Request) -> web.Response:
        parts = await self.notebooks()
        room = _open_room(parts, request)
        last = _last_executions(room)
        cells = [
            CellView(
                id=cell.id,
                cell_type=cell.cell_type,
                source=cell.source,
                execution_count=cell.execution_count,
                outputs=cell.outputs,
                metadata=cell.metadata,
                last_execution_id=last.get(cell.id, (None, None))[0],
                last_execution_status=last.get(cell.id, (None, None))[1],
            )
            for cell in room.nb.get_cells()
        ]
        view = NotebookView(room.notebook_id, room.file.path, room.epoch, len(room.peers), cells)
        return reply(view)

    async def execute_cell(self, request: web.Request) -> web.Response:
        body = await read_body(request, ExecuteCellBody)
        wait = query_seconds(request, "wait", MAX_WAIT_SECS)
        parts = await self.notebooks()
        room = _open_room(parts, request)
        cell_id = request.match_info["cell"]
        asker = None if body.stdin is None else self.inputs.find(room.notebook_id, body.stdin)
        room_kernel = parts.room_kernels.of(room)
        return await run_cell(parts.rooms, self.holds, room_kernel, cell_id, wait, asker)

    async def save_notebook(self, request: web.Request) -> web.Response:
        body = await read_body(request, SaveNotebookBody)
        if body.path is not None:
            validate_notebook_id(body.path)
            _regular_file_or_missing(body.path)
        parts = await self.notebooks()
        room = _open_room(parts, request)
        saved = await parts.channel.requests.handle(
            room, SaveRequest(path=body.path, force=body.force)
        )
        return reply(saved)


def _open_room(parts: NotebookParts, request: web.Request) -> NotebookRoom:
    """The open room the URL names; its eviction clock starts again."""
    notebook_id = validate_notebook_id(request.match_info["id"])
    room = parts.rooms.rooms.get(notebook_id)
    if room is None:
        raise RuntimedError(
            f"notebook {notebook_id!r} is not open; open it with POST /api/notebooks "
            "(rooms nobody uses are closed after keep_alive_secs)",
            "not_found",
        )
    keep_alive(parts.rooms, room)
    return room


def _regular_file_or_missing(path: str) -> None:
    """Only a notebook file (or a new one) is read or replaced: a device, a FIFO or a
    directory (``/dev/zero`` never ends, a FIFO never answers, ``/dev/null`` is no place
    for a notebook) is refused before anything opens it."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise RuntimedError(f"{path} is not a notebook file", "not_a_file")
    if not os.path.isdir(os.path.dirname(path)):
        raise RuntimedError(
            f"no directory {os.path.dirname(path)} to make {path} in", "invalid_path"
        )


def _last_executions(room: NotebookRoom) -> dict[str, tuple[str, str | None]]:
    """Cell id -> (execution id, status) of its latest execution the room still holds."""
    room.runtime_state.flush()  # records not yet written to the document count too
    latest: dict[str, tuple[float, str, str | None]] = {}
    for execution_id, record in room.runtime_state.doc.executions_map.items():
        if not isinstance(record, dict):
            continue
        cell_id, queued_at = record.get("cell_id"), _number(record.get("queued_at"))
        if not isinstance(cell_id, str):
            continue
        if cell_id not in latest or queued_at >= latest[cell_id][0]:
            status = record.get("status")
            latest[cell_id] = (queued_at, execution_id, status if isinstance(status, str) else None)
    return {cell_id: (ident, status) for cell_id, (_, ident, status) in latest.items()}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0
