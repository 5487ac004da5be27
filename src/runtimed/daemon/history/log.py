"""HistoryLog: the SQLite ``ExecutionLog``, written off the event loop in batches.

``record`` (on the loop) only turns a record into a row and appends it; a writer thread
commits whatever piled up every ``flush_interval`` (200 ms) in one transaction. A kill -9
of the daemon therefore loses at most the last ~200 ms of records, never the file.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from runtimed.daemon.execution.records import ExecutionRecord, MemoryExecutionLog
from runtimed.daemon.history.store import (
    ExecutionRow,
    HistoryStore,
    Retention,
    RuntimeRow,
)
from runtimed.daemon.history.ulid import new_ulid
from runtimed.documents.notebook import NotebookDoc
from runtimed.documents.runtime import FINAL_STATUSES
from runtimed.errors import RuntimedError
from runtimed.protocol.runtimes import ExecutionEntry

log = logging.getLogger(__name__)

#: How often retention runs (seconds of writer time).
PRUNE_INTERVAL_SECS = 600.0


def history_enabled() -> bool:
    """``RUNTIMED_HISTORY=0`` turns recording off (bench/history.py compares the two)."""
    return os.environ.get("RUNTIMED_HISTORY", "1").lower() not in ("0", "off", "no", "false")


class HistoryLog:
    """The daemon-wide history. ``for_room`` gives each room its ``ExecutionLog``."""

    def __init__(
        self,
        store: HistoryStore,
        retention: Callable[[], Retention] = Retention,
        flush_interval: float = 0.2,
    ) -> None:
        self.store = store
        self.retention = retention
        self.flush_interval = flush_interval
        self.enabled = history_enabled()
        self._executions: deque[ExecutionRow] = deque()
        self._runtimes: deque[RuntimeRow] = deque()
        # ULIDs of executions not yet ended (the first record of an execution picks it).
        self._ulids: dict[str, str] = {}
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune = 0.0
        self._flush_lock = threading.Lock()

    # --- writing (on the loop) -----------------------------------------------------------

    def for_room(
        self, notebook_id: str, nb: NotebookDoc, runtime_id: Callable[[], str | None]
    ) -> RoomHistoryLog:
        return RoomHistoryLog(self, notebook_id, nb, runtime_id)

    def add_execution(
        self,
        record: ExecutionRecord,
        notebook_id: str,
        runtime_id: str | None,
        source: str | None = None,
        outputs: list[dict[str, Any]] | None = None,
    ) -> None:
        """Queue a row for the record (``source`` when it starts, ``outputs`` at its end)."""
        final = record.status in FINAL_STATUSES
        ulid = self._ulids.get(record.execution_id) or new_ulid(record.queued_at)
        if final:
            self._ulids.pop(record.execution_id, None)
        else:
            self._ulids[record.execution_id] = ulid
        outputs_json = json.dumps(outputs, separators=(",", ":")) if outputs is not None else None
        success = None if record.success is None else int(record.success)
        self._executions.append(
            (
                ulid,
                record.execution_id,
                runtime_id,
                notebook_id,
                record.cell_id,
                source,
                record.status,
                record.execution_count,
                success,
                record.queued_at,
                record.started_at,
                record.ended_at,
                record.error,
                outputs_json,
            )
        )
        self._mark_dirty()

    def add_runtime(
        self,
        runtime_id: str,
        *,
        kernel_name: str | None = None,
        language: str | None = None,
        env_source: str | None = None,
        notebook_id: str | None = None,
        pid: int | None = None,
        kernel_info: dict[str, Any] | None = None,
        started_at: float | None = None,
        ended_at: float | None = None,
        exit_status: str | None = None,
    ) -> None:
        """A runtime started, is alive (a keepalive), or ended (``ended_at`` given)."""
        if not self.enabled:
            return
        info = json.dumps(kernel_info) if kernel_info is not None else None
        self._runtimes.append(
            (
                runtime_id,
                kernel_name,
                language,
                env_source,
                notebook_id,
                pid,
                info,
                started_at,
                ended_at,
                exit_status,
                time.time(),
            )
        )
        self._mark_dirty()

    def _mark_dirty(self) -> None:
        if not self._dirty.is_set():
            self._dirty.set()

    # --- the writer thread ---------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._dirty.wait()
            self._stop.wait(self.flush_interval)  # let a batch pile up
            self._dirty.clear()
            try:
                self.flush()
                self._maybe_prune()
            except Exception:  # history must never take the daemon down
                log.exception("writing execution history failed; retrying with the next batch")

    def flush(self) -> None:
        """Commit everything recorded so far (any thread; queries call it first)."""
        # One flush at a time: batches must commit in the order they were recorded.
        with self._flush_lock:
            self.store.write(_drain(self._executions), _drain(self._runtimes))

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < PRUNE_INTERVAL_SECS:
            return
        self._last_prune = now
        removed = self.store.prune(self.retention())
        if removed:
            log.info("history: pruned %d old executions", removed)

    # --- reading (off the loop) ----------------------------------------------------------

    def executions(
        self,
        notebook: str | None = None,
        runtime_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
        status: str | None = None,
    ) -> list[ExecutionEntry]:
        self.flush()
        return self.store.executions(notebook, runtime_id, limit, oldest_first, status)

    def execution(self, ident: str) -> ExecutionEntry | None:
        self.flush()
        return self.store.execution(ident)

    def close(self) -> None:
        """Write what is left and stop the writer."""
        self._stop.set()
        self._dirty.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        self.store.close()


def _drain(rows: deque[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    # popleft is atomic: rows appended on the loop meanwhile stay for the next batch.
    out = []
    while rows:
        out.append(rows.popleft())
    return out


class RoomHistoryLog(MemoryExecutionLog):
    """One room's ExecutionLog: recent records in memory (for ``get``), every record into
    the history. The source and outputs come from the document, read in the same loop
    turn as the record (so they are exactly what the cell ran and produced)."""

    def __init__(
        self,
        history: HistoryLog,
        notebook_id: str,
        nb: NotebookDoc,
        runtime_id: Callable[[], str | None],
    ) -> None:
        super().__init__(max_records=10_000)
        self.history = history
        self.notebook_id = notebook_id
        self.nb = nb
        self.runtime_id = runtime_id

    def record(self, record: ExecutionRecord) -> None:
        super().record(record)
        if not self.history.enabled:
            return
        source = outputs = None
        try:
            if record.status == "running":
                source = self.nb.get_source(record.cell_id)
            elif record.status in FINAL_STATUSES and record.started_at is not None:
                outputs = _outputs(self.nb, record.cell_id)
        except RuntimedError:  # the cell is gone from the document
            pass
        self.history.add_execution(record, self.notebook_id, self.runtime_id(), source, outputs)


def _outputs(nb: NotebookDoc, cell_id: str) -> list[dict[str, Any]] | None:
    """A cell's outputs as plain values: a third of the cost of ``get_cell`` (this runs on
    the loop for every execution). Yjs numbers are floats; the one nbformat needs as an
    integer is the execution count."""
    raw = nb.ycell(cell_id).get("outputs")
    if raw is None:
        return None
    outputs: list[dict[str, Any]] = raw.to_py()
    for output in outputs:
        count = output.get("execution_count")
        if isinstance(count, float):
            output["execution_count"] = int(count)
    return outputs
