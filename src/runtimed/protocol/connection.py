"""FrameConnection: what channels and peers need of a connection, whatever carries it.

The Unix socket (``runtimed.transport.stream.FramedStream``) is today's only
implementation; a websocket will be another. Nothing outside ``transport`` touches the
underlying stream.
"""

from __future__ import annotations

from typing import Protocol


class FrameConnection(Protocol):
    """A duplex, ordered stream of length-delimited frames."""

    @property
    def max_frame(self) -> int: ...

    def set_max_frame(self, max_frame: int) -> None:
        """The largest frame the peer may send from now on (a channel's cap)."""

    async def read_frame(self) -> bytes | None:
        """The next frame, or None on a clean end of stream."""

    def send(self, payload: bytes) -> None:
        """Queue a frame; frames queued in one loop turn go out in one write."""

    async def write_frame(self, payload: bytes) -> None:
        """Send a frame (after anything queued) and wait until the transport took it."""

    def flush(self) -> None:
        """Hand every queued frame to the transport now."""

    async def drain(self) -> None:
        """Flush, then wait until the transport's buffer is below its high-water mark."""

    @property
    def buffered(self) -> int:
        """Bytes handed to the transport that the peer has not read yet."""

    @property
    def closing(self) -> bool:
        """True once the connection is closed or closing."""

    def abort(self) -> None:
        """Drop the connection at once, discarding what is buffered."""

    async def close(self) -> None: ...
