"""One daemon per cache dir: the flock, stale recovery after SIGKILL, file modes."""

from __future__ import annotations

import json
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import DaemonProcess, wait_until

pytestmark = pytest.mark.daemon

# No env builds are needed here: keep both pools empty so the daemons start in a blink.
NO_POOLS = ("--uv-pool-size", "0", "--conda-pool-size", "0")


def test_second_daemon_exits_naming_the_running_pid(
    daemon_factory: Callable[..., DaemonProcess],
) -> None:
    first = daemon_factory(*NO_POOLS)
    assert first.proc is not None
    second = DaemonProcess(first.cache_dir, list(NO_POOLS))
    result = subprocess.run(second.command(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert f"pid {first.proc.pid}" in result.stderr, result.stderr
    assert "already running" in result.stderr
    # The loser touched nothing: the first daemon still answers, with its own pid.
    with first.client() as client:
        assert client.daemon_info().pid == first.proc.pid


def test_twenty_simultaneous_daemons_leave_exactly_one(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    daemons = [DaemonProcess(cache, list(NO_POOLS)) for _ in range(20)]
    procs = [
        subprocess.Popen(
            d.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        for d in daemons
    ]
    try:
        wait_until(
            lambda: sum(p.poll() is not None for p in procs) >= 19,
            timeout=120,
            interval=0.1,
            what="19 of 20 daemons to give up",
        )
        running = [p for p in procs if p.poll() is None]
        assert len(running) == 1
        for p in procs:
            if p is running[0]:
                continue
            assert p.returncode != 0
            assert p.stderr is not None
            assert b"already running" in p.stderr.read()
        survivor = DaemonProcess(cache, list(NO_POOLS), proc=running[0])
        survivor.wait_ready()
        with survivor.client() as client:
            assert client.daemon_info().pid == running[0].pid
        assert running[0].poll() is None  # still the only one, still up
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=20)
            if p.stderr is not None:
                p.stderr.close()


def test_restart_after_kill9_is_clean(daemon_factory: Callable[..., DaemonProcess]) -> None:
    first = daemon_factory(*NO_POOLS)
    assert first.proc is not None
    old_pid = first.proc.pid
    first.kill9()
    # The crash left its socket and daemon.json behind ...
    assert first.socket_path.exists()
    assert json.loads((first.cache_dir / "daemon.json").read_text())["pid"] == old_pid
    # ... and the next daemon starts by itself, nobody removes anything.
    second = daemon_factory(*NO_POOLS, cache_dir=first.cache_dir)
    assert second.proc is not None
    with second.client() as client:
        assert client.daemon_info().pid == second.proc.pid
    info = json.loads((second.cache_dir / "daemon.json").read_text())
    assert info["pid"] == second.proc.pid
    assert info["socket_path"] == str(second.socket_path)


def test_socket_and_dir_modes(tmp_path: Path, daemon_factory: Callable[..., DaemonProcess]) -> None:
    cache = tmp_path / "loose"
    cache.mkdir(mode=0o755)
    cache.chmod(0o755)
    d = daemon_factory(*NO_POOLS, cache_dir=cache)
    assert stat.S_IMODE(d.socket_path.stat().st_mode) == 0o600
    assert stat.S_ISSOCK(d.socket_path.stat().st_mode)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert stat.S_IMODE((cache / "envs").stat().st_mode) == 0o700


def test_clean_stop_removes_socket_and_info(daemon_factory: Callable[..., DaemonProcess]) -> None:
    d = daemon_factory(*NO_POOLS)
    assert d.proc is not None
    started = time.monotonic()
    d.stop()
    assert d.proc.returncode == 0
    assert time.monotonic() - started < 10
    assert not d.socket_path.exists()
    assert not (d.cache_dir / "daemon.json").exists()
    # and the lock is free again at once
    again = daemon_factory(*NO_POOLS, cache_dir=d.cache_dir)
    with again.client() as client:
        client.ping()
