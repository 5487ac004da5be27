"""`runt` and `runtimed` commands against a real daemon: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from helpers import DaemonProcess, wait_until

BIN = Path(sys.executable).parent


def cli(tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / tool), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(
        tmp_path_factory.mktemp("cli") / "cache", ["--uv-pool-size", "1", "--conda-pool-size", "0"]
    )
    d.start()
    yield d
    d.stop()


def sock(d: DaemonProcess) -> list[str]:
    return ["--socket", str(d.socket_path)]


@pytest.mark.daemon
def test_pool_ping(daemon: DaemonProcess) -> None:
    r = cli("runt", "pool", "ping", *sock(daemon))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("pong:") and "protocol 1" in r.stdout


@pytest.mark.daemon
def test_pool_status_table_and_json(daemon: DaemonProcess) -> None:
    r = cli("runt", "pool", "status", *sock(daemon))
    assert r.returncode == 0, r.stderr
    for word in ("available", "warming", "target", "error", "uv", "conda"):
        assert word in r.stdout
    r = cli("runt", "pool", "status", "--json", *sock(daemon))
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["type"] == "status"
    assert status["pools"]["uv"]["target"] == 1
    assert status["pools"]["conda"]["target"] == 0
    assert {"available", "warming", "packages", "error"} <= status["pools"]["uv"].keys()


@pytest.mark.daemon
def test_pool_take_and_return(daemon: DaemonProcess) -> None:
    daemon.wait_pool("uv", 1)
    r = cli("runt", "pool", "take", "uv", *sock(daemon))
    assert r.returncode == 0, r.stderr
    env = json.loads(r.stdout)
    assert set(env) == {"env_type", "venv_path", "python_path", "prewarmed_packages"}
    assert env["env_type"] == "uv" and Path(env["python_path"]).exists()
    assert "ipykernel" in env["prewarmed_packages"]
    r = cli("runt", "pool", "return", env["venv_path"], *sock(daemon))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split(":")[0] in ("returned", "deleted")
    # returning it twice is an error, reported on one line
    r = cli("runt", "pool", "return", env["venv_path"], *sock(daemon))
    assert r.returncode != 0
    assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.daemon
def test_pool_take_conda_and_bad_type(daemon: DaemonProcess) -> None:
    r = cli("runt", "pool", "take", "conda", "--timeout", "0.5", *sock(daemon))
    assert r.returncode != 0
    assert "conda" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("runt", "pool", "take", "pixi", *sock(daemon))
    assert r.returncode != 0 and "pixi" in r.stderr


@pytest.mark.daemon
def test_runtimed_status(daemon: DaemonProcess) -> None:
    assert daemon.proc is not None
    r = cli("runtimed", "status", *sock(daemon))
    assert r.returncode == 0, r.stderr
    assert f"pid {daemon.proc.pid}" in r.stdout and "uv pool" in r.stdout
    r = cli("runtimed", "status", "--json", *sock(daemon))
    assert json.loads(r.stdout)["daemon"]["pid"] == daemon.proc.pid


@pytest.mark.daemon
def test_pool_flush(daemon: DaemonProcess) -> None:
    r = cli("runt", "pool", "flush", *sock(daemon))
    assert r.returncode == 0, r.stderr
    assert "flushed" in r.stdout
    daemon.wait_pool("uv", 1)


@pytest.mark.daemon
def test_runt_pool_shutdown(daemon_factory: Callable[..., DaemonProcess]) -> None:
    d = daemon_factory("--uv-pool-size", "0", "--conda-pool-size", "0")
    assert d.proc is not None
    r = cli("runt", "pool", "shutdown", *sock(d))
    assert r.returncode == 0, r.stderr
    assert d.proc.wait(timeout=30) == 0


@pytest.mark.daemon
def test_runtimed_stop_waits_for_exit(daemon_factory: Callable[..., DaemonProcess]) -> None:
    d = daemon_factory("--uv-pool-size", "0", "--conda-pool-size", "0")
    assert d.proc is not None
    r = cli("runtimed", "stop", *sock(d))
    assert r.returncode == 0, r.stderr
    assert f"pid {d.proc.pid}" in r.stdout
    wait_until(
        lambda: d.proc is not None and d.proc.poll() is not None,
        timeout=5,
        what="the daemon to be gone when `runtimed stop` returns",
    )
    assert not d.socket_path.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["runt", "pool", "ping"],
        ["runt", "pool", "status"],
        ["runt", "pool", "status", "--json"],
        ["runt", "pool", "take", "uv"],
        ["runt", "pool", "return", "/tmp/runtimed-uv-0123456789ab"],
        ["runt", "pool", "flush"],
        ["runt", "pool", "shutdown"],
        ["runtimed", "status"],
        ["runtimed", "stop"],
    ],
    ids=lambda argv: "-".join(argv),
)
def test_commands_fail_cleanly_without_a_daemon(tmp_path: Path, argv: list[str]) -> None:
    stale = tmp_path / "runtimed.sock"
    r = cli(argv[0], *argv[1:], "--socket", str(stale))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "not running" in lines[0] and str(stale) in lines[0]
    assert r.stdout == ""


def test_run_help_lists_every_run_option() -> None:
    """`runtimed run` has one list of options (daemon_start.RUN_OPTIONS): its --help shows
    each with its help text."""
    from runtimed.cli import daemon_start

    r = cli("runtimed", "run", "--help")
    assert r.returncode == 0, r.stderr
    for option in daemon_start.RUN_OPTIONS:
        assert option.flags[0] in r.stdout
    assert "Ready uv envs to keep" in r.stdout


def test_runtimed_run_rejects_bad_options(tmp_path: Path) -> None:
    r = cli("runtimed", "run", "--cache-dir", str(tmp_path), "--uv-pool-size", "-1")
    assert r.returncode != 0 and "uv-pool-size" in r.stderr
    r = cli("runtimed", "run", "--help")
    assert r.returncode == 0 and "--uv-pool-size" in r.stdout
