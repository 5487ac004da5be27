"""Shared fixtures: real daemons in temp dirs, never touching ~/.cache or ~/.ipython."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtimed.client import DaemonClient
from runtimed.errors import RuntimedError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One uv cache for the session (first build online, the rest offline) and no
    writes to the user's cache, config or IPython dirs."""
    base = tmp_path_factory.mktemp("session-env")
    saved = dict(os.environ)
    os.environ["UV_CACHE_DIR"] = os.environ.get("RUNTIMED_TEST_UV_CACHE", str(base / "uv-cache"))
    os.environ["UV_PYTHON_DOWNLOADS"] = "never"
    os.environ["RUNTIMED_CACHE_DIR"] = str(base / "default-cache-unused")
    os.environ["RUNTIMED_CONFIG_DIR"] = str(base / "config")
    os.environ["IPYTHONDIR"] = str(base / "ipython")
    os.environ.pop("RUNTIMED_SOCKET_PATH", None)
    yield
    os.environ.clear()
    os.environ.update(saved)


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
        conda = (
            []
            if any(a.startswith("--conda-pool-size") for a in self.args)
            else ["--conda-pool-size", "0"]
        )
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

    def start(self, wait: bool = True) -> DaemonProcess:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command(), stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        def pings() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"daemon exited early:\n{self.log_path.read_text()}")
            with DaemonClient(self.socket_path, timeout=5) as client:
                client.ping()
            return True

        wait_until(pings, timeout, what="daemon to answer ping")

    def client(self) -> DaemonClient:
        return DaemonClient(self.socket_path)

    def wait_pool(self, env_type: str = "uv", available: int = 1, timeout: float = 180) -> None:
        def ready() -> bool:
            with self.client() as c:
                return c.status().pools[env_type].available >= available

        wait_until(ready, timeout, interval=0.1, what=f"{available} ready {env_type} env(s)")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            with self.client() as c:
                c.shutdown()
        except (RuntimedError, OSError):
            self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    """Start daemons: ``daemon_factory("--uv-pool-size", "1", cache_dir=...)``."""
    started: list[DaemonProcess] = []

    def make(*args: str, cache_dir: Path | None = None, wait: bool = True) -> DaemonProcess:
        d = DaemonProcess(cache_dir or tmp_path / "cache", list(args))
        started.append(d)
        return d.start(wait=wait)

    yield make
    for d in started:
        d.stop()


@pytest.fixture
def daemon(daemon_factory: Callable[..., DaemonProcess]) -> DaemonProcess:
    """A running daemon with a uv pool of 1 (most tests need no more)."""
    return daemon_factory("--uv-pool-size", "1")
