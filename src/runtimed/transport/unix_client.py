"""Client ends of the Unix socket: an asyncio FramedStream, or a blocking framed socket."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from runtimed.errors import DaemonNotRunningError, ProtocolError
from runtimed.protocol.framing import FrameDecoder, encode_frame
from runtimed.transport.stream import READ_CHUNK, FramedStream


async def connect_unix(path: Path, max_frame: int, preamble: bytes) -> FramedStream:
    """An asyncio framed connection to the daemon at ``path``, its preamble sent."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=2**20)
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonNotRunningError(str(path)) from None
    writer.write(preamble)
    return FramedStream(reader, writer, max_frame)


class BlockingFrameSocket:
    """Length-prefixed frames over a blocking Unix socket."""

    def __init__(self, sock: socket.socket, max_frame: int) -> None:
        self._sock = sock
        self._max = max_frame
        self._decoder = FrameDecoder(max_frame)
        self._ready: list[bytes] = []

    @classmethod
    def connect(
        cls, path: Path, max_frame: int, timeout: float | None, preamble: bytes
    ) -> BlockingFrameSocket:
        """A blocking framed connection to the daemon at ``path``, its preamble sent."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(preamble)
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunningError(str(path)) from None
        except BaseException:
            sock.close()
            raise
        return cls(sock, max_frame)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def write_frame(self, payload: bytes) -> None:
        self._sock.sendall(encode_frame(payload, self._max))

    def read_frame(self) -> bytes | None:
        while not self._ready:
            chunk = self._sock.recv(READ_CHUNK)
            if not chunk:
                if self._decoder.pending:
                    raise ProtocolError("connection closed inside a frame", "truncated_frame")
                return None
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.pop(0)

    def close(self) -> None:
        self._sock.close()
