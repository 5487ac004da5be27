"""Soak: N clients edit and run one shared notebook while the daemon is killed (issue 11).

    python bench/soak.py            # 4 clients x 40 executions
    python bench/soak.py --smoke    # 2 clients x 8 executions, for CI

Every client appends cells (``print("<client>-<i>")``) and runs them, one after another.
Half-way through, while runs are in flight, the daemon gets SIGKILL and a new one starts
on the same cache dir. The clients keep going: edits made while it is down are
local-first and reach the new daemon on reconnect; a run that fails for the outage is
retried. At the end a fresh client reads the notebook and counts:

- lost edits: cells a client created that the notebook does not have;
- duplicated edits: cells that appear more than once;
- lost outputs: cells whose run succeeded for its client but that show no output;
- duplicated outputs: a cell showing its print more than once;

and prints the daemons' peak RSS and the p50 / p99 latency of the runs.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
from pathlib import Path

import psutil

import runtimed
from harness import DaemonProcess, bench_daemon, percentile, verdict
from runtimed.errors import RuntimedError

NOTEBOOK = "soak"
RETRY_FOR_SECS = 60.0


class Client(threading.Thread):
    def __init__(self, name: str, runs: int, socket: Path) -> None:
        super().__init__(name=name)
        self.runs, self.socket = runs, socket
        self.created: list[str] = []
        self.succeeded: set[str] = set()
        self.latencies: list[float] = []
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with runtimed.Session(NOTEBOOK, socket_path=self.socket) as s:
                for i in range(self.runs):
                    cell = s.create_cell(f'print("{self.name}-{i}")')
                    self.created.append(cell)
                    self._run(s, cell)
                s.sync(timeout=RETRY_FOR_SECS)
        except BaseException as exc:  # reported by main
            self.error = exc

    def _run(self, s: runtimed.Session, cell: str) -> None:
        deadline = time.monotonic() + RETRY_FOR_SECS
        while True:
            started = time.perf_counter()
            try:
                result = s.execute_cell(cell, timeout=30)
            except RuntimedError:
                if time.monotonic() > deadline:
                    raise
                self.retries += 1
                time.sleep(0.2)
                continue
            if result.success:
                self.latencies.append(time.perf_counter() - started)
                self.succeeded.add(cell)
                return
            if time.monotonic() > deadline:
                raise RuntimedError(f"{cell} kept failing: {result.error}")
            self.retries += 1  # e.g. the kernel died with the daemon
            time.sleep(0.2)


class PeakRss(threading.Thread):
    """Polls the current daemon's RSS (the daemon object changes at the restart)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.daemon_process: DaemonProcess | None = None
        self.peak = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            d = self.daemon_process
            try:
                if d is not None and d.proc is not None and d.proc.poll() is None:
                    self.peak = max(self.peak, d.process.memory_info().rss)
            except psutil.Error:
                pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="2 clients x 8 executions")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    clients = args.clients or (2 if args.smoke else 4)
    runs = args.runs or (8 if args.smoke else 40)

    with tempfile.TemporaryDirectory(prefix="runtimed-bench-soak-") as tmp:
        cache = Path(tmp) / "cache"
        pool = ("--uv-pool-size", "2")
        d = bench_daemon(cache, *pool).start()
        d.wait_pool("uv", 1)
        rss = PeakRss()
        rss.daemon_process = d
        rss.start()
        killed = threading.Event()

        def kill_and_restart() -> None:
            nonlocal d
            d.kill9()
            killed.set()
            d = bench_daemon(cache, *pool).start()
            rss.daemon_process = d

        workers = [Client(f"c{n}", runs, d.socket_path) for n in range(clients)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        # Killed while runs and edits are in flight, not between them.
        while sum(len(w.latencies) for w in workers) < clients * runs // 2:
            if not any(w.is_alive() for w in workers):
                break
            time.sleep(0.005)
        kill_and_restart()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
        try:
            errors = [w.error for w in workers if w.error is not None]
            if errors:
                raise SystemExit(f"a client failed: {errors[0]!r}")
            with runtimed.Session(NOTEBOOK, socket_path=d.socket_path) as reader:
                cells = {c.id: c for c in reader.get_cells()}
                order = [c.id for c in reader.get_cells()]
        finally:
            rss.stopped.set()
            d.stop()

    created = [c for w in workers for c in w.created]
    succeeded = set().union(*(w.succeeded for w in workers))
    lost_edits = [c for c in created if c not in cells]
    duplicated_edits = sum(n - 1 for n in collections.Counter(order).values() if n > 1)
    lost_outputs = [c for c in succeeded if c in cells and not cells[c].outputs]
    duplicated_outputs = 0
    for cell_id in succeeded & set(cells):
        texts = "".join(o.text or "" for o in cells[cell_id].outputs)
        expected = cells[cell_id].source.split('"')[1]
        duplicated_outputs += max(texts.count(expected) - 1, 0)
    latencies = [x for w in workers for x in w.latencies]
    retries = sum(w.retries for w in workers)

    print(
        f"{clients} clients x {runs} executions on one notebook, daemon killed with SIGKILL "
        f"half-way ({'yes' if killed.is_set() else 'NO'}) and restarted; {elapsed:.1f} s"
    )
    print(f"  cells created: {len(created)}, in the notebook: {len(cells)}")
    print(f"  lost edits: {len(lost_edits)}  duplicated edits: {duplicated_edits}  "
          f"{verdict(not lost_edits and not duplicated_edits)}")  # fmt: skip
    print(f"  lost outputs: {len(lost_outputs)}  duplicated outputs: {duplicated_outputs}  "
          f"{verdict(not lost_outputs and not duplicated_outputs)}")  # fmt: skip
    print(f"  runs retried after the outage: {retries}")
    print(f"  run latency p50 {percentile(latencies, 50) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.1f} ms (outage retries excluded)")  # fmt: skip
    print(f"  daemon peak RSS: {rss.peak / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
