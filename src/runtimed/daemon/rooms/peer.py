"""One connected client of a room."""

from __future__ import annotations

import itertools
import logging

from runtimed.protocol.notebook import FrameType, pack
from runtimed.protocol.stream import FramedStream

log = logging.getLogger(__name__)

_ids = itertools.count(1)

#: A peer that lets this much pile up unread is dropped rather than grow the daemon's memory.
MAX_BUFFERED = 64 * 1024 * 1024


class Peer:
    """Sends frames without awaiting: a slow reader never stalls the room.

    Frames queued in one event-loop turn go out in one write (see FramedStream): an
    execution produces a handful of document and runtime updates at once.
    """

    def __init__(self, stream: FramedStream, name: str | None = None) -> None:
        self.stream = stream
        self.id = next(_ids)
        self.name = name or f"peer-{self.id}"
        self.closed = False
        self.awareness: bytes | None = None

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
        self.stream.write_frame_nowait(pack(frame_type, payload))

    async def drain(self) -> None:
        """Write what is queued and wait until the transport took it."""
        self.stream.flush()
        await self.stream.writer.drain()

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"
