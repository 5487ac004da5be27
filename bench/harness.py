"""What every bench shares with the tests: the daemon runner and percentiles (in
tests/helpers.py), plus verdicts."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# A bench measures the daemon it started: a client that polls it before it listens must
# not start another one (bench/autostart.py turns this back on for its own clients).
os.environ.setdefault("RUNTIMED_NO_AUTOSTART", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from helpers import DaemonProcess, percentile

__all__ = ["DaemonProcess", "bench_daemon", "percentile", "verdict"]


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def bench_daemon(cache_dir: Path, *args: str) -> DaemonProcess:
    """`runtimed run` on its own cache and config dirs; extra ``args`` as on the CLI."""
    return DaemonProcess(cache_dir, list(args))
