"""Runtime and history requests of the pool channel: `runt ps/start/kill/...`, `runt history`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtimed.errors import RuntimedError
from runtimed.protocol.control import OkReply, PoolResponse
from runtimed.protocol.runtimes import (
    ExecutionReply,
    ExecutionsReply,
    GetExecution,
    InterruptRuntime,
    KillRuntime,
    ListExecutions,
    ListRuntimes,
    RestartRuntime,
    RuntimeInfo,
    RuntimeReply,
    RuntimeRequest,
    RuntimesReply,
    StartRuntime,
)

if TYPE_CHECKING:
    from runtimed.daemon.history import HistoryLog
    from runtimed.daemon.runtimes import RuntimeRegistry

#: The longest `list_executions` answer.
MAX_LIMIT = 10_000


@dataclass(frozen=True)
class RuntimeRequests:
    """``foreign`` lists the kernels in Jupyter's runtime dir that are not ours (given the
    connection files we own)."""

    runtimes: RuntimeRegistry
    history: HistoryLog
    foreign: Callable[[set[str]], Awaitable[list[RuntimeInfo]]] | None = None

    def __post_init__(self) -> None:
        if self.foreign is None:
            from runtimed.daemon.runtimes.foreign import foreign_kernels

            object.__setattr__(self, "foreign", foreign_kernels)

    async def handle(self, request: RuntimeRequest) -> PoolResponse:
        match request:
            case ListRuntimes(all=everything):
                owned = self.runtimes.list()
                if everything and self.foreign is not None:
                    ours = {r.connection_file for r in owned if r.connection_file}
                    owned = [*owned, *await self.foreign(ours)]
                return RuntimesReply(owned)
            case StartRuntime(kernel=kernel, env_source=env_source, cwd=cwd):
                if not kernel:
                    raise RuntimedError("give a kernel name, like python3", "invalid_request")
                started = await self.runtimes.start(kernel, env_source or "auto", cwd)
                return RuntimeReply(started)
            case KillRuntime(runtime_ids=ids):
                registry = self.runtimes
                for runtime_id in ids:  # all known before any is killed
                    registry.find(runtime_id)
                killed = [await registry.kill(runtime_id) for runtime_id in ids]
                return OkReply(" ".join(killed))
            case InterruptRuntime(runtime_id=runtime_id):
                return RuntimeReply(await self.runtimes.interrupt(runtime_id))
            case RestartRuntime(runtime_id=runtime_id):
                return RuntimeReply(await self.runtimes.restart(runtime_id))
            case ListExecutions(notebook=notebook, runtime_id=runtime_id, limit=limit):
                if not 0 < limit <= MAX_LIMIT:
                    raise RuntimedError(f"limit must be 1 to {MAX_LIMIT}", "invalid_request")
                entries = await asyncio.to_thread(
                    self.history.executions, notebook, runtime_id, limit, request.oldest_first
                )
                return ExecutionsReply(entries)
            case GetExecution(execution_id=ident):
                entry = await asyncio.to_thread(self.history.execution, ident)
                if entry is None:
                    raise RuntimedError(
                        f"no execution {ident!r} in the history; see `runt history`", "not_found"
                    )
                return ExecutionReply(entry)
        raise RuntimedError(f"unhandled request {request!r}", "unknown_request")
