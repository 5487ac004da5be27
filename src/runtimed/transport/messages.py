"""MessageConnection: the FrameConnection over a message transport (a websocket), one
binary message per frame. The server end (aiohttp) and the client end (websockets) only
provide a ``MessageSocket``; framing, caps and send queueing are here, once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from runtimed.errors import ProtocolError


class MessageSocket(Protocol):
    """What MessageConnection needs of a websocket library's connection."""

    async def receive(self) -> bytes | None:
        """The next binary message, or None once the peer closed."""

    async def send(self, data: bytes) -> None:
        """Send one binary message (returns when the transport took it)."""

    def buffered(self) -> int:
        """Bytes handed to the transport and not yet sent."""

    def closing(self) -> bool: ...

    def abort(self) -> None: ...

    async def close(self) -> None: ...


class MessageConnection:
    """A FrameConnection over a MessageSocket.

    ``send`` queues; one pump task per burst sends the queue in order, so ``send`` and
    ``write_frame`` never reorder frames.
    """

    def __init__(self, sock: MessageSocket, max_frame: int) -> None:
        self._sock = sock
        self._max_frame = max_frame
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._pump: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    @property
    def max_frame(self) -> int:
        return self._max_frame

    def set_max_frame(self, max_frame: int) -> None:
        self._max_frame = max_frame

    async def read_frame(self) -> bytes | None:
        data = await self._sock.receive()
        if data is not None and len(data) > self._max_frame:
            raise ProtocolError(
                f"frame of {len(data)} bytes exceeds the {self._max_frame}-byte limit",
                "frame_too_large",
            )
        return data

    def send(self, payload: bytes) -> None:
        if self._error is not None:
            return  # like a closed socket's: dropped; write_frame and drain raise
        self._outbox.append(payload)
        self._outbox_bytes += len(payload)
        self.flush()

    def flush(self) -> None:
        if self._outbox and (self._pump is None or self._pump.done()):
            self._pump = asyncio.get_running_loop().create_task(self._send_queued())

    async def _send_queued(self) -> None:
        try:
            while self._outbox:
                frame = self._outbox.pop(0)
                self._outbox_bytes -= len(frame)
                await self._sock.send(frame)
        except Exception as exc:  # the reader sees the closed connection; keep the cause
            self._error = exc
            self._outbox.clear()
            self._outbox_bytes = 0

    async def write_frame(self, payload: bytes) -> None:
        self.send(payload)
        await self.drain()

    async def drain(self) -> None:
        while self._pump is not None and not self._pump.done():
            await asyncio.shield(self._pump)
        if self._error is not None:
            raise ConnectionResetError(f"the connection failed: {self._error}")

    @property
    def buffered(self) -> int:
        return self._sock.buffered() + self._outbox_bytes

    @property
    def queued(self) -> int:
        """Frames queued and not yet handed to the transport."""
        return len(self._outbox)

    @property
    def closing(self) -> bool:
        return self._error is not None or self._sock.closing()

    def abort(self) -> None:
        self._outbox.clear()
        self._outbox_bytes = 0
        self._sock.abort()

    async def close(self) -> None:
        if self._pump is not None and not self._pump.done():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._pump), 1)
            self._pump.cancel()
        with contextlib.suppress(Exception):
            await self._sock.close()
