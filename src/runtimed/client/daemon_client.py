"""DaemonClient / AsyncDaemonClient: the pool channel (pools and daemon control).

Both run the same ``PoolCalls``; they differ only in how bytes move.
"""

from __future__ import annotations

from runtimed.client.calls import PoolCalls
from runtimed.client.channel import AsyncChannel, AsyncClient, BlockingChannel, BlockingClient
from runtimed.client.daemon_address import AddressLike, daemon_address
from runtimed.protocol.control import (
    CleanReply,
    DaemonInfo,
    DiskReply,
    Pong,
    PooledEnv,
    RoomInfo,
    StatusReply,
)
from runtimed.protocol.runtimes import ExecutionEntry, RuntimeInfo

DEFAULT_TIMEOUT = 90.0


class DaemonClient(BlockingClient):
    """Blocking client for the daemon's pool channel. ``close()`` never stops the daemon."""

    def __init__(
        self,
        socket_path: AddressLike = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        autostart: bool = True,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        """``autostart``: start the daemon when none answers on the socket (off with
        RUNTIMED_NO_AUTOSTART=1). ``url``: a daemon over HTTP (``/ws``), with ``token``
        (default: RUNTIMED_TOKEN, RUNTIMED_TOKEN_FILE, or the local token file)."""
        self._calls = PoolCalls(timeout)
        self._channel = BlockingChannel(
            daemon_address(socket_path, url, token), "pool", timeout, autostart
        )

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

    def list_runtimes(self, all: bool = False) -> list[RuntimeInfo]:
        """The kernels the daemon owns; ``all`` adds others found in Jupyter's runtime dir."""
        return self._channel.run(self._calls.list_runtimes(all))

    def start_runtime(
        self, kernel: str = "python3", env_source: str = "auto", cwd: str | None = None
    ) -> RuntimeInfo:
        """Start a kernel in a room of its own (``runtime-<id>``); ``cwd`` absolute."""
        return self._channel.run(self._calls.start_runtime(kernel, env_source, cwd))

    def kill_runtimes(self, runtime_ids: list[str]) -> list[str]:
        """Stop runtimes (ids or unique prefixes); returns their full ids."""
        return self._channel.run(self._calls.kill_runtimes(runtime_ids))

    def interrupt_runtime(self, runtime_id: str) -> RuntimeInfo:
        return self._channel.run(self._calls.interrupt_runtime(runtime_id))

    def restart_runtime(self, runtime_id: str) -> RuntimeInfo:
        return self._channel.run(self._calls.restart_runtime(runtime_id))

    def executions(
        self,
        notebook: str | None = None,
        runtime_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[ExecutionEntry]:
        """Executions from the history, newest first (``oldest_first`` for the reverse)."""
        return self._channel.run(self._calls.executions(notebook, runtime_id, limit, oldest_first))

    def get_execution(self, execution_id: str) -> ExecutionEntry:
        """One execution with its source and outputs (by ULID or execution id)."""
        return self._channel.run(self._calls.get_execution(execution_id))


class AsyncDaemonClient(AsyncClient):
    """The asyncio twin of DaemonClient: the same methods, as coroutines."""

    def __init__(
        self,
        socket_path: AddressLike = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        autostart: bool = True,
        *,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        """``autostart``: start the daemon when none answers on the socket (off with
        RUNTIMED_NO_AUTOSTART=1). ``url``: a daemon over HTTP (``/ws``), with ``token``
        (default: RUNTIMED_TOKEN, RUNTIMED_TOKEN_FILE, or the local token file)."""
        self._calls = PoolCalls(timeout)
        self._channel = AsyncChannel(
            daemon_address(socket_path, url, token), "pool", timeout, autostart
        )

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

    async def list_runtimes(self, all: bool = False) -> list[RuntimeInfo]:
        """The kernels the daemon owns; ``all`` adds others found in Jupyter's runtime dir."""
        return await self._channel.run(self._calls.list_runtimes(all))

    async def start_runtime(
        self, kernel: str = "python3", env_source: str = "auto", cwd: str | None = None
    ) -> RuntimeInfo:
        """Start a kernel in a room of its own (``runtime-<id>``); ``cwd`` absolute."""
        return await self._channel.run(self._calls.start_runtime(kernel, env_source, cwd))

    async def kill_runtimes(self, runtime_ids: list[str]) -> list[str]:
        """Stop runtimes (ids or unique prefixes); returns their full ids."""
        return await self._channel.run(self._calls.kill_runtimes(runtime_ids))

    async def interrupt_runtime(self, runtime_id: str) -> RuntimeInfo:
        return await self._channel.run(self._calls.interrupt_runtime(runtime_id))

    async def restart_runtime(self, runtime_id: str) -> RuntimeInfo:
        return await self._channel.run(self._calls.restart_runtime(runtime_id))

    async def executions(
        self,
        notebook: str | None = None,
        runtime_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
    ) -> list[ExecutionEntry]:
        """Executions from the history, newest first (``oldest_first`` for the reverse)."""
        return await self._channel.run(
            self._calls.executions(notebook, runtime_id, limit, oldest_first)
        )

    async def get_execution(self, execution_id: str) -> ExecutionEntry:
        """One execution with its source and outputs (by ULID or execution id)."""
        return await self._channel.run(self._calls.get_execution(execution_id))
