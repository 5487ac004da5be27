"""One connected client of a room."""

from __future__ import annotations

import asyncio
import itertools
import logging

from runtimed.protocol.framing import encode_frame
from runtimed.protocol.notebook import FrameType, pack
from runtimed.protocol.stream import FramedStream

log = logging.getLogger(__name__)

_ids = itertools.count(1)

#: A peer that lets this much pile up unread is dropped rather than grow the daemon's memory.
MAX_BUFFERED = 64 * 1024 * 1024


class Peer:
    """Sends frames without awaiting: a slow reader never stalls the room.

    Frames queued in one event-loop turn go out in one write: an execution produces a
    handful of document and runtime updates at once, and one syscall beats ten.
    """

    def __init__(self, stream: FramedStream, name: str | None = None) -> None:
        self.stream = stream
        self.id = next(_ids)
        self.name = name or f"peer-{self.id}"
        self.closed = False
        self.awareness: bytes | None = None
        self._pending: list[bytes] = []

    def send(self, frame_type: FrameType, payload: bytes) -> None:
        if self.closed:
            return
        transport = self.stream.writer.transport
        if transport.is_closing():
            self.closed = True
            return
        if transport.get_write_buffer_size() > MAX_BUFFERED:
            log.warning(
                "dropping %s: %d bytes unread", self.name, transport.get_write_buffer_size()
            )
            self.closed = True
            transport.abort()
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(encode_frame(pack(frame_type, payload), self.stream.max_frame))

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if pending and not self.closed and not self.stream.writer.transport.is_closing():
            self.stream.writer.write(b"".join(pending))

    async def drain(self) -> None:
        """Write what is queued and wait until the transport took it."""
        self._flush()
        await self.stream.writer.drain()

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"
