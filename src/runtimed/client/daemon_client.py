"""DaemonClient / AsyncDaemonClient: the pool channel (pools and daemon control).

Both run the same ``PoolCalls``; they differ only in how bytes move.
"""

from __future__ import annotations

from pathlib import Path

from runtimed.client.calls import PoolCalls
from runtimed.client.channel import AsyncChannel, AsyncClient, BlockingChannel, BlockingClient
from runtimed.protocol.control import (
    CleanReply,
    DaemonInfo,
    DiskReply,
    Pong,
    PooledEnv,
    RoomInfo,
    StatusReply,
)

DEFAULT_TIMEOUT = 90.0


class DaemonClient(BlockingClient):
    """Blocking client for the daemon's pool channel. ``close()`` never stops the daemon."""

    def __init__(
        self,
        socket_path: str | Path | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        autostart: bool = True,
    ) -> None:
        """``autostart``: start the daemon when none answers (off with
        RUNTIMED_NO_AUTOSTART=1)."""
        self._calls = PoolCalls(timeout)
        self._channel = BlockingChannel(socket_path, "pool", timeout, autostart)

    def ping(self) -> Pong:
        return self._channel.run(self._calls.ping())

    def status(self) -> StatusReply:
        return self._channel.run(self._calls.status())

    def take(self, env_type: str = "uv", timeout: float | None = None) -> PooledEnv | None:
        """A prewarmed env (now yours), or None if none became ready within ``timeout``."""
        return self._channel.run(self._calls.take(env_type, timeout))

    def return_env(self, venv_path: str) -> str:
        """Give an unused env back; ``"returned"`` or ``"deleted"``."""
        return self._channel.run(self._calls.return_env(venv_path))

    def flush_pool(self) -> None:
        self._channel.run(self._calls.flush_pool())

    def list_rooms(self) -> list[RoomInfo]:
        return self._channel.run(self._calls.list_rooms())

    def daemon_info(self) -> DaemonInfo:
        return self._channel.run(self._calls.daemon_info())

    def list_envs(self) -> DiskReply:
        """Every env on disk (inline and pooled), stored rooms and blobs, with sizes."""
        return self._channel.run(self._calls.list_envs())

    def clean_envs(
        self, all: bool = False, max_age_days: float | None = None, dry_run: bool = False
    ) -> CleanReply:
        """Collect disk now (never anything in use); ``dry_run`` only reports."""
        return self._channel.run(self._calls.clean_envs(all, max_age_days, dry_run))

    def shutdown(self) -> None:
        """Ask the daemon to stop (kernels and in-flight builds stop with it)."""
        self._channel.run(self._calls.shutdown())
        self.close()


class AsyncDaemonClient(AsyncClient):
    """The asyncio twin of DaemonClient: the same methods, as coroutines."""

    def __init__(
        self,
        socket_path: str | Path | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        autostart: bool = True,
    ) -> None:
        """``autostart``: start the daemon when none answers (off with
        RUNTIMED_NO_AUTOSTART=1)."""
        self._calls = PoolCalls(timeout)
        self._channel = AsyncChannel(socket_path, "pool", timeout, autostart)

    async def ping(self) -> Pong:
        return await self._channel.run(self._calls.ping())

    async def status(self) -> StatusReply:
        return await self._channel.run(self._calls.status())

    async def take(self, env_type: str = "uv", timeout: float | None = None) -> PooledEnv | None:
        """A prewarmed env (now yours), or None if none became ready within ``timeout``."""
        return await self._channel.run(self._calls.take(env_type, timeout))

    async def return_env(self, venv_path: str) -> str:
        """Give an unused env back; ``"returned"`` or ``"deleted"``."""
        return await self._channel.run(self._calls.return_env(venv_path))

    async def flush_pool(self) -> None:
        await self._channel.run(self._calls.flush_pool())

    async def list_rooms(self) -> list[RoomInfo]:
        return await self._channel.run(self._calls.list_rooms())

    async def daemon_info(self) -> DaemonInfo:
        return await self._channel.run(self._calls.daemon_info())

    async def list_envs(self) -> DiskReply:
        """Every env on disk (inline and pooled), stored rooms and blobs, with sizes."""
        return await self._channel.run(self._calls.list_envs())

    async def clean_envs(
        self, all: bool = False, max_age_days: float | None = None, dry_run: bool = False
    ) -> CleanReply:
        """Collect disk now (never anything in use); ``dry_run`` only reports."""
        return await self._channel.run(self._calls.clean_envs(all, max_age_days, dry_run))

    async def shutdown(self) -> None:
        """Ask the daemon to stop (kernels and in-flight builds stop with it)."""
        await self._channel.run(self._calls.shutdown())
        await self.close()
