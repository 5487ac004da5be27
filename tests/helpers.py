"""What tests and benches share: polling with a deadline, and a real `runtimed run`
subprocess on its own cache, config and socket (never ~/.cache)."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from runtimed.client import DaemonClient
from runtimed.errors import RuntimedError

ROOT = Path(__file__).resolve().parent.parent


#: Called before a real daemon starts; the test suite sets it to check the test's tier
#: (``pytest -m "not daemon"`` must start none). Benches leave it alone.
def before_real_process(what: str) -> None:
    """Replaced by the test suite (conftest.py)."""


class DaemonExitedError(AssertionError):
    """The daemon under test exited while we waited for it."""


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 60.0,
    interval: float = 0.05,
    what: str = "condition",
) -> object:
    """Poll ``predicate`` until truthy or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except DaemonExitedError:
            raise
        except Exception as exc:  # keep polling, report the last one
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last error: {last_exc}")


@dataclass
class DaemonProcess:
    """A real `runtimed run` subprocess on its own cache dir and socket."""

    cache_dir: Path
    args: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.cache_dir / "runtimed.sock"

    @property
    def log_path(self) -> Path:
        return self.cache_dir / "daemon-stderr.log"

    def command(self) -> list[str]:
        # The conda pool defaults to 3 envs from conda-forge, which is unreachable here: tests
        # that want conda pass --conda-pool-size (and a local --conda-channel) themselves.
        # No kernel pool unless a test asks: it takes envs from the uv pool, which many
        # tests count.
        conda = (
            []
            if any(a.startswith("--conda-pool-size") for a in self.args)
            else ["--conda-pool-size", "0"]
        )
        if not any(a.startswith("--kernel-pool-size") for a in self.args):
            conda += ["--kernel-pool-size", "0"]
        return [
            sys.executable,
            "-m",
            "runtimed",
            "run",
            "--cache-dir",
            str(self.cache_dir),
            "--config-dir",
            str(self.cache_dir / "config"),
            *conda,
            *self.args,
        ]

    #: Seconds from spawning the daemon to its first pong (set by ``start``).
    start_secs: float = 0.0

    def start(self, wait: bool = True) -> DaemonProcess:
        before_real_process("a daemon")
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        if wait:
            self.wait_ready()
            self.start_secs = time.perf_counter() - started
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        def pings() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise DaemonExitedError(f"daemon exited early:\n{self.log_path.read_text()}")
            with DaemonClient(self.socket_path, timeout=5, autostart=False) as client:
                client.ping()
            return True

        wait_until(pings, timeout, interval=0.001, what="daemon to answer ping")

    @property
    def socket(self) -> Path:
        return self.socket_path

    @property
    def process(self) -> psutil.Process:
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def client(self) -> DaemonClient:
        return DaemonClient(self.socket_path, autostart=False)

    def wait_pool(
        self, env_type: str = "uv", available: int = 1, timeout: float = 180, settled: bool = False
    ) -> None:
        """Until ``available`` envs are ready (``settled``: and no build is running)."""

        def ready() -> bool:
            with self.client() as c:
                pool = c.status().pools[env_type]
            return pool.available >= available and (not settled or pool.warming == 0)

        wait_until(ready, timeout, interval=0.05, what=f"{available} ready {env_type} env(s)")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    #: Seconds from the `shutdown` request to the daemon's exit before ``stop`` fails.
    stop_bound_secs: float = 20.0

    def stop(self) -> None:
        """Shut the daemon down; fail (AssertionError) unless it exits within
        ``stop_bound_secs`` and leaves what a clean exit leaves: no socket, no daemon.json,
        and daemon.lock without a pid (the file itself stays: docs/architecture.md)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with self.client() as c:
                c.shutdown()
        except (RuntimedError, OSError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=self.stop_bound_secs)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            raise AssertionError(
                f"the daemon (pid {self.proc.pid}) did not exit within "
                f"{self.stop_bound_secs:g} s of shutdown and was killed; "
                f"left behind: {', '.join(self.leftovers()) or 'nothing'}; "
                f"its log ends:\n{self.log_tail()}"
            ) from None
        leftovers = self.leftovers()
        if leftovers:
            raise AssertionError(
                f"the daemon exited ({self.proc.returncode}) but left behind "
                f"{', '.join(leftovers)}; its log ends:\n{self.log_tail()}"
            )

    def leftovers(self) -> list[str]:
        """What an exited daemon should have removed but did not."""
        left = [p.name for p in (self.socket_path, self.cache_dir / "daemon.json") if p.exists()]
        lock = self.cache_dir / "daemon.lock"
        if lock.exists() and lock.read_text().strip():
            left.append(f"daemon.lock naming pid {lock.read_text().strip()}")
        return left

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# --- in-process pieces ------------------------------------------------------------------

_msg_ids = itertools.count()


def iopub_message(msg_type: str, content: dict[str, Any], parent: str = "exec-1") -> dict[str, Any]:
    """A message dict shaped like jupyter_client's ``Session.deserialize`` output."""
    msg_id = f"m-{next(_msg_ids)}"
    header = {
        "msg_id": msg_id,
        "msg_type": msg_type,
        "session": "s",
        "username": "u",
        "version": "5.3",
        "date": "2025-01-01T00:00:00Z",
    }
    return {
        "header": header,
        "msg_id": msg_id,
        "msg_type": msg_type,
        "parent_header": {"msg_id": parent, "msg_type": "execute_request"},
        "metadata": {},
        "content": content,
        "buffers": [],
    }


class MemoryConnection:
    """A FrameConnection in memory: what the daemon sends lands in ``sent``; ``feed`` is
    what the peer sends. Rooms and channels run against it with no socket at all."""

    def __init__(self, max_frame: int = 64 * 2**20) -> None:
        self.max_frame = max_frame
        self.sent: list[bytes] = []
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._closed = False

    def set_max_frame(self, max_frame: int) -> None:
        self.max_frame = max_frame

    def feed(self, frame: bytes | None) -> None:
        self._incoming.put_nowait(frame)

    async def read_frame(self) -> bytes | None:
        return await self._incoming.get()

    def send(self, payload: bytes) -> None:
        if not self._closed:
            self.sent.append(payload)

    async def write_frame(self, payload: bytes) -> None:
        self.send(payload)

    def flush(self) -> None:
        pass

    async def drain(self) -> None:
        pass

    @property
    def buffered(self) -> int:
        """What the peer has not read yet (tests read by clearing ``sent``)."""
        return sum(len(frame) for frame in self.sent)

    @property
    def closing(self) -> bool:
        return self._closed

    def abort(self) -> None:
        self._closed = True

    async def close(self) -> None:
        self._closed = True


def write_notebook(path: Path, *sources: str) -> None:
    """An .ipynb file with one code cell per source."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def notebook_sources(path: Path) -> list[str]:
    """The cell sources of an .ipynb file."""
    import nbformat

    return [cell.source for cell in nbformat.read(path, as_version=4).cells]
