"""The daemon's websocket end: the socket protocol over websocket binary messages
(no compression; asyncio sets TCP_NODELAY on every TCP socket, so frames leave at once).

The HTTP upgrade replaces the socket's preamble; then the first message is the JSON
handshake and every later message one frame, served by the same channel handlers through
``ChannelDispatch``. Auth (token, Origin, Host) is the HTTP server's middleware.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import web

from runtimed.protocol.framing import HANDSHAKE_MAX_FRAME, Channel
from runtimed.transport.aiohttp_socket import AiohttpMessageSocket
from runtimed.transport.dispatch import ChannelDispatch
from runtimed.transport.messages import MessageConnection

#: aiohttp assembles a whole message before we see it, so its limit is the largest
#: channel cap; the channel's own cap is checked on each message (MessageConnection).
MAX_MESSAGE = int(Channel.BLOB)


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
