"""The notebook page's stdin: a cell's ``input()`` / ``getpass()`` answered in the page
that ran it, and in no other (``InputPrompts`` decides; this module only gives a page an
identity REST does not have).

A page opens the websocket ``/ws/input/{notebook_id}``. That connection is the page's
``InputClient``: its first message is ``{"event": "ready", "connection": id}``, an
unguessable id only that page learns; the prompts of cells it runs come on it as the
socket clients' events (``input_request``, ``input_cancelled``), and its close answers
end of input for them. The page names the connection when it runs a cell
(``POST .../cells/{cell}/execute {"stdin": id}``) and when it answers
(``POST .../executions/{execution_id}/input {"connection": id, "value"}``); another
page's connection is refused ``not_your_execution``. The answer is echoed into the
cell's outputs (prompt and value, a password masked), so every peer sees what was typed.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import secrets
from typing import Any

import msgspec
from aiohttp import WSMsgType, web

from runtimed.daemon.execution.input_prompts import echo_message
from runtimed.daemon.http.notebook_endpoints import NotebookEndpoints
from runtimed.daemon.http.openapi import Endpoint
from runtimed.daemon.http.rest_errors import answers_errors, read_body, reply
from runtimed.daemon.http.rest_execute import NotebookAccess
from runtimed.daemon.rooms.room_registry import validate_notebook_id
from runtimed.errors import RuntimedError
from runtimed.protocol.room import Done

log = logging.getLogger(__name__)

#: The page sends nothing on the connection (answers go over REST).
MAX_CLIENT_MESSAGE = 1024
#: The close code of a connection the page sent a message on.
CLOSE_UNEXPECTED = 4003


class InputAnswerBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST .../executions/{execution_id}/input``: the answer, from the page whose
    input connection (``connection``: its id) ran the cell."""

    connection: str
    value: str


class InputConnection:
    """One page's ``/ws/input`` connection: the ``InputClient`` of the cells it runs."""

    def __init__(self, notebook_id: str, ws: web.WebSocketResponse) -> None:
        self.notebook_id = notebook_id
        self.id = secrets.token_urlsafe(24)
        self._ws = ws
        self._closed = False
        self._outbox: collections.deque[str] = collections.deque()
        self._writer: asyncio.Future[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed or self._ws.closed

    def close(self) -> None:
        self._closed = True
        self._outbox.clear()

    def send_event(self, event: dict[str, Any]) -> None:
        """Queued and written in order, without blocking the caller (the kernel's loop)."""
        if self.closed:
            return
        self._outbox.append(json.dumps(event))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write())

    async def _write(self) -> None:
        while self._outbox and not self.closed:
            try:
                await self._ws.send_str(self._outbox.popleft())
            except (ConnectionError, RuntimeError):  # gone: its close answers EOF
                self.close()


class InputConnections:
    """The open input connections, by id."""

    def __init__(self) -> None:
        self._by_id: dict[str, InputConnection] = {}

    def open(self, notebook_id: str, ws: web.WebSocketResponse) -> InputConnection:
        connection = InputConnection(notebook_id, ws)
        self._by_id[connection.id] = connection
        return connection

    def close(self, connection: InputConnection) -> None:
        connection.close()
        self._by_id.pop(connection.id, None)

    def find(self, notebook_id: str, connection_id: str) -> InputConnection:
        """The open connection ``connection_id`` of ``notebook_id``'s page."""
        connection = self._by_id.get(connection_id)
        if connection is None:
            raise RuntimedError(
                "no such input connection: it closed (the page gets a new id when it "
                "reconnects) or never was; a page opens one at /ws/input/{notebook_id}",
                "unknown_input_connection",
            )
        if connection.notebook_id != notebook_id:
            raise RuntimedError(
                f"this input connection is another notebook's, not {notebook_id!r}'s",
                "unknown_input_connection",
            )
        return connection

    def __len__(self) -> int:
        return len(self._by_id)


class WebInput(NotebookEndpoints):
    """``/ws/input/{notebook_id}`` and the answer endpoint (in the OpenAPI document)."""

    def __init__(self, notebooks: NotebookAccess, connections: InputConnections) -> None:
        super().__init__(notebooks)
        self.connections = connections

    def endpoints(self) -> list[Endpoint]:
        return [
            self.endpoint(
                "POST",
                "executions/{execution_id}/input",
                self.answer,
                "answer a cell's input() from the page whose input connection ran it",
                Done,
                body=InputAnswerBody,
                conflicts=True,
                forbids=True,
            )
        ]

    def ws_routes(self) -> list[web.RouteDef]:
        return [web.get("/ws/input/{notebook_id:.+}", answers_errors(self.serve))]

    async def answer(self, request: web.Request) -> web.Response:
        body = await read_body(request, InputAnswerBody)
        notebook_id = self.notebook_id(request)
        connection = self.connections.find(notebook_id, body.connection)
        # The page whose connection answers opened the notebook: no advice to open it.
        parts, room = await self.open_room(notebook_id, how_to_open=None)
        room_kernel = parts.room_kernels.of(room)
        execution_id = request.match_info["execution_id"]
        pending = room_kernel.queue.prompts.answer(execution_id, body.value, connection)
        # Written before the kernel's next output can arrive: it needs this loop turn.
        room_kernel.writer.on_message(pending.cell_id, echo_message(pending, body.value))
        return reply(Done())

    async def serve(self, request: web.Request) -> web.StreamResponse:
        notebook_id = validate_notebook_id(request.match_info["notebook_id"])
        kernels = (await self.notebooks()).room_kernels
        ws = web.WebSocketResponse(max_msg_size=MAX_CLIENT_MESSAGE, autoping=True)
        await ws.prepare(request)
        connection = self.connections.open(notebook_id, ws)
        try:
            await ws.send_json({"event": "ready", "connection": connection.id})
            async for message in ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    error = "this connection only receives; answer with POST .../input"
                    await ws.send_json({"event": "error", "message": error})
                    await ws.close(code=CLOSE_UNEXPECTED, message=b"unexpected message")
        finally:
            self.connections.close(connection)
            room_kernel = kernels.get(notebook_id)
            if room_kernel is not None:  # a prompt of a cell it ran: end of input
                room_kernel.input_client_left(connection)
        return ws
