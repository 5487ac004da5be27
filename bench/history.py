"""Execution history figures (issue 12).

    python bench/history.py            # full run
    python bench/history.py --smoke    # quick run for CI

1. Overhead of recording: `run("1+1")` p50 on a daemon with history on vs one with
   RUNTIMED_HISTORY=0, side by side, taking turns in blocks of 10. Target: ratio < 1.05x.
2. Write throughput of the history (HistoryLog + SQLite, in process): executions per
   second sustained (three records each: queued, running, done) and the event-loop cost
   of one record.
3. Size on disk per 10,000 executions (after a WAL checkpoint).
4. `runt ps` as a whole command (process start to exit) against a daemon with runtimes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import runtimed
from harness import DaemonProcess, bench_daemon, percentile, verdict
from runtimed.daemon.history import HistoryLog, HistoryStore
from runtimed.documents.notebook import NotebookDoc
from runtimed.protocol.room import ExecutionRecord


def start_daemon(cache: Path, history: bool) -> DaemonProcess:
    saved = os.environ.get("RUNTIMED_HISTORY")
    os.environ["RUNTIMED_HISTORY"] = "1" if history else "0"
    try:
        return bench_daemon(cache, "--uv-pool-size", "1").start()
    finally:
        if saved is None:
            os.environ.pop("RUNTIMED_HISTORY", None)
        else:
            os.environ["RUNTIMED_HISTORY"] = saved


def overhead(on: DaemonProcess, off: DaemonProcess, runs: int) -> float:
    sessions = {
        "on": runtimed.Session("bench", socket_path=on.socket_path).connect(),
        "off": runtimed.Session("bench", socket_path=off.socket_path).connect(),
    }
    times: dict[str, list[float]] = {"on": [], "off": []}
    for s in sessions.values():
        for _ in range(10):  # warm up: kernel start, first imports
            s.run("1+1")
    for _ in range(runs // 10):
        for name, s in sessions.items():
            for _ in range(10):
                started = time.perf_counter()
                s.run("1+1")
                times[name].append(time.perf_counter() - started)
    for s in sessions.values():
        s.close()
    p50 = {name: percentile(t, 50) * 1000 for name, t in times.items()}
    p99 = {name: percentile(t, 99) * 1000 for name, t in times.items()}
    ratio = p50["on"] / p50["off"]
    print(
        f"run('1+1') p50: history on {p50['on']:.2f} ms, off {p50['off']:.2f} ms "
        f"(p99 {p99['on']:.2f} / {p99['off']:.2f}); ratio {ratio:.3f}x "
        f"(target < 1.05x: {verdict(ratio < 1.05)})"
    )
    with on.client() as client:
        recorded = len(client.executions(notebook="bench", limit=10_000))
    print(f"  executions recorded by the daemon with history on: {recorded}")
    return ratio


def throughput(work: Path, executions: int) -> None:
    db = work / "history.sqlite"
    history = HistoryLog(HistoryStore(db))
    history.start()
    nb = NotebookDoc()
    cell = nb.insert_cell(None, "total = sum(range(100))\nprint(total)")
    nb.ycell(cell)["outputs"].append({"output_type": "stream", "name": "stdout", "text": "4950\n"})
    log = history.for_room("bench", nb, lambda: "rt000001")
    loop_secs = 0.0
    started = time.perf_counter()
    for n in range(executions):
        now = time.time()
        t0 = time.perf_counter()
        log.record(ExecutionRecord(f"exec-{n}", cell, queued_at=now))
        log.record(ExecutionRecord(f"exec-{n}", cell, "running", queued_at=now, started_at=now))
        log.record(ExecutionRecord(f"exec-{n}", cell, "done", n + 1, True, now, now, now))
        loop_secs += time.perf_counter() - t0
    history.flush()
    elapsed = time.perf_counter() - started
    per_record_us = loop_secs / (3 * executions) * 1e6
    print(
        f"history writes: {executions / elapsed:,.0f} executions/s sustained "
        f"({executions} executions, 3 records each, in {elapsed:.2f} s); "
        f"{per_record_us:.1f} us of event-loop time per record"
    )
    history.close()
    store = HistoryStore(db)  # a fresh open checkpoints nothing; do it explicitly
    store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = sum(p.stat().st_size for p in work.glob("history.sqlite*"))
    count = store.count()
    store.close()
    print(f"size on disk: {size / count * 10_000 / 2**20:.2f} MB per 10,000 executions")


def ps_time(d: DaemonProcess, runs: int) -> None:
    with d.client() as client:
        for _ in range(2):
            client.start_runtime("python3")
    runt = str(Path(sys.executable).parent / "runt")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([runt, "ps", "--socket", str(d.socket_path)], check=True,
                       capture_output=True)  # fmt: skip
        times.append(time.perf_counter() - started)
    print(
        f"`runt ps` (2 runtimes), whole command: p50 {percentile(times, 50) * 1000:.0f} ms, "
        f"min {min(times) * 1000:.0f} ms over {runs} runs"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="few iterations (CI)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        work = Path(tmp)
        throughput(work, 2_000 if args.smoke else 10_000)
        if not args.smoke:
            ps = bench_daemon(work / "ps", "--uv-pool-size", "2").start()
            try:
                ps.wait_pool("uv", 2, timeout=300)
                ps_time(ps, 10)
            finally:
                ps.stop()
        on, off = start_daemon(work / "on", True), start_daemon(work / "off", False)
        try:
            for d in (on, off):  # both build their env at once
                d.wait_pool("uv", 1, timeout=300)
            if args.smoke:  # `runt ps` against the daemon with history on: one fewer to start
                ps_time(on, 3)
            overhead(on, off, 40 if args.smoke else 400)
        finally:
            on.stop()
            off.stop()


if __name__ == "__main__":
    main()
