"""``/ws/notebooks/{notebook_id}``: a notebook room for any Yjs client (y-websocket).

y-websocket messages are the room's own frames without the type byte: a sync message
(``0``: step 1, step 2, update) is exactly a NOTEBOOK_SYNC payload, an awareness message
(``1``) an AWARENESS payload (relayed to every other peer as-is). The connection is a
``notebook_sync`` peer of the room served by the notebook channel through the shared
dispatch (connection cap, frame caps, the room's shape guard); the runtime document,
events and requests stay with runtimed clients (``/ws``).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from runtimed.errors import ProtocolError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType
from runtimed.protocol.framing import HANDSHAKE_MAX_FRAME
from runtimed.protocol.handshake import Handshake
from runtimed.transport.dispatch import ChannelDispatch
from runtimed.transport.ws_server import open_websocket

log = logging.getLogger(__name__)

Y_SYNC = 0
Y_AWARENESS = 1
Y_QUERY_AWARENESS = 3


class YjsConnection:
    """The room's FrameConnection over a y-websocket connection: translates frames to
    y-websocket messages and back; frames a Yjs client has no use for are dropped."""

    def __init__(self, inner: FrameConnection) -> None:
        self._inner = inner
        self.refusal: str | None = None

    @property
    def max_frame(self) -> int:
        return self._inner.max_frame

    def set_max_frame(self, max_frame: int) -> None:
        self._inner.set_max_frame(max_frame)

    async def read_frame(self) -> bytes | None:
        while (message := await self._inner.read_frame()) is not None:
            if not message:
                raise ProtocolError("empty y-websocket message", "malformed_frame")
            if message[0] == Y_SYNC:
                return bytes([FrameType.NOTEBOOK_SYNC]) + message
            if message[0] == Y_AWARENESS:
                return bytes([FrameType.AWARENESS]) + message[1:]
            if message[0] != Y_QUERY_AWARENESS:  # peers' presence comes on join anyway
                raise ProtocolError(
                    f"unknown y-websocket message type {message[0]}", "malformed_frame"
                )
        return None

    def _translate(self, frame: bytes) -> bytes | None:
        if frame[:1] == b"{":  # the handshake reply, or an error before the close
            reply = json.loads(frame)
            if not reply.get("ok", False):
                self.refusal = str(reply.get("message", "refused"))
            return None
        if frame[0] == FrameType.NOTEBOOK_SYNC:
            return frame[1:]
        if frame[0] == FrameType.AWARENESS:
            return bytes([Y_AWARENESS]) + frame[1:]
        return None  # runtime document, events, responses: runtimed clients only

    def send(self, payload: bytes) -> None:
        message = self._translate(payload)
        if message is not None:
            self._inner.send(message)

    async def write_frame(self, payload: bytes) -> None:
        message = self._translate(payload)
        if message is not None:
            await self._inner.write_frame(message)

    def flush(self) -> None:
        self._inner.flush()

    async def drain(self) -> None:
        await self._inner.drain()

    @property
    def buffered(self) -> int:
        return self._inner.buffered

    @property
    def closing(self) -> bool:
        return self._inner.closing

    def abort(self) -> None:
        self._inner.abort()

    async def close(self) -> None:
        await self._inner.close()


def yjs_routes(dispatch: ChannelDispatch) -> list[web.RouteDef]:
    """The y-websocket route over ``dispatch`` (``UnixSocketServer.dispatch``)."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if dispatch.full:
            from runtimed.daemon.http.http_errors import json_error

            return json_error(503, "too_many_connections", dispatch.refusal())
        notebook_id = request.match_info["notebook_id"]
        ws, conn = await open_websocket(request, HANDSHAKE_MAX_FRAME)
        yjs = YjsConnection(conn)
        handshake = Handshake(channel="notebook_sync", notebook_id=notebook_id, client="yjs")
        await dispatch.serve(yjs, handshake=handshake)
        if yjs.refusal is not None:
            log.info("a Yjs client was refused room %s: %s", notebook_id, yjs.refusal)
        return ws

    return [web.get("/ws/notebooks/{notebook_id:.+}", serve)]
