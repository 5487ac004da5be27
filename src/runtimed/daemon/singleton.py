"""One daemon per cache dir: an flock on daemon.lock, held for the daemon's lifetime.

The kernel drops the lock when the process dies, even by SIGKILL, so a crashed daemon
never blocks the next one; the stale socket and daemon.json are simply replaced.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtimed.errors import RuntimedError
from runtimed.files import atomic_write


class AlreadyRunningError(RuntimedError):
    def __init__(self, pid: int | None, lock_file: Path) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"runtimed is already running ({who}) for {lock_file.parent}; "
            "stop it with `runtimed stop` or use another --cache-dir",
            code="already_running",
        )
        self.pid = pid


@dataclass
class DaemonLock:
    """An exclusive, non-blocking flock on ``lock_file``; the lock file records our pid."""

    lock_file: Path
    _fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise AlreadyRunningError(pid, self.lock_file) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _read_pid(fd: int) -> int | None:
    # The holder may not have written its pid yet; give it a moment.
    for _ in range(20):
        raw = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if raw.isdigit():
            return int(raw)
        time.sleep(0.01)
    return None


def write_daemon_info(path: Path, info: dict[str, Any]) -> None:
    """daemon.json is informational (clients ask the socket); written atomically, 0600."""
    atomic_write(path, json.dumps(info, indent=2).encode(), sync=False)


def read_daemon_info(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
