"""What every bench shares with the tests: the daemon runner and percentiles (in
tests/helpers.py), plus verdicts."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# A bench measures the daemon it started: a client that polls it before it listens must
# not start another one (bench/autostart.py turns this back on for its own clients).
os.environ.setdefault("RUNTIMED_NO_AUTOSTART", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import DaemonProcess, percentile

__all__ = ["DaemonProcess", "bench_daemon", "percentile", "verdict", "wait_settled"]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def bench_daemon(cache_dir: Path, *args: str) -> DaemonProcess:
    """`runtimed run` on its own cache and config dirs; extra ``args`` as on the CLI."""
    return DaemonProcess(cache_dir, list(args))


def kernels_ready(d: DaemonProcess) -> int:
    with d.client() as c:
        kernels = c.status().kernels
    return kernels.available if kernels is not None else 0


def wait_settled(d: DaemonProcess, kernels: int, uv: int = 2, timeout: float = 300) -> None:
    """Until ``uv`` envs are ready with no build running and ``kernels`` pooled kernels
    wait: a refill (a kernel starting) would compete with what is measured for the CPU."""
    d.wait_pool("uv", uv, timeout=timeout, settled=True)
    deadline = time.monotonic() + timeout
    while kernels_ready(d) < kernels:
        if time.monotonic() > deadline:
            raise SystemExit("the kernel pool did not fill in time")
        time.sleep(0.05)
    time.sleep(0.5)  # let the refills' CPU settle before measuring
