"""The Unix socket server: the preamble, then the shared handshake -> channel dispatch."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from pathlib import Path

from runtimed.errors import RuntimedError
from runtimed.protocol.framing import HANDSHAKE_MAX_FRAME
from runtimed.transport.dispatch import (
    ChannelDispatch,
    ChannelHandler,
    connection_limit,
    raise_descriptor_limit,
)
from runtimed.transport.stream import FramedStream

__all__ = ["ChannelHandler", "UnixSocketServer", "connection_limit", "raise_descriptor_limit"]


class UnixSocketServer:
    """Accepts connections on the socket and hands each, after its preamble, to the
    channel dispatch (shared with ``/ws``)."""

    def __init__(
        self,
        socket_path: Path,
        channels: dict[str, ChannelHandler],
        handshake_timeout: float = 10.0,
        max_connections: int | None = None,
    ) -> None:
        self.socket_path = socket_path
        self.dispatch = ChannelDispatch(channels, handshake_timeout, max_connections)
        self._server: asyncio.Server | None = None

    @property
    def channels(self) -> dict[str, ChannelHandler]:
        return self.dispatch.channels

    @property
    def max_connections(self) -> int:
        return self.dispatch.max_connections

    async def start(self) -> None:
        _refuse_live_socket(self.socket_path)
        self.socket_path.unlink(missing_ok=True)
        old_umask = os.umask(0o177)  # the socket is born 0600: no window where others connect
        try:
            self._server = await asyncio.start_unix_server(
                self._on_connect, path=str(self.socket_path), limit=2**20
            )
        finally:
            os.umask(old_umask)
        self.socket_path.chmod(0o600)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self.dispatch.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), timeout=2)
        self.socket_path.unlink(missing_ok=True)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = FramedStream(reader, writer, HANDSHAKE_MAX_FRAME, self.dispatch.budget)
        await self.dispatch.serve(stream, before=stream.read_preamble)


def _refuse_live_socket(path: Path) -> None:
    """A socket file that still accepts connections belongs to a live daemon elsewhere."""
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(str(path))
    except OSError:
        return  # stale: nobody listens
    finally:
        probe.close()
    raise RuntimedError(
        f"another daemon is listening on {path}; stop it or choose another --socket",
        "socket_in_use",
    )
