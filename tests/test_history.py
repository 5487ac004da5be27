"""Execution history in SQLite: rows from the ExecutionLog seam, queries, retention, and a
kill -9 that loses at most the last batch and never corrupts the file."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtimed.daemon.history import HistoryLog, HistoryStore, Retention, ulid
from runtimed.daemon.history.ulid import new_ulid, ulid_time
from runtimed.documents.notebook import NotebookDoc
from runtimed.protocol.room import ExecutionRecord


def test_ulids_sort_by_time_and_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    # ULIDs are monotonic within a process: one made earlier in this process (another
    # test's) would be later than these times.
    monkeypatch.setattr(ulid, "_last", 0)
    a, b = new_ulid(1000.0), new_ulid(1000.5)
    assert len(a) == 26 and a < b
    assert abs(ulid_time(b) - 1000.5) < 0.002


def _run(room_log, cell: str, number: int, success: bool = True) -> ExecutionRecord:  # type: ignore[no-untyped-def]
    queued = ExecutionRecord(f"exec-{number}", cell, queued_at=time.time())
    room_log.record(queued)
    running = ExecutionRecord(f"exec-{number}", cell, "running", queued_at=queued.queued_at,
                              started_at=time.time())  # fmt: skip
    room_log.record(running)
    done = ExecutionRecord(
        f"exec-{number}", cell, "done" if success else "error", number, success,
        queued.queued_at, running.started_at, time.time(),
    )  # fmt: skip
    room_log.record(done)
    return done


def test_records_become_rows_with_source_and_outputs(tmp_path: Path) -> None:
    history = HistoryLog(HistoryStore(tmp_path / "history.sqlite"))
    nb = NotebookDoc()
    cell = nb.insert_cell(None, "1 + 1")
    room_log = history.for_room("nb-1", nb, lambda: "rt01")
    first = _run(room_log, cell, 1)
    nb.ycell(cell)["outputs"].append({"output_type": "stream", "name": "stdout", "text": "x"})
    nb.set_source(cell, "print('x')")
    _run(room_log, cell, 2)
    assert room_log.get(first.execution_id) == first  # recent records answer from memory
    entries = history.executions(notebook="nb-1")  # flushes first: reads its own writes
    assert [e.execution_id for e in entries] == ["exec-2", "exec-1"]
    assert [e.source for e in entries] == ["print('x')", "1 + 1"]
    assert entries[0].runtime_id == "rt01" and entries[0].success
    full = history.execution(entries[0].id)
    assert full is not None and full.outputs == [
        {"output_type": "stream", "name": "stdout", "text": "x"}
    ]
    assert history.execution("exec-1") is not None  # by execution id too
    assert history.executions(runtime_id="other") == []
    assert [e.execution_id for e in history.executions(limit=1, oldest_first=True)] == ["exec-1"]
    history.close()


def test_runtimes_are_recorded_and_retention_prunes(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history.sqlite")
    history = HistoryLog(store, retention=lambda: Retention(max_age_days=1, max_executions=3))
    history.add_runtime("rt01", kernel_name="python3", pid=42, started_at=1.0,
                        kernel_info={"language_info": {"name": "python"}})  # fmt: skip
    history.add_runtime("rt01", ended_at=2.0, exit_status="stopped")
    nb = NotebookDoc()
    cell = nb.insert_cell(None, "x")
    room_log = history.for_room("nb", nb, lambda: "rt01")
    for n in range(5):
        _run(room_log, cell, n)
    history.flush()
    runtime = store.runtime("rt01")
    assert runtime is not None and runtime["pid"] == 42 and runtime["exit_status"] == "stopped"
    assert runtime["kernel_info"]["language_info"]["name"] == "python"
    assert store.prune(Retention(max_age_days=1, max_executions=3)) == 2
    assert [e.execution_id for e in store.executions()] == ["exec-4", "exec-3", "exec-2"]
    assert store.prune(Retention(max_age_days=1), now=time.time() + 2 * 86400) == 3
    assert store.count() == 0
    history.close()


_WRITER = """
import sys, time
from runtimed.daemon.history import HistoryLog, HistoryStore
from runtimed.documents.notebook import NotebookDoc
from runtimed.protocol.room import ExecutionRecord
history = HistoryLog(HistoryStore(__import__("pathlib").Path(sys.argv[1])), flush_interval=0.05)
history.start()
nb = NotebookDoc()
cell = nb.insert_cell(None, "x" * 2000)
log = history.for_room("nb", nb, lambda: "rt")
n = 0
while True:
    for _ in range(50):
        n += 1
        log.record(ExecutionRecord(f"exec-{n}", cell, "running", queued_at=time.time(),
                                   started_at=time.time()))
    history.flush()
    print(n, flush=True)
"""


def test_kill_9_loses_at_most_the_last_batch_and_never_corrupts(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    committed = 0
    while committed < 500:
        committed = int(proc.stdout.readline())
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("SELECT count(*) FROM executions").fetchone()[0] >= committed
    store = HistoryStore(db)  # reopens (and recovers the WAL) without complaint
    assert store.count() >= committed
    store.close()
