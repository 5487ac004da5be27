"""Execution records and the ``ExecutionLog`` seam.

Every execution is recorded three times: when it is queued, when it starts and when it
ends. The room's runtime document shows the live state to every peer; an ExecutionLog
keeps records for lookup (``get_execution``) and, in other implementations, for good
(execution history in SQLite). The queue feeds both.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from runtimed.protocol.room import ExecutionRecord

if TYPE_CHECKING:
    from runtimed.documents.notebook import NotebookDoc

__all__ = [
    "ExecutionLog",
    "ExecutionLogs",
    "ExecutionRecord",
    "MemoryExecutionLog",
    "MemoryExecutionLogs",
]


class ExecutionLog(Protocol):
    """Where execution records go. ``record`` must not block the event loop."""

    def record(self, record: ExecutionRecord) -> None:
        """Called at queue, start and end of every execution (the latest wins)."""

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """The latest record of an execution, if this log still has it."""


class MemoryExecutionLog:
    """Records of one room in memory, the newest ``max_records`` of them."""

    def __init__(self, max_records: int = 100_000) -> None:
        self.max_records = max_records
        self._records: OrderedDict[str, ExecutionRecord] = OrderedDict()

    def record(self, record: ExecutionRecord) -> None:
        self._records[record.execution_id] = record
        if len(self._records) > self.max_records:
            self._records.popitem(last=False)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        return self._records.get(execution_id)


class ExecutionLogs(Protocol):
    """Where each room's ``ExecutionLog`` comes from (``HistoryLog``: history.sqlite)."""

    def for_room(
        self, notebook_id: str, nb: NotebookDoc, runtime_id: Callable[[], str | None]
    ) -> ExecutionLog:
        """The log of one room, whose document is ``nb`` and whose runtime id (kept
        across restarts) ``runtime_id()`` tells."""
        ...


class MemoryExecutionLogs:
    """Each room's records in memory only (a daemon without history, and tests)."""

    def for_room(
        self, notebook_id: str, nb: NotebookDoc, runtime_id: Callable[[], str | None]
    ) -> ExecutionLog:
        return MemoryExecutionLog()
