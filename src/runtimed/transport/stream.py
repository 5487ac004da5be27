"""FramedStream: the FrameConnection over an asyncio stream pair (the Unix socket), used
by the daemon and the asyncio clients."""

from __future__ import annotations

import asyncio
import contextlib
import os

from runtimed import timeline
from runtimed.errors import ProtocolError
from runtimed.protocol.framing import (
    LENGTH_PREFIX,
    PREAMBLE_SIZE,
    FrameDecoder,
    check_preamble,
    encode_frame,
)

READ_CHUNK = 256 * 1024
#: Frames over this size go out in LARGE_SLICE pieces, each drained before the next.
LARGE_FRAME = 8 * 2**20
LARGE_SLICE = 2**20
#: A peer that has started a frame must keep sending: seconds of silence mid-frame.
STALL_TIMEOUT_SECS = float(os.environ.get("RUNTIMED_STALL_TIMEOUT", "60"))


class PartialFrameBudget:
    """Bytes of frames received but not complete, over every connection of a server: a
    few peers that never finish large frames cannot take the daemon's memory."""

    def __init__(self, limit: int = 512 * 2**20) -> None:
        self.limit = limit
        self.used = 0

    def change(self, delta: int) -> None:
        self.used += delta

    def exceeded(self) -> bool:
        return self.used > self.limit


UNLIMITED = PartialFrameBudget(limit=2**62)


class FramedStream:
    """Reads and writes length-prefixed frames on one asyncio stream pair.

    Frames queued with :meth:`send` during one event-loop turn go out in one
    write (one syscall, one wake-up of the reader instead of several); :meth:`write_frame`
    sends whatever is queued before its own frame, so order is always kept.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_frame: int,
        budget: PartialFrameBudget = UNLIMITED,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._budget = budget
        self._counted = 0  # this stream's share of the budget
        self._decoder = FrameDecoder(max_frame)
        self._ready: list[bytes] = []
        self._outbox: list[bytes] = []
        self._outbox_bytes = 0
        self._large_writes = 0

    def set_max_frame(self, max_frame: int) -> None:
        self._decoder.set_max_size(max_frame)

    @property
    def max_frame(self) -> int:
        return self._decoder.max_size

    async def read_preamble(self) -> None:
        try:
            data = await self.reader.readexactly(PREAMBLE_SIZE)
        except asyncio.IncompleteReadError as exc:
            check_preamble(exc.partial)
            raise
        check_preamble(data)

    async def read_frame(self) -> bytes | None:
        """The next frame, or None on a clean end of stream.

        A stream that ends inside a frame raises ProtocolError (truncated frame), and so
        does one that stalls inside a frame or whose partial frame the server's budget
        cannot hold.
        """
        while not self._ready:
            if self._decoder.pending:
                try:
                    chunk = await asyncio.wait_for(self.reader.read(READ_CHUNK), STALL_TIMEOUT_SECS)
                except TimeoutError:
                    raise ProtocolError(
                        f"no data for {STALL_TIMEOUT_SECS:.0f} s inside a frame", "stalled_frame"
                    ) from None
            else:
                chunk = await self.reader.read(READ_CHUNK)
            if not chunk:
                if self._decoder.pending:
                    raise ProtocolError(
                        f"connection closed inside a frame ({self._decoder.pending} bytes "
                        "of an incomplete frame)",
                        code="truncated_frame",
                    )
                return None
            if timeline.ENABLED:
                timeline.stamp(f"read.{len(chunk)}")
            self._ready.extend(self._decoder.feed(chunk))
            self._account()
        return self._ready.pop(0)

    def _account(self) -> None:
        pending = self._decoder.pending
        self._budget.change(pending - self._counted)
        self._counted = pending
        if pending > READ_CHUNK and self._budget.exceeded():
            raise ProtocolError(
                "the daemon is holding too many partial frames; send smaller frames or retry",
                "overloaded",
            )

    async def write_frame(self, payload: bytes) -> None:
        if len(payload) > LARGE_FRAME:
            await self._write_large(payload)
            return
        self._outbox.append(encode_frame(payload, self.max_frame))
        self.flush()
        await self.writer.drain()

    async def _write_large(self, payload: bytes) -> None:
        """A big frame (a blob) in slices, each drained before the next: no copy of it
        is made, in a frame or in the transport's buffer. Frames others queue meanwhile
        wait, so frames never interleave."""
        if len(payload) > self.max_frame:
            encode_frame(payload, self.max_frame)  # raises frame_too_large
        self.flush()
        self._large_writes += 1
        try:
            self.writer.write(LENGTH_PREFIX.pack(len(payload)))
            view = memoryview(payload)
            for start in range(0, len(payload), LARGE_SLICE):
                if self.writer.transport.is_closing():
                    return
                self.writer.write(view[start : start + LARGE_SLICE])
                await self.writer.drain()
        finally:
            self._large_writes -= 1
        self.flush()

    def send(self, payload: bytes) -> None:
        """Queue a frame without waiting for the peer to drain it (sent at the end of this
        loop turn, together with any other frame queued meanwhile)."""
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self.flush)
        frame = encode_frame(payload, self.max_frame)
        self._outbox.append(frame)
        self._outbox_bytes += len(frame)

    @property
    def queued(self) -> int:
        """Frames queued and not yet handed to the transport."""
        return len(self._outbox)

    def flush(self) -> None:
        """Hand every queued frame to the transport now, in one write."""
        if not self._outbox or self._large_writes:
            return
        if timeline.ENABLED:
            timeline.stamp(f"flush.{len(self._outbox)}")
        data = self._outbox[0] if len(self._outbox) == 1 else b"".join(self._outbox)
        self._outbox = []
        self._outbox_bytes = 0
        if not self.writer.transport.is_closing():
            self.writer.write(data)

    async def drain(self) -> None:
        self.flush()
        await self.writer.drain()

    @property
    def buffered(self) -> int:
        """Bytes queued for the peer and not yet sent (this turn's frames included)."""
        return self.writer.transport.get_write_buffer_size() + self._outbox_bytes

    @property
    def closing(self) -> bool:
        return self.writer.transport.is_closing()

    def abort(self) -> None:
        self.writer.transport.abort()

    async def close(self) -> None:
        self._budget.change(-self._counted)
        self._counted = 0
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()
