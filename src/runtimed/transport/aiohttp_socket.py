"""AiohttpMessageSocket: the MessageSocket of an aiohttp websocket, the daemon's end
(``web.WebSocketResponse``) or an asyncio client's (``ClientWebSocketResponse``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiohttp import WSMsgType

from runtimed.errors import ProtocolError

CLOSE_TIMEOUT_SECS = 2.0


class AiohttpWebSocket(Protocol):
    """What both aiohttp websocket classes offer."""

    async def receive(self, timeout: float | None = None) -> Any: ...

    async def send_bytes(self, data: bytes, compress: int | None = None) -> None: ...

    @property
    def closed(self) -> bool: ...

    async def close(self, *, code: int = ..., message: bytes = ...) -> bool: ...


class AiohttpMessageSocket:
    """A MessageSocket over an aiohttp websocket. ``transport``: the connection's, when
    known (the daemon's end), for ``buffered`` and ``abort``; ``after_close``: what else
    to close (a client's ClientSession)."""

    def __init__(
        self,
        ws: AiohttpWebSocket,
        transport: asyncio.BaseTransport | None = None,
        after_close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._ws = ws
        self._transport = transport
        self._after_close = after_close

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
        return self._ws.closed or (transport is not None and transport.is_closing())

    def abort(self) -> None:
        if isinstance(self._transport, asyncio.WriteTransport):
            self._transport.abort()

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._ws.close(), CLOSE_TIMEOUT_SECS)
        except (TimeoutError, ConnectionError):
            self.abort()
        finally:
            if self._after_close is not None:
                await self._after_close()
