"""The daemon's websocket end: the socket protocol over websocket binary messages
(no compression; asyncio sets TCP_NODELAY on every TCP socket, so frames leave at once).

The HTTP upgrade replaces the socket's preamble; then the first message is the JSON
handshake and every later message one frame, served by the same channel handlers through
``ChannelDispatch``. Auth (token, Origin, Host) is the HTTP server's middleware.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

from runtimed.errors import ProtocolError
from runtimed.protocol.framing import HANDSHAKE_MAX_FRAME, Channel
from runtimed.transport.dispatch import ChannelDispatch
from runtimed.transport.messages import MessageConnection

#: aiohttp assembles a whole message before we see it, so its limit is the largest
#: channel cap; the channel's own cap is checked on each message (MessageConnection).
MAX_MESSAGE = int(Channel.BLOB)
CLOSE_TIMEOUT_SECS = 2.0


class AiohttpMessageSocket:
    """A MessageSocket over an aiohttp WebSocketResponse (the daemon's end)."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.BaseTransport | None) -> None:
        self._ws = ws
        self._transport = transport

    async def receive(self) -> bytes | None:
        msg = await self._ws.receive()
        if msg.type is WSMsgType.BINARY:
            data: bytes = msg.data
            return data
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
            return None
        if msg.type is WSMsgType.ERROR:
            raise ProtocolError(f"bad websocket message: {msg.data}", "invalid_frame")
        raise ProtocolError(
            "frames are binary websocket messages (got a text message)", "invalid_frame"
        )

    async def send(self, data: bytes) -> None:
        await self._ws.send_bytes(data)

    def buffered(self) -> int:
        transport = self._transport
        if isinstance(transport, asyncio.WriteTransport):
            return transport.get_write_buffer_size()
        return 0

    def closing(self) -> bool:
        transport = self._transport
        return self._ws.closed or transport is None or transport.is_closing()

    def abort(self) -> None:
        if isinstance(self._transport, asyncio.WriteTransport):
            self._transport.abort()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT_SECS)
        except (TimeoutError, ConnectionError):
            self.abort()


async def open_websocket(
    request: web.Request, max_frame: int
) -> tuple[web.WebSocketResponse, MessageConnection]:
    """Upgrade ``request``; its FrameConnection (one binary message per frame)."""
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE, compress=False, autoping=True)
    await ws.prepare(request)
    return ws, MessageConnection(AiohttpMessageSocket(ws, request.transport), max_frame)


async def serve_websocket(request: web.Request, dispatch: ChannelDispatch) -> web.WebSocketResponse:
    """Upgrade ``request`` and serve the connection through ``dispatch`` until it ends."""
    ws, conn = await open_websocket(request, HANDSHAKE_MAX_FRAME)
    with contextlib.suppress(asyncio.CancelledError):
        await dispatch.serve(conn)
    return ws
