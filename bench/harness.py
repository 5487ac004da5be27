"""What every bench shares: percentiles, verdicts, and a real daemon in a temp dir."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from runtimed.client import DaemonClient
from runtimed.errors import RuntimedError


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


class BenchDaemon:
    """`runtimed run` on its own cache and config dirs; extra ``args`` as on the CLI."""

    def __init__(self, cache_dir: Path, *args: str) -> None:
        self.cache_dir = cache_dir
        self.socket = cache_dir / "runtimed.sock"
        self.argv = [
            sys.executable,
            "-m",
            "runtimed",
            "run",
            "--cache-dir",
            str(cache_dir),
            "--config-dir",
            str(cache_dir / "config"),
            *args,
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> float:
        """Spawn the daemon; seconds until its first pong."""
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )
        while time.perf_counter() < started + timeout:
            try:
                with DaemonClient(self.socket, timeout=5) as client:
                    client.ping()
                return time.perf_counter() - started
            except (RuntimedError, OSError):
                if self.proc.poll() is not None:
                    raise SystemExit(f"daemon exited early ({self.proc.returncode})") from None
                time.sleep(0.001)
        raise SystemExit(f"daemon did not answer ping within {timeout} s")

    def wait_pool(self, env_type: str = "uv", available: int = 1, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        with DaemonClient(self.socket) as client:
            while time.monotonic() < deadline:
                pool = client.status().pools[env_type]
                if pool.available >= available and pool.warming == 0:
                    return
                time.sleep(0.05)
        raise SystemExit(f"the {env_type} pool did not fill in time")

    @property
    def process(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with DaemonClient(self.socket, timeout=10) as client:
                client.shutdown()
            self.proc.wait(timeout=30)
        except (RuntimedError, OSError, subprocess.TimeoutExpired):
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
