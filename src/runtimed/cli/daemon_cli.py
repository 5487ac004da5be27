"""`runtimed`: run the daemon in the foreground, ask its status, stop it, its service.

The command tree is at the bottom (``runtimed``, see ``runt_cli.py`` for how to add a
command); `run`'s options live in ``daemon_start`` with its start.
"""

from __future__ import annotations

import time

from runtimed.cli.command_line import Group, flag, opt, run
from runtimed.cli.common import (
    JSON,
    SOCKET,
    echo,
    one_line,
    print_json,
    reporting_errors,
    stop_daemon,
)
from runtimed.cli.daemon_start import RUN_OPTIONS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtimed.service.install import Report


def status(socket: str | None, json: bool) -> None:
    """Show whether the daemon runs, its pid, version, socket and pools."""
    from runtimed.client.control_client import ControlClient
    from runtimed.errors import DaemonNotRunningError

    if json:
        try:
            with ControlClient(socket, autostart=False) as client:
                info, pools = client.daemon_info(), client.status()
        except DaemonNotRunningError as exc:
            print_json({"running": False, "error": exc.message, "code": exc.code})
            raise SystemExit(2) from None
        print_json(
            {"running": True, "http_url": info.get("http_url"), "daemon": info, "status": pools}
        )
        return
    with reporting_errors(), ControlClient(socket, autostart=False) as client:
        info = client.daemon_info()
        pools = client.status()
    uptime = time.time() - info["started_at"]
    echo(f"runtimed {info['version']} running, pid {info['pid']}, up {uptime:.0f} s")
    echo(f"socket:    {info['socket_path']}\ncache dir: {info['cache_dir']}")
    if info.get("blob_port"):
        echo(f"blobs:     http://127.0.0.1:{info['blob_port']}/blob/<sha256>")
    if info.get("http_url"):
        echo(f"http:      {info['http_url']}  (token: runtimed token path)")
    for name, pool in pools["pools"].items():
        line = f"{name} pool:   {pool['available']} ready, {pool['warming']} warming"
        line += f", target {pool['target']}"
        if pool.get("error"):
            line += f"  (error: {one_line(pool['error']['message'], 80)})"
        echo(line)


def token_path(cache_dir: str | None) -> None:
    """Print the path of the token file (send its content as 'Authorization: Bearer')."""
    from runtimed.daemon.http.tokens import token_file
    from runtimed.paths import RuntimePaths

    echo(str(token_file(RuntimePaths.resolve(cache_dir).cache_dir)))


def token_rotate(cache_dir: str | None) -> None:
    """Write a new token: the old one, its cookies and login links stop working at once
    (a running daemon picks the new one up without a restart)."""
    from runtimed.daemon.http.tokens import token_file, write_new_token
    from runtimed.paths import RuntimePaths, ensure_private_dir

    path = token_file(ensure_private_dir(RuntimePaths.resolve(cache_dir).cache_dir))
    write_new_token(path)
    echo(f"new token in {path}")


def token_login_url(socket: str | None) -> None:
    """Print a one-time login link for a browser (valid 60 s, once): it sets a session
    cookie, so the token itself never goes in a URL."""
    from pathlib import Path

    from runtimed.client import DaemonClient
    from runtimed.daemon.http.tokens import mint_login_code, read_token, token_file
    from runtimed.errors import RuntimedError

    with reporting_errors():
        with DaemonClient(socket, autostart=False) as client:
            info = client.daemon_info()
        if not info.http_url:
            raise RuntimedError("the daemon's HTTP server is off (--http-listen off)", "http_off")
        token = read_token(token_file(Path(info.cache_dir)))
        if token is None:
            raise RuntimedError(f"no token in {info.cache_dir}; is this the daemon's user?")
    echo(f"{info.http_url}/login?code={mint_login_code(token)}")


def stop(socket: str | None) -> None:
    """Stop the running daemon (returns once it has exited)."""
    pid = stop_daemon(socket)
    echo(f"stopped runtimed (pid {pid})")


def install(dry_run: bool) -> None:
    """Start runtimed with your session: write and enable the user service.

    A systemd user unit (Linux), a launchd agent (macOS) or a Startup-folder entry
    (Windows), running this Python's runtimed with this shell's RUNTIMED_* variables."""
    from runtimed.service.install import current_manager
    from runtimed.service.install import install as install_service
    from runtimed.service.units import ServiceSpec

    with reporting_errors():
        report = install_service(current_manager(), ServiceSpec.current(), dry_run)
    _print_report(report)


def uninstall() -> None:
    """Stop and disable the user service and remove its file (none installed: no error)."""
    from runtimed.service.install import current_manager
    from runtimed.service.install import uninstall as uninstall_service

    with reporting_errors():
        report = uninstall_service(current_manager())
    _print_report(report)


def _print_report(report: Report) -> None:
    """Progress on stdout, warnings and errors on stderr; exit 1 after an error."""
    for level, text in report.lines:
        if level == "info":
            echo(text)
        else:
            echo(f"{level}: {text}", err=True)
    if report.failed:
        raise SystemExit(1)


_C = "runtimed.cli.daemon_cli:"
CACHE_DIR = opt("--cache-dir", help="The daemon's cache dir (default ~/.cache/runt)")

runtimed = Group(
    "runtimed",
    "The runtimed daemon.",
    description="The runtimed daemon: run it, ask its status, stop it, install it as a service.",
)
runtimed.command(
    "run", "runtimed.cli.daemon_start:start", "Run the daemon in the foreground.", *RUN_OPTIONS
)
runtimed.command(
    "status", _C + "status", "Whether the daemon runs: pid, version, pools.", SOCKET, JSON
)
runtimed.command("stop", _C + "stop", "Stop the running daemon.", SOCKET)
token = runtimed.group(
    "token", "The HTTP server's token (<cache dir>/http-token): where, rotate, log a browser in."
)
token.command("path", _C + "token_path", "Print the path of the token file.", CACHE_DIR)
token.command("rotate", _C + "token_rotate", "Write a new token.", CACHE_DIR)
token.command("login-url", _C + "token_login_url", "A one-time login link for a browser.", SOCKET)
runtimed.command(
    "install", _C + "install", "Start runtimed with your session (user service).",
    flag("--dry-run", help="Print what would be written where; write nothing"),
)  # fmt: skip
runtimed.command("uninstall", _C + "uninstall", "Stop and remove the user service.")


def main(argv: list[str] | None = None) -> None:
    from runtimed.cli.common import one_line_warnings
    from runtimed.version import __version__

    one_line_warnings()
    run(runtimed, argv, version=__version__)
