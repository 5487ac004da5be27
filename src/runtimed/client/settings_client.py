"""SettingsClient / AsyncSettingsClient: read and change the daemon's settings.

Keys are dotted (``uv.pool_size``). Both run the same ``SettingsCalls``.
"""

from __future__ import annotations

from typing import Any

from runtimed.client.calls import SettingsCalls
from runtimed.client.channel import AsyncChannel, AsyncClient, BlockingChannel, BlockingClient
from runtimed.client.daemon_address import AddressLike, daemon_address

DEFAULT_TIMEOUT = 30.0


class SettingsClient(BlockingClient):
    """Blocking client for `get` / `set` of settings."""

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
        self._calls = SettingsCalls(timeout)
        self._channel = BlockingChannel(
            daemon_address(socket_path, url, token), "settings_sync", timeout, autostart
        )

    def get_all(self) -> dict[str, Any]:
        """Every effective setting."""
        return self._channel.run(self._calls.get_all())

    def get(self, key: str) -> Any:
        return self._channel.run(self._calls.get(key))

    def set(self, key: str, value: Any) -> Any:
        """Validate and apply ``key = value``; returns the stored (normalised) value."""
        return self._channel.run(self._calls.set(key, value))


class AsyncSettingsClient(AsyncClient):
    """The asyncio twin of SettingsClient."""

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
        self._calls = SettingsCalls(timeout)
        self._channel = AsyncChannel(
            daemon_address(socket_path, url, token), "settings_sync", timeout, autostart
        )

    async def get_all(self) -> dict[str, Any]:
        """Every effective setting."""
        return await self._channel.run(self._calls.get_all())

    async def get(self, key: str) -> Any:
        return await self._channel.run(self._calls.get(key))

    async def set(self, key: str, value: Any) -> Any:
        """Validate and apply ``key = value``; returns the stored (normalised) value."""
        return await self._channel.run(self._calls.set(key, value))
