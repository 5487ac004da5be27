"""Run ``Call``s over one channel connection: blocking or asyncio, nothing else differs.

Both open the connection on first use and drop it after any connection or protocol
error, so the next call reconnects (a restarted daemon is picked up by itself).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from runtimed.client.autostart import ensure_daemon
from runtimed.client.core import (
    MORE,
    Call,
    closed_before_reply,
    frame_cap,
    handshake_frame,
    parse_handshake_reply,
)
from runtimed.errors import DaemonNotRunningError, ProtocolError
from runtimed.paths import default_socket_path
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.framing import PREAMBLE
from runtimed.transport.unix_client import BlockingFrameSocket, connect_unix

T = TypeVar("T")


def resolve_socket(socket_path: str | Path | None) -> Path:
    return Path(socket_path).expanduser().absolute() if socket_path else default_socket_path()


def open_blocking(
    socket_path: str | Path | None,
    channel: str,
    timeout: float | None,
    autostart: bool = True,
    **params: Any,
) -> tuple[BlockingFrameSocket, dict[str, Any]]:
    """A blocking connection on ``channel``, after its handshake; and the reply. With
    ``autostart``, a daemon is started when none answers."""
    path = resolve_socket(socket_path)
    try:
        conn = BlockingFrameSocket.connect(path, frame_cap(channel), timeout, PREAMBLE)
    except DaemonNotRunningError:
        if not autostart:
            raise
        ensure_daemon(path)
        conn = BlockingFrameSocket.connect(path, frame_cap(channel), timeout, PREAMBLE)
    try:
        conn.write_frame(handshake_frame(channel, **params))
        return conn, parse_handshake_reply(conn.read_frame())
    except BaseException:
        conn.close()
        raise


async def open_async(
    socket_path: str | Path | None,
    channel: str,
    timeout: float | None = 30.0,
    autostart: bool = True,
    then: Sequence[bytes] = (),
    **params: Any,
) -> tuple[FrameConnection, dict[str, Any]]:
    """An asyncio connection on ``channel``, after its handshake; and the reply. With
    ``autostart``, a daemon is started when none answers. ``then``: frames sent right
    behind the handshake, before its reply (a round trip less; they are lost if the
    handshake is refused)."""
    path = resolve_socket(socket_path)
    try:
        stream = await connect_unix(path, frame_cap(channel), PREAMBLE)
    except DaemonNotRunningError:
        if not autostart:
            raise
        await asyncio.to_thread(ensure_daemon, path)
        stream = await connect_unix(path, frame_cap(channel), PREAMBLE)
    try:
        stream.send(handshake_frame(channel, **params))
        for frame in then:
            stream.send(frame)
        async with asyncio.timeout(timeout):
            reply = parse_handshake_reply(await stream.read_frame())
    except BaseException:
        await stream.close()
        raise
    return stream, reply


class _ChannelTarget:
    def __init__(
        self,
        socket_path: str | Path | None,
        channel: str,
        timeout: float | None,
        autostart: bool = True,
        **params: Any,
    ) -> None:
        self.socket_path = socket_path
        self.channel = channel
        self.timeout = timeout
        self.autostart = autostart
        self.params = params
        self.handshake: dict[str, Any] = {}


class BlockingChannel(_ChannelTarget):
    """One blocking connection to a channel, (re)opened on demand."""

    _conn: BlockingFrameSocket | None = None

    def connect(self) -> BlockingFrameSocket:
        if self._conn is None:
            self._conn, self.handshake = open_blocking(
                self.socket_path, self.channel, self.timeout, self.autostart, **self.params
            )
        return self._conn

    def run(self, call: Call[T]) -> T:
        conn = self.connect()
        try:
            conn.settimeout(call.timeout)
            for frame in call.frames:
                conn.write_frame(frame)
            while True:
                reply = conn.read_frame()
                if reply is None:
                    raise closed_before_reply()
                result = call.receive(reply)
                if result is not MORE:
                    return result  # type: ignore[return-value]
        except TimeoutError:
            self.close()
            raise call.timed_out() from None
        except (OSError, ProtocolError):
            self.close()
            raise

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class AsyncChannel(_ChannelTarget):
    """One asyncio connection to a channel, (re)opened on demand; calls take turns."""

    _conn: FrameConnection | None = None

    def __init__(
        self,
        socket_path: str | Path | None,
        channel: str,
        timeout: float | None,
        autostart: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(socket_path, channel, timeout, autostart, **params)
        self._lock = asyncio.Lock()

    async def connect(self) -> FrameConnection:
        if self._conn is None:
            self._conn, self.handshake = await open_async(
                self.socket_path, self.channel, self.timeout, self.autostart, **self.params
            )
        return self._conn

    async def run(self, call: Call[T]) -> T:
        async with self._lock:
            try:
                conn = await self.connect()
                async with asyncio.timeout(call.timeout):
                    for frame in call.frames:
                        conn.send(frame)
                    await conn.drain()
                    while True:
                        reply = await conn.read_frame()
                        if reply is None:
                            raise closed_before_reply()
                        result = call.receive(reply)
                        if result is not MORE:
                            return result  # type: ignore[return-value]
            except TimeoutError:
                await self.close()
                raise call.timed_out() from None
            except (OSError, ProtocolError):
                await self.close()
                raise

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


class BlockingClient:
    """Closing and ``with`` for the blocking clients (``close()`` never stops the daemon)."""

    _channel: BlockingChannel

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient:
    """Closing and ``async with`` for the asyncio clients."""

    _channel: AsyncChannel

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
