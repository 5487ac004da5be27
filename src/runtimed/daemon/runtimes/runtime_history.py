"""RuntimeHistory: rooms' kernels starting, restarting, dying and stopping, recorded as
runtimes in the execution history (the ``RuntimeObserver`` every ``RoomKernel`` tells)."""

from __future__ import annotations

import time

from runtimed.daemon.execution.room_kernel import RoomKernel
from runtimed.daemon.history.log import HistoryLog


class RuntimeHistory:
    """Writes each room kernel's runtime row into ``history.sqlite``."""

    def __init__(self, history: HistoryLog) -> None:
        self.history = history

    def observe(self, room_kernel: RoomKernel, event: str) -> None:
        """``started`` / ``restarted`` / ``died`` / ``stopped``: into the history."""
        runtime_id = room_kernel.runtime_id
        if event not in ("started", "restarted"):
            self.history.add_runtime(runtime_id, ended_at=time.time(), exit_status=event)
            return
        session = room_kernel.session
        details = room_kernel.info()
        self.history.add_runtime(
            runtime_id,
            kernel_name=room_kernel.kernel_name,
            language=details.language,
            env_source=details.env_source,
            notebook_id=room_kernel.room.notebook_id,
            pid=session.pid if session is not None else None,
            kernel_info=session.kernel_info if session is not None else None,
            started_at=room_kernel.started_at,
        )
