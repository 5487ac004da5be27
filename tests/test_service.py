"""`runtimed install` / `uninstall` and the service files they write: the systemd unit
verifies and its ExecStart really serves, the launchd plist and the Windows Startup entry
say the right thing, and install/uninstall work where no service manager is reachable.

Every test points HOME, XDG_CONFIG_HOME and XDG_RUNTIME_DIR at temp dirs: nothing here
touches the real ~/.config or the user's systemd manager.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import runtimed
from helpers import wait_until
from runtimed.service import install as service_install
from runtimed.service.units import (
    ServiceSpec,
    daemon_argv,
    launchd_plist,
    launchd_plist_path,
    systemd_unit,
    systemd_unit_path,
    systemd_wants_link,
    windows_startup_path,
    windows_startup_script,
)

BIN = Path(sys.executable).parent


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private HOME/XDG_CONFIG_HOME, and a runtime dir with no user bus in it, so any
    systemctl --user we run finds no manager (deterministically, on any machine)."""
    home = tmp_path / "home"
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", f"unix:path={runtime}/no-bus")
    monkeypatch.setenv("APPDATA", str(home / "AppData" / "Roaming"))
    monkeypatch.setenv("RUNTIMED_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("RUNTIMED_CONFIG_DIR", str(tmp_path / "config"))
    yield home


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "runtimed"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env=env,
    )


def unit_values(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def systemd_words(value: str) -> list[str]:
    """Split an ExecStart/Environment value as systemd does (for what units.py writes:
    double quotes with backslash escapes, %% and $$ for literal % and $)."""
    return [w.replace("%%", "%").replace("$$", "$") for w in shlex.split(value)]


# --- the files -------------------------------------------------------------------------


def test_paths_follow_home_and_xdg(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert systemd_unit_path() == home / ".config" / "systemd" / "user" / "runtimed.service"
    assert systemd_wants_link().parent.name == "default.target.wants"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "elsewhere"))
    assert systemd_unit_path() == home / "elsewhere" / "systemd" / "user" / "runtimed.service"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")  # the XDG spec says so
    assert systemd_unit_path() == home / ".config" / "systemd" / "user" / "runtimed.service"
    assert launchd_plist_path() == home / "Library" / "LaunchAgents" / "io.runtimed.plist"
    assert windows_startup_path() == (
        home / "AppData/Roaming/Microsoft/Windows/Start Menu/Programs/Startup/runtimed.cmd"
    )


def test_systemd_unit_says_what_the_service_needs(home: Path) -> None:
    spec = ServiceSpec.current()
    unit = systemd_unit(spec)
    assert unit_values(unit, "ExecStart") == [f"{sys.executable} -m runtimed run"]
    assert Path(sys.executable).is_absolute()
    assert unit_values(unit, "Restart") == ["on-failure"]
    assert unit_values(unit, "KillMode") == ["control-group"]
    assert int(unit_values(unit, "TimeoutStopSec")[0]) >= 10
    assert unit_values(unit, "WantedBy") == ["default.target"]
    # The shell's RUNTIMED_* choices go with it, so the service serves the same socket.
    env = dict(w.split("=", 1) for v in unit_values(unit, "Environment") for w in systemd_words(v))
    assert env["RUNTIMED_CACHE_DIR"] == os.environ["RUNTIMED_CACHE_DIR"]
    assert env["RUNTIMED_CONFIG_DIR"] == os.environ["RUNTIMED_CONFIG_DIR"]


