"""One connected client of a room."""

from __future__ import annotations

import itertools
import logging

from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.frames import FrameType, pack

log = logging.getLogger(__name__)

_ids = itertools.count(1)

#: A peer that lets this much pile up unread is dropped rather than grow the daemon's memory.
MAX_BUFFERED = 64 * 1024 * 1024


class Peer:
    """Sends frames without awaiting: a slow reader never stalls the room.

    Frames queued in one event-loop turn go out in one write (see FrameConnection): an
    execution produces a handful of document and runtime updates at once.
    """

    def __init__(self, stream: FrameConnection, name: str | None = None) -> None:
        self.stream = stream
        self.id = next(_ids)
        self.name = name or f"peer-{self.id}"
        self.closed = False
        self.awareness: bytes | None = None

    def send(self, frame_type: FrameType, payload: bytes) -> None:
        self.send_frame(pack(frame_type, payload))

    def send_frame(self, frame: bytes) -> None:
        """Queue a frame that already starts with its type byte."""
        if self.closed:
            return
        stream = self.stream
        if stream.closing:
            self.closed = True
            return
        if stream.buffered > MAX_BUFFERED:
            log.warning("dropping %s: %d bytes unread", self.name, stream.buffered)
            self.closed = True
            stream.abort()
            return
        stream.send(frame)

    async def drain(self) -> None:
        """Write what is queued and wait until the transport took it."""
        await self.stream.drain()

    def __repr__(self) -> str:
        return f"<Peer {self.name}>"
