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
from typing import Any, Protocol, Self, TypeVar

from runtimed.client.core import (
    MORE,
    Call,
    closed_before_reply,
    frame_cap,
    handshake_frame,
    parse_handshake_reply,
)
from runtimed.client.daemon_address import AddressLike, DaemonAddress, daemon_address
from runtimed.errors import DaemonNotRunningError, ProtocolError
from runtimed.paths import default_socket_path
from runtimed.protocol.connection import FrameConnection
from runtimed.protocol.framing import PREAMBLE
from runtimed.transport.unix_client import BlockingFrameSocket, connect_unix

T = TypeVar("T")


class BlockingFrames(Protocol):
    """A blocking frame connection: ``BlockingFrameSocket`` or ``BlockingWebSocket``."""

    def settimeout(self, timeout: float | None) -> None: ...

    def write_frame(self, payload: bytes) -> None: ...

    def read_frame(self) -> bytes | None: ...

    def close(self) -> None: ...


def resolve_socket(socket_path: str | Path | None) -> Path:
    return Path(socket_path).expanduser().absolute() if socket_path else default_socket_path()


def _connect_blocking(
    address: DaemonAddress, channel: str, timeout: float | None, autostart: bool
) -> BlockingFrames:
    if address.url is not None:
        from runtimed.transport.ws_client import BlockingWebSocket

        token = address.resolve_token()
        return BlockingWebSocket.connect(address.url, token, frame_cap(channel), timeout)
    path = address.socket()
    try:
        return BlockingFrameSocket.connect(path, frame_cap(channel), timeout, PREAMBLE)
    except DaemonNotRunningError:
        if not autostart:
            raise
        from runtimed.client.autostart import ensure_daemon  # only when none answers

        ensure_daemon(path)
        return BlockingFrameSocket.connect(path, frame_cap(channel), timeout, PREAMBLE)


def open_blocking(
    target: AddressLike,
    channel: str,
    timeout: float | None,
    autostart: bool = True,
    **params: Any,
) -> tuple[BlockingFrames, dict[str, Any]]:
    """A blocking connection on ``channel``, after its handshake; and the reply. With
    ``autostart``, a daemon is started when none answers on the socket (never for a URL)."""
    conn = _connect_blocking(daemon_address(target), channel, timeout, autostart)
    try:
        conn.write_frame(handshake_frame(channel, **params))
        return conn, parse_handshake_reply(conn.read_frame())
    except BaseException:
        conn.close()
        raise


async def _connect_async(
    address: DaemonAddress, channel: str, timeout: float | None, autostart: bool
) -> FrameConnection:
    if address.url is not None:
        from runtimed.transport.ws_client import connect_ws

        token = address.resolve_token()
        return await connect_ws(address.url, token, frame_cap(channel), timeout)
    path = address.socket()
    try:
        return await connect_unix(path, frame_cap(channel), PREAMBLE)
    except DaemonNotRunningError:
        if not autostart:
            raise
        from runtimed.client.autostart import ensure_daemon  # only when none answers

        await asyncio.to_thread(ensure_daemon, path)
        return await connect_unix(path, frame_cap(channel), PREAMBLE)


async def open_async(
    target: AddressLike,
    channel: str,
    timeout: float | None = 30.0,
    autostart: bool = True,
    then: Sequence[bytes] = (),
    **params: Any,
) -> tuple[FrameConnection, dict[str, Any]]:
    """An asyncio connection on ``channel``, after its handshake; and the reply. With
    ``autostart``, a daemon is started when none answers on the socket (never for a URL).
    ``then``: frames sent right behind the handshake, before its reply (a round trip
    less; they are lost if the handshake is refused)."""
    stream = await _connect_async(daemon_address(target), channel, timeout, autostart)
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
        target: AddressLike,
        channel: str,
        timeout: float | None,
        autostart: bool = True,
        **params: Any,
    ) -> None:
        self.address = daemon_address(target)
        self.channel = channel
        self.timeout = timeout
        self.autostart = autostart
        self.params = params
        self.handshake: dict[str, Any] = {}


class BlockingChannel(_ChannelTarget):
    """One blocking connection to a channel, (re)opened on demand."""

    _conn: BlockingFrames | None = None

    def connect(self) -> BlockingFrames:
        if self._conn is None:
            self._conn, self.handshake = open_blocking(
                self.address, self.channel, self.timeout, self.autostart, **self.params
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
        target: AddressLike,
        channel: str,
        timeout: float | None,
        autostart: bool = True,
        **params: Any,
    ) -> None:
        super().__init__(target, channel, timeout, autostart, **params)
        self._lock = asyncio.Lock()

    async def connect(self) -> FrameConnection:
        if self._conn is None:
            self._conn, self.handshake = await open_async(
                self.address, self.channel, self.timeout, self.autostart, **self.params
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
