"""HistoryStore: the SQLite schema of execution history, its writes and its queries.

One connection, used under a lock by the writer thread and by queries (both run off the
event loop). WAL mode with ``synchronous=NORMAL``: a committed batch survives the
daemon being killed (it is in the WAL, which the OS holds), and a torn write is rolled
back on the next open, so the file is never corrupt.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from runtimed.protocol.runtimes import ExecutionEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runtimes (
    id TEXT PRIMARY KEY,
    kernel_name TEXT,
    language TEXT,
    env_source TEXT,
    notebook_id TEXT,
    pid INTEGER,
    kernel_info TEXT,
    started_at REAL,
    ended_at REAL,
    exit_status TEXT,
    last_keepalive REAL
);
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL UNIQUE,
    runtime_id TEXT,
    notebook_id TEXT NOT NULL,
    cell_id TEXT NOT NULL,
    source TEXT,
    status TEXT NOT NULL,
    execution_count INTEGER,
    success INTEGER,
    queued_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    error TEXT,
    outputs TEXT
);
CREATE INDEX IF NOT EXISTS executions_notebook ON executions (notebook_id, id);
CREATE INDEX IF NOT EXISTS executions_runtime ON executions (runtime_id, id);
"""

# The first write of an execution fixes its ULID; later ones update what changed (a
# source or outputs given once are kept).
_UPSERT_EXECUTION = """
INSERT INTO executions (id, execution_id, runtime_id, notebook_id, cell_id, source, status,
    execution_count, success, queued_at, started_at, ended_at, error, outputs)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (execution_id) DO UPDATE SET
    runtime_id = coalesce(excluded.runtime_id, runtime_id),
    source = coalesce(excluded.source, source),
    status = excluded.status,
    execution_count = coalesce(excluded.execution_count, execution_count),
    success = excluded.success,
    started_at = coalesce(excluded.started_at, started_at),
    ended_at = excluded.ended_at,
    error = excluded.error,
    outputs = coalesce(excluded.outputs, outputs)
"""

_UPSERT_RUNTIME = """
INSERT INTO runtimes (id, kernel_name, language, env_source, notebook_id, pid, kernel_info,
    started_at, ended_at, exit_status, last_keepalive)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    kernel_name = coalesce(excluded.kernel_name, kernel_name),
    language = coalesce(excluded.language, language),
    env_source = coalesce(excluded.env_source, env_source),
    notebook_id = coalesce(excluded.notebook_id, notebook_id),
    pid = coalesce(excluded.pid, pid),
    kernel_info = coalesce(excluded.kernel_info, kernel_info),
    started_at = coalesce(started_at, excluded.started_at),
    ended_at = excluded.ended_at,
    exit_status = excluded.exit_status,
    last_keepalive = max(coalesce(last_keepalive, 0), coalesce(excluded.last_keepalive, 0))
"""

_ENTRY_COLUMNS = (
    "e.id, e.execution_id, e.notebook_id, e.cell_id, e.status, e.runtime_id, e.source, "
    "e.execution_count, e.success, e.queued_at, e.started_at, e.ended_at, e.error, "
    "r.kernel_name, r.language"
)


@dataclass(frozen=True)
class Retention:
    """What history keeps: executions younger than ``max_age_days``, at most
    ``max_executions`` of them (the newest). Runtimes go with their last execution."""

    max_age_days: float = 90.0
    max_executions: int = 200_000


ExecutionRow = tuple[Any, ...]  # the 14 columns of _UPSERT_EXECUTION, in order
RuntimeRow = tuple[Any, ...]  # the 11 columns of _UPSERT_RUNTIME, in order


