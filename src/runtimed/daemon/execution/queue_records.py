"""QueueRecords: where an execution's record goes each time it changes (queued, running,
ended): the room's runtime state, which peers see, and the ExecutionLog, which keeps it.

The runtime document keeps the records of live executions and of the last
KEEP_RECORDS_IN_DOC ended ones; older ones are dropped from it (the log has them), so the
document every peer syncs stays the same size however long the room lives.
"""

from __future__ import annotations

import time
import uuid
from collections import deque

from runtimed.daemon.execution.records import ExecutionLog, ExecutionRecord
from runtimed.daemon.rooms.runtime_state import RuntimeState
from runtimed.documents.runtime import FINAL_STATUSES

KEEP_RECORDS_IN_DOC = 500


def new_record(cell_id: str, batch: str | None = None) -> ExecutionRecord:
    """A queued execution of ``cell_id`` (``batch``: a run-all's)."""
    return ExecutionRecord(
        f"exec-{uuid.uuid4().hex[:16]}", cell_id, queued_at=time.time(), batch=batch
    )


class QueueRecords:
    """The records of one room's executions."""

    def __init__(self, runtime_state: RuntimeState, log: ExecutionLog) -> None:
        self.runtime_state = runtime_state
        self.log = log
        # Records not yet ended (the log may be slow to read; these are read often).
        self._live: dict[str, ExecutionRecord] = {}
        self._ended: deque[str] = deque()  # ids of ended records still in the document

    def save(self, record: ExecutionRecord, log: bool = True) -> ExecutionRecord:
        """Into the runtime state and (``log``) the ExecutionLog; returns ``record``."""
        fields = record.as_dict()
        del fields["execution_id"]
        self.runtime_state.set_execution(record.execution_id, fields)
        if record.status in FINAL_STATUSES:
            self._live.pop(record.execution_id, None)
            self._ended.append(record.execution_id)
            while len(self._ended) > KEEP_RECORDS_IN_DOC:
                self.runtime_state.forget_execution(self._ended.popleft())
        else:
            self._live[record.execution_id] = record
        if log:
            self.log.record(record)
        return record

    def live(self, execution_id: str) -> ExecutionRecord | None:
        """The record of an execution not yet ended."""
        return self._live.get(execution_id)

    def get(self, execution_id: str) -> ExecutionRecord | None:
        """The latest record of an execution, live or logged."""
        return self._live.get(execution_id) or self.log.get(execution_id)
