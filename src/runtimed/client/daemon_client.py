"""DaemonClient / AsyncDaemonClient: the pool channel (pools and daemon control)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from types import TracebackType
from typing import Self, TypeVar

from runtimed.client.connection import BlockingConnection, open_async_connection
from runtimed.client.core import parse_pool_reply
from runtimed.errors import RuntimedError
from runtimed.protocol.framing import PROTOCOL_VERSION
from runtimed.protocol.messages import (
    DaemonInfo,
    EmptyReply,
    EnvRef,
    EnvReply,
    FlushPool,
    GetDaemonInfo,
    ListRooms,
    OkReply,
    Ping,
    Pong,
    PooledEnv,
    PoolRequest,
    PoolResponse,
    Return,
    RoomInfo,
    RoomsReply,
    Shutdown,
    Status,
    StatusReply,
    Take,
    encode,
)
from runtimed.protocol.stream import FramedStream

T = TypeVar("T")


def _expect(reply: PoolResponse, kind: type[T]) -> T:
    if not isinstance(reply, kind):
        raise RuntimedError(f"unexpected reply from the daemon: {reply!r}", "protocol_error")
    return reply


def _take_result(reply: PoolResponse) -> PooledEnv | None:
    if isinstance(reply, EmptyReply):
        return None
    return _expect(reply, EnvReply).env


def _check_pong(reply: PoolResponse) -> Pong:
    pong = _expect(reply, Pong)
    if pong.protocol_version != PROTOCOL_VERSION:
        raise RuntimedError(
            f"daemon speaks protocol {pong.protocol_version}, this client {PROTOCOL_VERSION}; "
            "restart the daemon after upgrading runtimed",
            "version_mismatch",
        )
    return pong


class DaemonClient:
    """Blocking client for the daemon's pool channel. ``close()`` never stops the daemon."""

    def __init__(self, socket_path: str | Path | None = None, timeout: float = 90.0) -> None:
        self._socket_path = socket_path
        self._timeout = timeout
        self._conn: BlockingConnection | None = None

    def _call(self, request: PoolRequest) -> PoolResponse:
        if self._conn is None:
            self._conn = BlockingConnection.open(self._socket_path, "pool", self._timeout)
        # A take may wait on the daemon side for longer than our socket timeout.
        wait = getattr(request, "timeout_secs", None)
        self._conn.settimeout(max(self._timeout, wait + 10) if wait else self._timeout)
        self._conn.write_frame(encode(request))
        return parse_pool_reply(self._conn.read_frame())

    def ping(self) -> Pong:
        return _check_pong(self._call(Ping()))

    def status(self) -> StatusReply:
        return _expect(self._call(Status()), StatusReply)

    def take(self, env_type: str = "uv", timeout: float | None = None) -> PooledEnv | None:
        """A prewarmed env (now yours), or None if none became ready within ``timeout``."""
        return _take_result(self._call(Take(env_type=env_type, timeout_secs=timeout)))  # type: ignore[arg-type]

    def return_env(self, venv_path: str) -> str:
        """Give an unused env back; ``"returned"`` or ``"deleted"``."""
        return _expect(self._call(Return(EnvRef(venv_path=str(venv_path)))), OkReply).message

    def flush_pool(self) -> None:
        self._call(FlushPool())

    def list_rooms(self) -> list[RoomInfo]:
        return _expect(self._call(ListRooms()), RoomsReply).rooms

    def daemon_info(self) -> DaemonInfo:
        return _expect(self._call(GetDaemonInfo()), DaemonInfo)

    def shutdown(self) -> None:
        """Ask the daemon to stop (kernels and in-flight builds stop with it)."""
        self._call(Shutdown())
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDaemonClient:
    """The asyncio twin of DaemonClient."""

    def __init__(self, socket_path: str | Path | None = None) -> None:
        self._socket_path = socket_path
        self._stream: FramedStream | None = None

    async def _call(self, request: PoolRequest) -> PoolResponse:
        if self._stream is None:
            self._stream, _ = await open_async_connection(self._socket_path, "pool")
        await self._stream.write_frame(encode(request))
        return parse_pool_reply(await self._stream.read_frame())

    async def ping(self) -> Pong:
        return _check_pong(await self._call(Ping()))

    async def status(self) -> StatusReply:
        return _expect(await self._call(Status()), StatusReply)

    async def take(self, env_type: str = "uv", timeout: float | None = None) -> PooledEnv | None:
        return _take_result(await self._call(Take(env_type=env_type, timeout_secs=timeout)))  # type: ignore[arg-type]

    async def return_env(self, venv_path: str) -> str:
        reply = await self._call(Return(EnvRef(venv_path=str(venv_path))))
        return _expect(reply, OkReply).message

    async def flush_pool(self) -> None:
        await self._call(FlushPool())

    async def list_rooms(self) -> list[RoomInfo]:
        return _expect(await self._call(ListRooms()), RoomsReply).rooms

    async def daemon_info(self) -> DaemonInfo:
        return _expect(await self._call(GetDaemonInfo()), DaemonInfo)

    async def shutdown(self) -> None:
        await self._call(Shutdown())
        await self.close()

    async def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.close()
            self._stream = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