def _verify(unit_file: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    runtime = tmp_path / "verify-run"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime)}
    return subprocess.run(
        ["systemd-analyze", "--user", "verify", str(unit_file)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("odd_path", [False, True], ids=["venv-python", "spaces-and-percent"])
def test_systemd_unit_passes_systemd_analyze(home: Path, tmp_path: Path, odd_path: bool) -> None:
    argv = daemon_argv()
    if odd_path:  # quoting: a python under "my envs/100%" is still found and run
        odd = tmp_path / "my envs" / "100%"
        odd.mkdir(parents=True)
        (odd / "python").symlink_to(sys.executable)
        argv = (str(odd / "python"), *argv[1:])
    spec = ServiceSpec(argv, tmp_path / "cache", {"RUNTIMED_CACHE_DIR": str(tmp_path / "a b")})
    unit_file = tmp_path / "units" / "runtimed.service"
    unit_file.parent.mkdir()
    unit_file.write_text(systemd_unit(spec))
    assert systemd_words(unit_values(unit_file.read_text(), "ExecStart")[0]) == list(argv)
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed: the unit's syntax was not verified")
    done = _verify(unit_file, tmp_path)
    assert done.returncode == 0, done.stderr
    # Unknown keys or bad values are only warnings (exit 0): none may mention our unit.
    assert "runtimed.service" not in done.stderr + done.stdout, done.stderr


def test_launchd_plist(tmp_path: Path) -> None:
    spec = ServiceSpec(daemon_argv(), tmp_path / "cache", {"RUNTIMED_CACHE_DIR": "/x"})
    agent = plistlib.loads(launchd_plist(spec))
    assert agent["Label"] == "io.runtimed"
    assert agent["ProgramArguments"] == [sys.executable, "-m", "runtimed", "run"]
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] == {"SuccessfulExit": False}  # crashes restart, stop stays
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert Path(agent[key]).parent == tmp_path / "cache"
    assert agent["EnvironmentVariables"] == {"RUNTIMED_CACHE_DIR": "/x"}
    bare = plistlib.loads(launchd_plist(ServiceSpec(daemon_argv(), tmp_path)))
    assert "EnvironmentVariables" not in bare


def test_windows_startup_entry() -> None:
    python = r"C:\Program Files\Python311\python.exe"
    spec = ServiceSpec(
        (python, "-m", "runtimed", "run"), Path("C:/cache"), {"RUNTIMED_LOG": "debug"}
    )
    script = windows_startup_script(spec)
    assert script.endswith("\r\n") and "\n" not in script.replace("\r\n", "")
    lines = script.split("\r\n")
    assert lines[0] == "@echo off"
    assert 'set "RUNTIMED_LOG=debug"' in lines
    assert lines[-2] == rf'start "runtimed" /min "{python}" -m runtimed run'
    odd = ServiceSpec((r"C:\100%\python.exe", "-m", "runtimed", "run"), Path("C:/c"))
    assert r'"C:\100%%\python.exe"' in windows_startup_script(odd)  # batch-file escaping


# --- install / uninstall ---------------------------------------------------------------


def test_install_and_uninstall_without_a_reachable_manager(home: Path, tmp_path: Path) -> None:
    unit = systemd_unit_path()
    dry = cli("install", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    # The entry point's interpreter: this venv's python (python3 for the console script).
    assert str(unit) in dry.stdout and f"ExecStart={BIN / 'python'}" in dry.stdout
    assert "nothing written" in dry.stdout
    assert not unit.exists() and not (home / ".config").exists()

    done = cli("install")
    assert done.returncode == 0, done.stderr
    assert unit.exists() and f"wrote {unit}" in done.stdout
    assert unit_values(unit.read_text(), "ExecStart")[0].startswith(str(BIN / "python"))
    if shutil.which("systemctl") is None:
        assert "systemctl not found" in done.stderr
    else:
        # This machine (and the test env on any machine) has no user bus: say so, and how
        # to start it by hand. `enable` works without a manager: the wants link is made.
        assert "not reachable" in done.stderr and "nothing was started" in done.stderr
        assert "systemctl --user" in done.stdout and "runt daemon start" in done.stdout
        assert systemd_wants_link().is_symlink()
    again = cli("install")  # idempotent
    assert again.returncode == 0, again.stderr

    gone = cli("uninstall")
    assert gone.returncode == 0, gone.stderr
    assert f"removed {unit}" in gone.stdout
    assert not unit.exists() and not systemd_wants_link().is_symlink()
    twice = cli("uninstall")
    assert twice.returncode == 0, twice.stderr
    assert "not installed" in twice.stdout


def test_install_with_a_reachable_manager_enables_and_starts(home: Path, tmp_path: Path) -> None:
    """A stand-in systemctl that answers like a working user manager records the calls."""
    fake = tmp_path / "fakebin"
    fake.mkdir()
    calls = tmp_path / "calls.log"
    (fake / "systemctl").write_text(
        f'#!/bin/sh\necho "$*" >> "{calls}"\ncase "$*" in *show*) echo inactive ;; esac\nexit 0\n'
    )
    (fake / "systemctl").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}"}
    done = cli("install", env=env)
    assert done.returncode == 0, done.stderr
    assert "enabled and started runtimed.service" in done.stdout
    assert calls.read_text().splitlines() == [
        "--user daemon-reload",
        "--user show --property=ActiveState --value runtimed.service",
        "--user enable --now runtimed.service",
    ]
    calls.unlink()
    gone = cli("uninstall", env=env)
    assert gone.returncode == 0, gone.stderr
    assert "stopped and disabled runtimed.service" in gone.stdout
    assert calls.read_text().splitlines() == [
        "--user disable --now runtimed.service",
        "--user daemon-reload",
    ]
    assert not systemd_unit_path().exists()


def test_launchd_and_startup_folder_install_where_their_tools_are_missing(
    home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no launchctl here
    spec = ServiceSpec.current()
    agent = service_install.LaunchdAgent()
    report = service_install.install(agent, spec)
    assert not report.failed
    assert plistlib.loads(launchd_plist_path().read_bytes())["Label"] == "io.runtimed"
    assert any("launchctl not found" in text for _, text in report.lines)
    assert spec.cache_dir.is_dir()  # launchd does not create its log's directory
    assert not service_install.uninstall(agent).failed
    assert not launchd_plist_path().exists()

    startup = service_install.StartupFolder()
    report = service_install.install(startup, spec)
    assert windows_startup_path().read_text().startswith("@echo off")
    assert any("next logon" in text for _, text in report.lines)
    assert startup.state().installed
    service_install.uninstall(startup)
    assert not windows_startup_path().exists() and not startup.state().installed


# --- the unit's command really serves --------------------------------------------------


def test_exec_start_runs_a_daemon_that_answers_and_stops_cleanly(
    home: Path, tmp_path: Path
) -> None:
    unit = systemd_unit(ServiceSpec.current())
    argv = systemd_words(unit_values(unit, "ExecStart")[0])
    argv += ["--uv-pool-size", "0", "--conda-pool-size", "0", "--kernel-pool-size", "0"]
    # The environment systemd would give it: the unit's Environment= lines.
    unit_env = dict(
        w.split("=", 1) for v in unit_values(unit, "Environment") for w in systemd_words(v)
    )
    assert unit_env["RUNTIMED_CACHE_DIR"] == str(tmp_path / "cache")
    log = (tmp_path / "service-stderr.log").open("wb")
    proc = subprocess.Popen(
        argv, env={**os.environ, **unit_env}, stdin=subprocess.DEVNULL, stdout=log, stderr=log
    )
    sock = tmp_path / "cache" / "runtimed.sock"
    try:

        def pong() -> bool:
            assert proc.poll() is None, (tmp_path / "service-stderr.log").read_text()
            with runtimed.DaemonClient(sock, timeout=5, autostart=False) as client:
                return client.ping().daemon_version == runtimed.__version__

        wait_until(pong, timeout=30, interval=0.02, what="the unit's daemon to answer")
        proc.send_signal(signal.SIGTERM)  # what `systemctl stop` sends
        # Exit 0: with Restart=on-failure a stopped service stays stopped.
        assert proc.wait(timeout=30) == 0
        assert not sock.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
