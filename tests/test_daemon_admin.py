"""`runt daemon status|start|stop|restart|logs|doctor` against real daemons, through the
real `runt` entry point.

The CLI runs with HOME, XDG_CONFIG_HOME and XDG_RUNTIME_DIR in temp dirs (no real
systemd user dir or manager is consulted), and every daemon lives in a temp cache dir.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import runtimed
from helpers import DaemonProcess, wait_until
from runtimed.cli.common import pid_alive
from runtimed.client.core import version_note
from runtimed.service.doctor import channel_probe, probe_channels
from runtimed.service.logs import follow, tail_lines

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
NO_POOLS = ("--uv-pool-size", "0")  # DaemonProcess turns conda and kernel pools off


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of every `runt` run here: a private home and no user bus."""
    base = tmp_path_factory.mktemp("admin-user")
    runtime = base / "run"
    runtime.mkdir(mode=0o700)
    return {
        **os.environ,
        "HOME": str(base / "home"),
        "XDG_CONFIG_HOME": str(base / "home" / ".config"),
        "XDG_RUNTIME_DIR": str(runtime),
        "DBUS_SESSION_BUS_ADDRESS": f"unix:path={runtime}/no-bus",
    }


def runt(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runt"), "daemon", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    d = DaemonProcess(tmp_path_factory.mktemp("admin") / "cache", list(NO_POOLS))
    d.start()
    yield d
    d.stop()


def sock(d: DaemonProcess) -> list[str]:
    return ["--socket", str(d.socket_path)]


# --- status ----------------------------------------------------------------------------


@pytest.mark.daemon
def test_status_text_and_json(daemon: DaemonProcess, user_env: dict[str, str]) -> None:
    assert daemon.proc is not None

    def warmed_up() -> bool:  # the kernel pool is built just after start
        with daemon.client() as c:
            return c.status().kernels is not None

    wait_until(warmed_up, 20, what="the daemon's warm-up")
    r = runt(user_env, "status", *sock(daemon))
    assert r.returncode == 0, r.stderr
    assert f"runtimed {runtimed.__version__} running, pid {daemon.proc.pid}, up " in r.stdout
    assert str(daemon.socket_path) in r.stdout
    assert str(daemon.cache_dir / "runtimed.log") in r.stdout
    assert "service:    not installed" in r.stdout
    for label in ("uv pool:", "conda pool:", "kernels:", "rooms:      0 open", "disk:"):
        assert label in r.stdout, r.stdout
    for part in ("envs", "inline-envs", "notebook-docs", "blobs"):
        assert f"{part} " in r.stdout
    assert "note:" not in r.stdout  # same version

    r = runt(user_env, "status", "--json", *sock(daemon))
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["running"] is True and status["pid"] == daemon.proc.pid
    assert status["version"] == status["package_version"] == runtimed.__version__
    assert status["version_note"] is None
    assert status["uptime_secs"] >= 0 and status["rooms"] == 0
    assert status["pools"]["uv"]["target"] == 0 and status["kernels"]["target"] == 0
    assert set(status["disk_bytes"]) == {"envs", "inline-envs", "notebook-docs", "blobs"}
    assert status["service"]["installed"] is False
    assert status["socket"] == str(daemon.socket_path)


def test_status_without_a_daemon_never_starts_one(tmp_path: Path, user_env: dict[str, str]) -> None:
    env = {k: v for k, v in user_env.items() if k != "RUNTIMED_NO_AUTOSTART"}
    socket = tmp_path / "cache" / "runtimed.sock"
    r = runt(env, "status", "--socket", str(socket))
    assert r.returncode == 2
    assert "not running" in one_error_line(r) and "runt daemon start" in r.stderr
    r = runt(env, "status", "--json", "--socket", str(socket))
    assert r.returncode == 2 and json.loads(r.stdout)["running"] is False
    r = runt(env, "stop", "--socket", str(socket))
    assert r.returncode == 2 and "not running" in one_error_line(r)
    assert not socket.exists()  # auto-start was on, and still nothing started


@pytest.mark.daemon
@pytest.mark.filterwarnings("ignore::runtimed.client.core.OutdatedDaemonWarning")
def test_version_mismatch_is_pointed_out(
    tmp_path: Path, user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real daemon of another runtimed version: a copy of this package with its
    version changed, put first on the daemon's PYTHONPATH (an upgrade not yet restarted)."""
    old = tmp_path / "old-runtimed"
    shutil.copytree(
        ROOT / "src" / "runtimed", old / "runtimed", ignore=shutil.ignore_patterns("__pycache__")
    )
    version = old / "runtimed" / "version.py"
    version.write_text(version.read_text().replace(f'"{runtimed.__version__}"', '"0.0.1"', 1))
    monkeypatch.setenv("PYTHONPATH", str(old))
    d = DaemonProcess(tmp_path / "cache", list(NO_POOLS)).start()
    monkeypatch.delenv("PYTHONPATH")
    try:
        with d.client() as client:
            assert client.daemon_info().version == "0.0.1"
        r = runt(user_env, "status", *sock(d))
        assert r.returncode == 0, r.stderr
        assert (
            f"note: runtimed {runtimed.__version__} is installed but the daemon runs 0.0.1"
            in r.stdout
        )
        assert "runt daemon restart" in r.stdout
        r = runt(user_env, "doctor", "--json", *sock(d))
        (check,) = [c for c in json.loads(r.stdout)["checks"] if c["name"] == "version"]
        assert check["status"] == "warn" and "runt daemon restart" in check["hint"]
    finally:
        d.stop()


def test_version_comparison() -> None:
    assert version_note("1.2.0", installed="1.2.0") is None
    note = version_note("1.2.0", installed="1.3.0")
    assert note is not None and "1.3.0 is installed" in note and "runs 1.2.0" in note
    assert "runt daemon restart" in note


# --- start / stop / restart ------------------------------------------------------------


def _daemon_pids(cache: Path) -> list[int]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "runtimed" in cmdline and "run" in cmdline and str(cache) in cmdline:
            found.append(proc.pid)
    return found


@pytest.mark.daemon
def test_stop_start_restart_keep_the_rooms(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path, user_env: dict[str, str]
) -> None:
    cache = tmp_path / "cache"
    first = daemon_factory(*NO_POOLS, cache_dir=cache)
    assert first.proc is not None
    with runtimed.Session(notebook_id="kept", socket_path=first.socket_path) as s:
        s.create_cell("x = 'survives restarts'")

    r = runt(user_env, "stop", *sock(first))
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"stopped runtimed (pid {first.proc.pid})"
    assert first.proc.poll() is not None  # stop returns once the process has exited

    # The daemon `start` spawns (through auto-start) reads its pool sizes from settings:
    # none, so it starts in a blink and builds nothing.
    config = tmp_path / "config"
    config.mkdir()
    (config / "settings.json").write_text(
        '{"uv": {"pool_size": 0}, "conda": {"pool_size": 0}, "kernel_pool": {"size": 0}}'
    )
    env = {k: v for k, v in user_env.items() if k != "RUNTIMED_NO_AUTOSTART"}
    env["RUNTIMED_CONFIG_DIR"] = str(config)
    try:
        r = runt(env, "start", *sock(first))
        assert r.returncode == 0, r.stderr
        (started,) = _daemon_pids(cache)
        assert f"started runtimed {runtimed.__version__} (pid {started})" in r.stdout
        assert str(first.socket_path) in r.stdout
        r = runt(env, "start", *sock(first))
        assert r.returncode == 0 and f"already running (pid {started})" in r.stdout

        # restart, here with RUNTIMED_NO_AUTOSTART=1 as every test has it: that setting
        # only keeps clients from starting a daemon on their own, not `runt daemon`.
        r = runt({**env, "RUNTIMED_NO_AUTOSTART": "1"}, "restart", *sock(first))
        assert r.returncode == 0, r.stderr
        (restarted,) = _daemon_pids(cache)
        assert restarted != started and not pid_alive(started)  # a zombie counts as gone
        assert f"stopped runtimed (pid {started})" in r.stdout
        assert f"started runtimed {runtimed.__version__} (pid {restarted})" in r.stdout

        with runtimed.Session(notebook_id="kept", socket_path=first.socket_path) as s:
            assert [c.source for c in s.get_cells()] == ["x = 'survives restarts'"]
    finally:
        r = runt(env, "stop", *sock(first))
        for pid in _daemon_pids(cache):  # stop failed: do not leave it behind
            psutil.Process(pid).kill()
    assert r.returncode == 0, r.stderr


# --- logs ------------------------------------------------------------------------------


@pytest.mark.daemon
def test_logs_last_lines(daemon: DaemonProcess, user_env: dict[str, str], tmp_path: Path) -> None:
    log = daemon.cache_dir / "runtimed.log"
    r = runt(user_env, "logs", "-n", "3", *sock(daemon))
    assert r.returncode == 0, r.stderr
    shown = r.stdout.splitlines()
    assert len(shown) == 3
    lines = log.read_text().splitlines()
    # The daemon may have logged more since; what was shown is a run of its lines.
    start = lines.index(shown[0])
    assert lines[start : start + 3] == shown
    r = runt(user_env, "logs", "-n", "-2", *sock(daemon))
    assert r.returncode == 1 and "-n" in one_error_line(r)
    r = runt(user_env, "logs", "--socket", str(tmp_path / "none" / "runtimed.sock"))
    assert r.returncode == 1 and "no log at" in one_error_line(r)


def test_tail_and_follow_across_rotation(tmp_path: Path) -> None:
    log = tmp_path / "runtimed.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert tail_lines(log, 3) == ["line 4997", "line 4998", "line 4999"]
    assert tail_lines(log, 0) == [] and len(tail_lines(log, 10_000)) == 5000

    seen: list[str] = []
    done = threading.Event()
    thread = threading.Thread(target=follow, args=(log, seen.append, done.is_set))
    thread.start()
    try:
        time.sleep(0.3)  # let follow open the file at its end before anything is added
        with log.open("a") as f:
            f.write("new 1\nnew ")
            f.flush()
            f.write("2\n")
        wait_until(lambda: seen == ["new 1", "new 2"], 10, what="appended lines")
        log.rename(tmp_path / "runtimed.log.1")  # what RotatingFileHandler does
        log.write_text("after rotation\n")
        wait_until(lambda: seen[-1:] == ["after rotation"], 10, what="the rotated-in file")
    finally:
        done.set()
        thread.join(timeout=10)
    assert seen == ["new 1", "new 2", "after rotation"]


# --- doctor ----------------------------------------------------------------------------


@pytest.mark.daemon
def test_doctor_on_a_healthy_daemon(daemon: DaemonProcess, user_env: dict[str, str]) -> None:
    r = runt(user_env, "doctor", *sock(daemon))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "FAIL" not in r.stdout
    for name in ("socket", "lock", "stale files", "service", "uv", "conda channels", "disk"):
        assert f"  {name}" in r.stdout
    r = runt(user_env, "doctor", "--json", *sock(daemon))
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    checks = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True
    assert all(c["status"] in ("ok", "warn") for c in checks.values())
    for name in ("socket", "lock", "stale files", "uv", "disk", "version"):
        assert checks[name]["status"] == "ok", checks[name]
    assert checks["conda channels"]["status"] in ("ok", "warn")  # offline: a warning
    assert daemon.proc is not None and str(daemon.proc.pid) in checks["lock"]["message"]


@pytest.mark.daemon
def test_doctor_finds_and_fixes_what_a_killed_daemon_left(
    daemon_factory: Callable[..., DaemonProcess], tmp_path: Path, user_env: dict[str, str]
) -> None:
    d = daemon_factory(*NO_POOLS)
    d.kill9()
    assert d.socket_path.exists() and (d.cache_dir / "daemon.json").exists()
    old_tmp = d.cache_dir / ".daemon.json.123.456.tmp"
    old_tmp.write_text("{")
    os.utime(old_tmp, (time.time() - 3600, time.time() - 3600))
    fresh_tmp = d.cache_dir / "notebook-docs" / ".x.ydoc.1.2.tmp"  # maybe being written
    fresh_tmp.parent.mkdir(exist_ok=True)
    fresh_tmp.write_text("")

    r = runt(user_env, "doctor", *sock(d))
    assert r.returncode == 0, r.stdout  # stale files are warnings: the next daemon copes
    assert f"stale socket {d.socket_path}" in r.stdout
    assert "daemon.json of exited pid" in r.stdout and "1 leftover temp file" in r.stdout
    assert "runt daemon doctor --fix" in r.stdout

    r = runt(user_env, "doctor", "--fix", "--json", *sock(d))
    assert r.returncode == 0, r.stdout
    (stale,) = [c for c in json.loads(r.stdout)["checks"] if c["name"] == "stale files"]
    assert any("removed the stale socket" in done for done in stale["fixed"]), stale
    assert not d.socket_path.exists() and not (d.cache_dir / "daemon.json").exists()
    assert not old_tmp.exists() and fresh_tmp.exists()

    r = runt(user_env, "doctor", "--json", *sock(d))
    (stale,) = [c for c in json.loads(r.stdout)["checks"] if c["name"] == "stale files"]
    assert stale["status"] == "ok"


@pytest.mark.daemon
def test_doctor_fails_when_the_lock_holder_does_not_answer(
    daemon_factory: Callable[..., DaemonProcess], user_env: dict[str, str]
) -> None:
    d = daemon_factory(*NO_POOLS)
    assert d.proc is not None
    d.socket_path.unlink()  # say, a temp cleaner removed it: the daemon can't be reached
    r = runt(user_env, "doctor", *sock(d))
    assert r.returncode == 1, r.stdout
    assert f"runtimed pid {d.proc.pid} holds the lock" in r.stdout
    assert "FAIL" in r.stdout and f"kill {d.proc.pid}" in r.stdout
    d.proc.terminate()  # nothing answers the socket: stop it by signal
    d.proc.wait(timeout=30)


def test_channel_probe(tmp_path: Path) -> None:
    assert channel_probe("conda-forge") == (
        "https://conda.anaconda.org/conda-forge/noarch/repodata.json"
    )
    assert channel_probe("https://m.example/cf/") == "https://m.example/cf/noarch/repodata.json"
    (tmp_path / "channel" / "noarch").mkdir(parents=True)
    failed = probe_channels([f"file://{tmp_path / 'channel'}", f"file://{tmp_path / 'none'}"])
    assert list(failed) == [f"file://{tmp_path / 'none'}"]
    started = time.monotonic()
    # A closed local port: refused at once, and never longer than the bound in any case.
    failed = probe_channels(["http://127.0.0.1:9/conda"], timeout=3)
    assert "http://127.0.0.1:9/conda" in failed and time.monotonic() - started < 4