class HistoryStore:
    """``history.sqlite``: runtimes and executions. Thread-safe (one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        path.chmod(0o600)

    def write(self, executions: Sequence[ExecutionRow], runtimes: Sequence[RuntimeRow]) -> None:
        """One batch in one transaction."""
        if not executions and not runtimes:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(_UPSERT_RUNTIME, runtimes)
                self._db.executemany(_UPSERT_EXECUTION, executions)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def executions(
        self,
        notebook: str | None = None,
        runtime_id: str | None = None,
        limit: int = 50,
        oldest_first: bool = False,
        status: str | None = None,
    ) -> list[ExecutionEntry]:
        """Executions, newest first (or oldest first), filtered by notebook id, runtime or
        status."""
        where, params = [], []
        for column, value in (
            ("notebook_id", notebook),
            ("runtime_id", runtime_id),
            ("status", status),
        ):
            if value is not None:
                where.append(f"e.{column} = ?")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        order = "ASC" if oldest_first else "DESC"
        sql = (
            f"SELECT {_ENTRY_COLUMNS} FROM executions e LEFT JOIN runtimes r "
            f"ON r.id = e.runtime_id {clause} ORDER BY e.id {order} LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (*params, max(limit, 0))).fetchall()
        return [_entry(row) for row in rows]

    def execution(self, ident: str) -> ExecutionEntry | None:
        """One execution with its outputs, by ULID or execution id."""
        sql = (
            f"SELECT {_ENTRY_COLUMNS}, e.outputs, r.kernel_info FROM executions e "
            "LEFT JOIN runtimes r ON r.id = e.runtime_id WHERE e.id = ? OR e.execution_id = ?"
        )
        with self._lock:
            row = self._db.execute(sql, (ident, ident)).fetchone()
        if row is None:
            return None
        outputs = json.loads(row[-2]) if row[-2] else None
        kernel_info = json.loads(row[-1]) if row[-1] else {}
        entry = _entry(row[:-2], outputs)
        language_info = kernel_info.get("language_info")
        if isinstance(language_info, dict):
            entry = msgspec.structs.replace(entry, language_info=language_info)
        return entry

    def runtime(self, runtime_id: str) -> dict[str, Any] | None:
        """A runtime's row (kernel info decoded), or None."""
        with self._lock:
            cursor = self._db.execute("SELECT * FROM runtimes WHERE id = ?", (runtime_id,))
            row = cursor.fetchone()
            names = [c[0] for c in cursor.description]
        if row is None:
            return None
        record = dict(zip(names, row, strict=True))
        record["kernel_info"] = json.loads(record["kernel_info"] or "{}")
        return record

    def prune(self, retention: Retention, now: float | None = None) -> int:
        """Apply the retention; returns how many executions went."""
        cutoff = (now or time.time()) - retention.max_age_days * 86400
        with self._lock:
            self._db.execute("BEGIN")
            removed = self._db.execute(
                "DELETE FROM executions WHERE queued_at < ?", (cutoff,)
            ).rowcount
            removed += self._db.execute(
                "DELETE FROM executions WHERE id IN (SELECT id FROM executions "
                "ORDER BY id DESC LIMIT -1 OFFSET ?)",
                (max(retention.max_executions, 0),),
            ).rowcount
            self._db.execute(
                "DELETE FROM runtimes WHERE ended_at IS NOT NULL AND ended_at < ? AND id NOT "
                "IN (SELECT DISTINCT runtime_id FROM executions WHERE runtime_id IS NOT NULL)",
                (cutoff,),
            )
            self._db.execute("COMMIT")
        return int(removed)

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM executions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _entry(row: Iterable[Any], outputs: list[dict[str, Any]] | None = None) -> ExecutionEntry:
    (ident, execution_id, notebook_id, cell_id, status, runtime_id, source) = tuple(row)[:7]
    count, success, queued, started, ended, error, kernel_name, language = tuple(row)[7:]
    return ExecutionEntry(
        id=ident,
        execution_id=execution_id,
        notebook_id=notebook_id,
        cell_id=cell_id,
        status=status,
        runtime_id=runtime_id,
        source=source,
        execution_count=count,
        success=None if success is None else bool(success),
        queued_at=queued,
        started_at=started,
        ended_at=ended,
        error=error,
        outputs=outputs,
        kernel_name=kernel_name,
        language=language,
    )
