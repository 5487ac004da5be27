"""runtimed: instant, shared Jupyter runtimes.

import runtimed
client = runtimed.DaemonClient()
client.ping()
"""

from __future__ import annotations

from runtimed.version import __version__

# Not `from typing import ...`: importing typing costs every `runt` command ~3 ms.
TYPE_CHECKING = False

__all__ = [
    "AsyncDaemonClient",
    "AsyncSession",
    "Cell",
    "DaemonClient",
    "ExecutionResult",
    "Output",
    "RuntimedError",
    "Session",
    "__version__",
    "sidecar",
]

if TYPE_CHECKING:
    from typing import Any

    from runtimed.cli.open_cli import sidecar
    from runtimed.client import AsyncDaemonClient, AsyncSession, DaemonClient, Session
    from runtimed.client.results import Cell, ExecutionResult, Output
    from runtimed.errors import RuntimedError


def __getattr__(name: str) -> Any:
    # Lazy, so `import runtimed` inside the daemon or CLI pays only for what it uses.
    if name in ("DaemonClient", "AsyncDaemonClient", "Session", "AsyncSession"):
        from runtimed import client

        return getattr(client, name)
    if name in ("Cell", "ExecutionResult", "Output"):
        from runtimed.client import results

        return getattr(results, name)
    if name == "RuntimedError":
        from runtimed.errors import RuntimedError

        return RuntimedError
    if name == "sidecar":  # the sidecar page of a runtime (docs/web.md)
        from runtimed.cli.open_cli import sidecar

        return sidecar
    raise AttributeError(f"module 'runtimed' has no attribute {name!r}")
