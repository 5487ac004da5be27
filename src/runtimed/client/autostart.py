"""Starting the daemon for a client that finds none: through the installed user service
when there is one, else as a detached `runtimed run`; then a bounded wait for its pong.

Many clients may find no daemon at once: they take turns on a lock file beside the
socket, and whoever comes second finds the first one's daemon answering. The daemon's
own singleton lock makes a duplicate impossible in any case.
`RUNTIMED_NO_AUTOSTART=1` turns all of this off.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from runtimed.errors import DaemonNotRunningError, RuntimedError
from runtimed.paths import (
    SERVICE_NAME,
    default_cache_dir,
    default_socket_path,
    ensure_private_dir,
    systemd_unit_path,
)

NO_AUTOSTART_ENV = "RUNTIMED_NO_AUTOSTART"
START_TIMEOUT_SECS = 30.0


def autostart_enabled() -> bool:
    return os.environ.get(NO_AUTOSTART_ENV, "").lower() not in ("1", "true", "yes")


def daemon_argv(socket_path: Path) -> list[str]:
    """`runtimed run` for this socket: the default one, or a cache dir's own socket, or
    an explicit `--socket`."""
    argv = [sys.executable, "-m", "runtimed", "run"]
    if socket_path == default_socket_path():
        return argv
    if socket_path.name == "runtimed.sock":
        return [*argv, "--cache-dir", str(socket_path.parent)]
    return [*argv, "--socket", str(socket_path)]


def answers(socket_path: Path) -> bool:
    """Whether a daemon accepts connections on ``socket_path`` (a cheap probe)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(socket_path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def ensure_daemon(socket_path: Path, timeout: float = START_TIMEOUT_SECS) -> None:
    """Start a daemon on ``socket_path`` unless one answers; raises DaemonNotRunningError
    (auto-start off) or RuntimedError (it did not come up in time, with the log's tail)."""
    if answers(socket_path):
        return
    if not autostart_enabled():
        raise DaemonNotRunningError(str(socket_path))
    ensure_private_dir(socket_path.parent, tighten=False)
    lock_path = socket_path.with_name(f".{socket_path.name}.autostart.lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first one starts it, the rest find it up
        if answers(socket_path):
            return
        log_file = _start(socket_path)
        _wait_for(socket_path, timeout, log_file)


def _start(socket_path: Path) -> Path:
    """Start the daemon; returns the file its early output goes to."""
    cache_dir = socket_path.parent if socket_path.name == "runtimed.sock" else default_cache_dir()
    ensure_private_dir(cache_dir, tighten=False)
    log_file = cache_dir / "runtimed.stderr.log"
    if socket_path == default_socket_path() and _start_service():
        return log_file
    import subprocess  # here: only a start pays for it, and every command imports this module

    with open(log_file, "ab") as out:
        subprocess.Popen(
            daemon_argv(socket_path),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # not in the client's process group: Ctrl-C spares it
            close_fds=True,
        )
    return log_file


def _start_service() -> bool:
    """`systemctl --user start runtimed` when the unit is installed and a user manager
    answers; False when there is none (then the daemon is started directly)."""
    import shutil
    import subprocess

    if not systemd_unit_path().exists() or shutil.which("systemctl") is None:
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "start", SERVICE_NAME],
            capture_output=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _wait_for(socket_path: Path, timeout: float, log_file: Path) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while time.monotonic() < deadline:
        if answers(socket_path):
            return
        time.sleep(delay)
        delay = min(delay * 1.5, 0.1)
    raise RuntimedError(
        f"runtimed did not start within {timeout:.0f} s on {socket_path}; "
        f"see {log_file} and `runt daemon logs`",
        "start_timeout",
    )
