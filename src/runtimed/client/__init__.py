"""Clients of the daemon: pool/control client and notebook sessions.

Imported on first use: `runt pool ping` needs no pycrdt, a notebook session does.
"""

from __future__ import annotations

# Not `from typing import ...`: importing typing costs every `runt` command ~3 ms.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from runtimed.client.async_session import AsyncSession
    from runtimed.client.daemon_client import AsyncDaemonClient, DaemonClient
    from runtimed.client.session import Session

__all__ = ["AsyncDaemonClient", "AsyncSession", "DaemonClient", "Session"]

_WHERE = {
    "AsyncSession": "runtimed.client.async_session",
    "Session": "runtimed.client.session",
    "DaemonClient": "runtimed.client.daemon_client",
    "AsyncDaemonClient": "runtimed.client.daemon_client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runtimed.client' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
