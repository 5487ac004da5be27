"""SettingsClient / AsyncSettingsClient: read and change the daemon's settings.

Keys are dotted (``uv.pool_size``). Both run the same ``SettingsCalls``.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any, Self

from runtimed.client.calls import SettingsCalls
from runtimed.client.channel import AsyncChannel, BlockingChannel

DEFAULT_TIMEOUT = 30.0


class SettingsClient:
    """Blocking client for `get` / `set` of settings."""

    def __init__(
        self, socket_path: str | Path | None = None, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        self._calls = SettingsCalls(timeout)
        self._channel = BlockingChannel(socket_path, "settings_sync", timeout)

    def get_all(self) -> dict[str, Any]:
        """Every effective setting."""
        return self._channel.run(self._calls.get_all())

    def get(self, key: str) -> Any:
        return self._channel.run(self._calls.get(key))

    def set(self, key: str, value: Any) -> Any:
        """Validate and apply ``key = value``; returns the stored (normalised) value."""
        return self._channel.run(self._calls.set(key, value))

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncSettingsClient:
    """The asyncio twin of SettingsClient."""

    def __init__(
        self, socket_path: str | Path | None = None, timeout: float | None = DEFAULT_TIMEOUT
    ) -> None:
        self._calls = SettingsCalls(timeout)
        self._channel = AsyncChannel(socket_path, "settings_sync", timeout)

    async def get_all(self) -> dict[str, Any]:
        """Every effective setting."""
        return await self._channel.run(self._calls.get_all())

    async def get(self, key: str) -> Any:
        return await self._channel.run(self._calls.get(key))

    async def set(self, key: str, value: Any) -> Any:
        """Validate and apply ``key = value``; returns the stored (normalised) value."""
        return await self._channel.run(self._calls.set(key, value))

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
