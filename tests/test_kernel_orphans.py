"""Nothing a kernel starts outlives it (issue 11, item 6): processes a cell starts in a
session of their own, and their abandoned children, die with the kernel's shutdown, a
restart, the room's eviction, a daemon stop and a kill -9 of the daemon. Real daemon,
real kernels; the guard is a subreaper (see daemon/guard.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.client.settings_client import SettingsClient

pytestmark = pytest.mark.daemon

# Two escapes: a `sleep` in a session of its own, and a `sleep` whose parent shell exits at
# once (an orphan, re-parented away from the kernel).
SPAWN = """\
import subprocess
own = subprocess.Popen(["sleep", "300"], start_new_session=True)
shell = subprocess.run(
    ["bash", "-c", "setsid sleep 300 > /dev/null 2>&1 & echo $!"],
    capture_output=True, text=True, start_new_session=True,
)
print(own.pid, shell.stdout.strip())
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def spawn_escapees(s: runtimed.Session) -> list[int]:
    result = s.run(SPAWN)
    assert result.success, result.error
    pids = [int(p) for p in result.stdout.split()]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    return pids


def assert_all_gone(pids: list[int], after: str) -> None:
    wait_until(lambda: not any(alive(p) for p in pids), 15, what=f"kernel children gone {after}")


def new_daemon(base: Path) -> DaemonProcess:
    d = DaemonProcess(base / "cache", ["--uv-pool-size", "1"])
    d.start()
    d.wait_pool("uv", 1)
    return d


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = new_daemon(tmp_path_factory.mktemp("orphans"))
    yield d
    d.stop()


def test_shutdown_and_restart_take_the_kernels_children(shared: DaemonProcess) -> None:
    with runtimed.Session(socket_path=shared.socket_path) as s:
        pids = spawn_escapees(s)
        s.restart_kernel()
        assert_all_gone(pids, "after a restart")
        pids = spawn_escapees(s)
        s.shutdown_kernel()
        assert_all_gone(pids, "after shutdown_kernel")


def test_a_kernel_crash_takes_its_children(shared: DaemonProcess) -> None:
    with runtimed.Session(socket_path=shared.socket_path) as s:
        pids = spawn_escapees(s)
        s.run("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        assert_all_gone(pids, "after the kernel was killed")
        wait_until(lambda: s.kernel.get("lifecycle") == "dead", 15, what="the kernel to be dead")
        assert "SIGKILL" in str(s.kernel.get("error"))  # the guard died the kernel's death


def test_eviction_takes_the_kernels_children(shared: DaemonProcess) -> None:
    with SettingsClient(shared.socket_path) as settings:
        settings.set("keep_alive_secs", 0.3)
    try:
        s = runtimed.Session(socket_path=shared.socket_path)
        pids = spawn_escapees(s)
        s.close()
        assert_all_gone(pids, "after the room was evicted")
    finally:
        with SettingsClient(shared.socket_path) as settings:
            settings.set("keep_alive_secs", 30)


@pytest.mark.parametrize("how", ["stop", "kill -9"])
def test_the_daemons_end_takes_every_kernels_children(tmp_path: Path, how: str) -> None:
    d = new_daemon(tmp_path)
    try:
        with runtimed.Session(socket_path=d.socket_path) as s:
            pids = spawn_escapees(s)
            guards = [p.pid for p in d.process.children()  # not a pool's env build
                      if any(part.endswith("guard.py") for part in p.cmdline())]  # fmt: skip
            if how == "stop":
                d.stop()
            else:
                d.kill9()
        assert_all_gone(pids + guards, f"after daemon {how}")
    finally:
        d.stop()
