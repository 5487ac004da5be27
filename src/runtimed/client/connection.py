"""Blocking and asyncio connections to the daemon socket, sharing the protocol core."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from runtimed.client.core import frame_cap, opening_bytes, parse_handshake_reply
from runtimed.errors import DaemonNotRunningError, ProtocolError
from runtimed.paths import default_socket_path
from runtimed.protocol.framing import FrameDecoder, encode_frame
from runtimed.protocol.stream import FramedStream


def resolve_socket(socket_path: str | Path | None) -> Path:
    return Path(socket_path).expanduser().absolute() if socket_path else default_socket_path()


class BlockingConnection:
    """A framed connection over a blocking Unix socket."""

    def __init__(self, sock: socket.socket, channel: str) -> None:
        self._sock = sock
        self._max = frame_cap(channel)
        self._decoder = FrameDecoder(self._max)
        self._ready: list[bytes] = []
        self.handshake: dict[str, Any] = {}

    @classmethod
    def open(
        cls,
        socket_path: str | Path | None,
        channel: str,
        timeout: float | None = 10.0,
        **params: Any,
    ) -> BlockingConnection:
        path = resolve_socket(socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            raise DaemonNotRunningError(str(path)) from None
        conn = cls(sock, channel)
        try:
            sock.sendall(opening_bytes(channel, **params))
            conn.handshake = parse_handshake_reply(conn.read_frame())
        except BaseException:
            conn.close()
            raise
        return conn

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def write_frame(self, payload: bytes) -> None:
        self._sock.sendall(encode_frame(payload, self._max))

    def read_frame(self) -> bytes | None:
        while not self._ready:
            chunk = self._sock.recv(256 * 1024)
            if not chunk:
                if self._decoder.pending:
                    raise ProtocolError("connection closed inside a frame", "truncated_frame")
                return None
            self._ready.extend(self._decoder.feed(chunk))
        return self._ready.pop(0)

    def close(self) -> None:
        self._sock.close()


async def open_async_connection(
    socket_path: str | Path | None, channel: str, **params: Any
) -> tuple[FramedStream, dict[str, Any]]:
    """Open an asyncio framed stream on ``channel``; returns it and the handshake reply."""
    path = resolve_socket(socket_path)
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=2**20)
    except (FileNotFoundError, ConnectionRefusedError):
        raise DaemonNotRunningError(str(path)) from None
    stream = FramedStream(reader, writer, frame_cap(channel))
    try:
        writer.write(opening_bytes(channel, **params))
        reply = parse_handshake_reply(await stream.read_frame())
    except BaseException:
        await stream.close()
        raise
    return stream, reply
