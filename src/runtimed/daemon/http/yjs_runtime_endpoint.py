"""``/ws/runtime/{notebook_id}``: a room's runtime document (kernel state, queue,
executions) for any Yjs client (y-websocket), read-only.

The connection is a ``notebook_sync`` peer of the room, like ``yjs_endpoint``'s, with
the other half of its frames: runtime-document sync messages go out as y-websocket sync
messages; the notebook document and awareness are not sent. Of the events, a widget's
custom message from the kernel (``widget_message``, live only: it is in no document)
goes out as the message type ``Y_EVENT`` (100) followed by the event's JSON, for the
page's widgets (``web/src/widgets/``). From the client only
sync step 1 (what it has) is taken: its step 2 and updates are dropped here, before the
room (which drops them too), so a page can never write the runtime document.

When the daemon rebuilds the runtime document (``runtime_reset``), a replica cannot
merge the new one: the connection is closed with code 4000, and the client reconnects
with a fresh ``Y.Doc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from runtimed.daemon.http.yjs_endpoint import Y_SYNC, YjsConnection
from runtimed.errors import ProtocolError
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType
from runtimed.protocol.framing import HANDSHAKE_MAX_FRAME
from runtimed.protocol.handshake import Handshake
from runtimed.transport.dispatch import ChannelDispatch
from runtimed.transport.ws_server import open_websocket

log = logging.getLogger(__name__)

#: The close code that tells a client to drop its replica and reconnect.
RUNTIME_RESET_CLOSE = 4000
SYNC_STEP1 = 0
Y_AWARENESS = 1
Y_QUERY_AWARENESS = 3
#: Not one of y-websocket's types (0-3): a runtimed event, JSON after the type byte.
Y_EVENT = 100
#: The events a page receives.
PAGE_EVENTS = frozenset({"widget_message"})


class RuntimeYjsConnection(YjsConnection):
    """The room's FrameConnection as a read-only y-websocket runtime-document peer."""

    def __init__(self, inner: FrameConnection, ws: web.WebSocketResponse) -> None:
        super().__init__(inner)
        self._ws = ws
        self.reset = False

    async def read_frame(self) -> bytes | None:
        while (message := await self._inner.read_frame()) is not None:
            if not message:
                raise ProtocolError("empty y-websocket message", "malformed_frame")
            kind = message[0]
            if kind == Y_SYNC and len(message) > 1 and message[1] == SYNC_STEP1:
                return bytes([FrameType.RUNTIME_SYNC]) + message
            if kind not in (Y_SYNC, Y_AWARENESS, Y_QUERY_AWARENESS):
                raise ProtocolError(f"unknown y-websocket message type {kind}", "malformed_frame")
            # A write (step 2, update) or presence: this document is the daemon's alone.
        return None

    def _translate(self, frame: bytes) -> bytes | None:
        if frame[:1] == b"{":
            return super()._translate(frame)
        if frame[0] == FrameType.RUNTIME_SYNC:
            return frame[1:]
        if frame[0] == FrameType.EVENT:
            event = _event(frame[1:])
            if event == "runtime_reset":
                self._close_for_reset()
            elif event in PAGE_EVENTS:
                return bytes([Y_EVENT]) + frame[1:]
        return None

    def _close_for_reset(self) -> None:
        if self.reset:
            return
        self.reset = True
        close = self._ws.close(code=RUNTIME_RESET_CLOSE, message=b"runtime_reset")
        task = asyncio.ensure_future(close)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())


def _event(payload: bytes) -> str | None:
    """The name of an event the page cares about (no JSON parse for the others)."""
    if b"runtime_reset" not in payload and b"widget_message" not in payload:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        return str(json.loads(payload).get("event"))
    return None


def runtime_yjs_routes(dispatch: ChannelDispatch) -> list[web.RouteDef]:
    """The read-only runtime-document route over ``dispatch``."""

    async def serve(request: web.Request) -> web.StreamResponse:
        if dispatch.full:
            from runtimed.daemon.http.http_errors import json_error

            return json_error(503, "too_many_connections", dispatch.refusal())
        notebook_id = request.match_info["notebook_id"]
        ws, conn = await open_websocket(request, HANDSHAKE_MAX_FRAME)
        yjs = RuntimeYjsConnection(conn, ws)
        handshake = Handshake(channel="notebook_sync", notebook_id=notebook_id, client="yjs")
        await dispatch.serve(yjs, handshake=handshake)
        if yjs.refusal is not None:
            log.info("a Yjs runtime client was refused room %s: %s", notebook_id, yjs.refusal)
        return ws

    return [web.get("/ws/runtime/{notebook_id:.+}", serve)]
