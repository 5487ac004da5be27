"""RuntimeRegistry: every kernel the daemon owns, by short id.

A runtime is a room's kernel. Notebook rooms get one when their kernel starts;
``start`` makes a room of its own, ``runtime-<id>``, an ephemeral notebook document: the
REPL writes its inputs there as cells, so any client can watch or join it. Such rooms are
pinned (never evicted for want of peers) until the runtime is killed.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from runtimed.daemon.execution.room_kernel import RUNTIME_ROOM_PREFIX, RoomKernel
from runtimed.daemon.execution.room_kernels import RoomKernels
from runtimed.daemon.history.log import HistoryLog
from runtimed.daemon.kernels.installed import choose_kernel
from runtimed.daemon.rooms.room_registry import RoomRegistry
from runtimed.errors import RuntimedError
from runtimed.protocol.handshake import Handshake
from runtimed.protocol.runtimes import RuntimeInfo

log = logging.getLogger(__name__)

_STATUS = {
    "not_started": "starting",
    "preparing_env": "starting",
    "launching": "starting",
    "restarting": "restarting",
    "dead": "dead",
    "shutdown": "shutdown",
}


class RuntimeRegistry:
    """Lists, starts and controls runtimes; records them in the history."""

    def __init__(
        self,
        rooms: RoomRegistry,
        room_kernels: RoomKernels,
        history: HistoryLog | None = None,
    ) -> None:
        self.rooms = rooms
        self.room_kernels = room_kernels
        self.history = history

    # --- listing -------------------------------------------------------------------------

    def _runtimes(self) -> Iterator[RoomKernel]:
        """Rooms' kernels that started and were not shut down."""
        for room_kernel in self.room_kernels:
            if room_kernel.started_at is not None and room_kernel.lifecycle != "shutdown":
                yield room_kernel

    def list(self) -> list[RuntimeInfo]:
        """Every runtime alive or dead (not shut down), oldest first."""
        infos = [describe(room_kernel) for room_kernel in self._runtimes()]
        return sorted(infos, key=lambda info: info.started_at or 0)

    def find(self, runtime_id: str) -> RoomKernel:
        """A runtime by id or unique id prefix; RuntimedError says what exists."""
        runtimes = list(self._runtimes())
        matches = [k for k in runtimes if k.runtime_id == runtime_id]
        if not matches and runtime_id:
            matches = [k for k in runtimes if k.runtime_id.startswith(runtime_id)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise RuntimedError(f"{runtime_id!r} matches several runtimes; give more of the id")
        known = ", ".join(k.runtime_id for k in runtimes) or "none running"
        raise RuntimedError(
            f"no runtime {runtime_id!r} (runtimes: {known}); see `runt ps`", "not_found"
        )

    # --- control -------------------------------------------------------------------------

    async def start(
        self, kernel_name: str = "python3", env_source: str = "auto", cwd: str | None = None
    ) -> RuntimeInfo:
        """A new runtime in its own ephemeral room; its working directory is ``cwd``.
        ``gateway:<kernelspec>`` as the kernel: that kernelspec on the gateway."""
        if kernel_name.startswith("gateway:"):
            kernel_name, env_source = "python3", kernel_name
        choose_kernel(kernel_name)  # an unknown name fails before a room exists
        directory = None
        if cwd is not None:
            if not os.path.isabs(cwd) or not os.path.isdir(cwd):
                raise RuntimedError(
                    f"--cwd must be an existing absolute directory, not {cwd!r}", "invalid_cwd"
                )
            directory = Path(cwd)
        notebook_id = f"{RUNTIME_ROOM_PREFIX}{uuid.uuid4().hex[:8]}"
        room = await self.rooms.open(Handshake(channel="notebook_sync", notebook_id=notebook_id))
        self.rooms.pinned.add(notebook_id)
        room_kernel = self.room_kernels.of(room)
        try:
            await room_kernel.launch(kernel_name, env_source, cwd=directory)
        except BaseException:
            await self.kill(room_kernel.runtime_id, missing_ok=True)
            raise
        return describe(room_kernel)

    async def kill(self, runtime_id: str, missing_ok: bool = False) -> str:
        """Stop a runtime's kernel; a runtime room of its own is unpinned and, once
        nobody is in it, evicted. Returns the full id."""
        try:
            room_kernel = self.find(runtime_id)
        except RuntimedError:
            if missing_ok:
                return runtime_id
            raise
        await room_kernel.shutdown()
        notebook_id = room_kernel.room.notebook_id
        if notebook_id in self.rooms.pinned:
            self.rooms.pinned.discard(notebook_id)
            await self.rooms.evict(notebook_id)
        log.info("runtime %s killed", room_kernel.runtime_id)
        return room_kernel.runtime_id

    async def interrupt(self, runtime_id: str) -> RuntimeInfo:
        room_kernel = self.find(runtime_id)
        await room_kernel.interrupt()
        return describe(room_kernel)

    async def restart(self, runtime_id: str) -> RuntimeInfo:
        room_kernel = self.find(runtime_id)
        await room_kernel.restart()
        return describe(room_kernel)


def describe(room_kernel: RoomKernel) -> RuntimeInfo:
    """What `runt ps` shows of one runtime."""
    details = room_kernel.info()
    lifecycle = details.lifecycle
    status = _STATUS.get(lifecycle, "unknown")
    if lifecycle == "running":
        status = "busy" if details.activity == "busy" else "idle"
    session = room_kernel.session
    workspace = session.workspace if session is not None else None
    room = room_kernel.room
    return RuntimeInfo(
        runtime_id=room_kernel.runtime_id,
        kernel_name=room_kernel.kernel_name,
        language=details.language,
        pid=details.pid,
        status=status,
        transport=session.transport if session is not None else None,
        connection_file=str(workspace.connection_file)
        if workspace is not None
        else (room_kernel.acquired.location if room_kernel.acquired else None),
        notebook_id=room.notebook_id,
        notebook_path=room.file.path,
        env_source=details.env_source,
        started_at=room_kernel.started_at,
        last_activity=room_kernel.last_activity,
    )
