"""Framed connections over asyncio streams, used by the daemon and the async client."""

from __future__ import annotations

import asyncio
import contextlib

from runtimed.errors import ProtocolError
from runtimed.protocol.framing import (
    PREAMBLE_SIZE,
    FrameDecoder,
    check_preamble,
    encode_frame,
)

READ_CHUNK = 256 * 1024


class FramedStream:
    """Reads and writes length-prefixed frames on one asyncio stream pair."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, max_frame: int
    ) -> None:
        self.reader = reader
        self.writer = writer
        self._decoder = FrameDecoder(max_frame)
        self._ready: list[bytes] = []

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

        A stream that ends inside a frame raises ProtocolError (truncated frame).
        """
        while not self._ready:
            chunk = await self.reader.read(READ_CHUNK)
            if not chunk:
                if self._decoder.pending:
                    raise ProtocolError(
                        f"connection closed inside a frame ({self._decoder.pending} bytes "
                        "of an incomplete frame)",
                        code="truncated_frame",
                    )
                return None
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.pop(0)

    async def write_frame(self, payload: bytes) -> None:
        self.writer.write(encode_frame(payload, self.max_frame))
        await self.writer.drain()

    def write_frame_nowait(self, payload: bytes) -> None:
        """Queue a frame without waiting for the peer to drain it."""
        self.writer.write(encode_frame(payload, self.max_frame))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()
            await self.writer.wait_closed()
