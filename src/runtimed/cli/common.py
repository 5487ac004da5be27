"""What both CLIs share: socket or URL, error reporting, JSON output."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import msgspec
import typer

from runtimed.errors import RuntimedError, short_message

one_line = short_message

SocketOption = Annotated[
    str | None,
    typer.Option("--socket", help="Daemon socket (default: $RUNTIMED_SOCKET_PATH or cache dir)"),
]


UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="RUNTIMED_URL",
        show_envvar=True,
        help="A daemon over HTTP (http://host:port) instead of the socket",
    ),
]
TokenFileOption = Annotated[
    str | None,
    typer.Option(
        "--token-file",
        envvar="RUNTIMED_TOKEN_FILE",
        show_envvar=True,
        help="File holding the token for --url (default for a local URL: the cache dir's)",
    ),
]


def use_remote_daemon(url: str | None, token_file: str | None) -> None:
    """Every client this command makes talks to the daemon at ``url`` (the clients read
    RUNTIMED_URL and RUNTIMED_TOKEN_FILE), unless a command is given --socket."""
    import os

    if url:
        os.environ["RUNTIMED_URL"] = url
    if token_file:
        os.environ["RUNTIMED_TOKEN_FILE"] = token_file


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: what a script expects."""
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code)


@contextmanager
def reporting_errors() -> Iterator[None]:
    try:
        yield
    except RuntimedError as exc:
        fail(exc.message, 2 if exc.code == "not_running" else 1)
    except (ConnectionError, TimeoutError, OSError) as exc:
        fail(f"lost the connection to the daemon: {exc}")


def print_json(value: Any) -> None:
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(value), indent=2).decode() + "\n")


def version_callback(prog: str) -> Any:
    """A ``--version`` option for a typer app: prints ``<prog> <version>`` and exits."""

    def show(value: bool) -> None:
        if value:
            from runtimed.version import __version__

            typer.echo(f"{prog} {__version__}")
            raise typer.Exit()

    return typer.Option(
        "--version", callback=show, is_eager=True, help="Print the version and exit."
    )


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; an exited daemon not yet reaped by its parent counts as gone."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def stop_daemon(socket: str | None, timeout: float = 30.0) -> int:
    """Ask the daemon on ``socket`` to shut down and return its pid once the process has
    exited (and released its lock), so a new daemon may start at once. Failures end the
    command with one ``error:`` line (exit 2 when no daemon runs)."""
    from runtimed.client import DaemonClient

    with reporting_errors(), DaemonClient(socket, autostart=False) as client:
        pid = client.daemon_info().pid
        client.shutdown()
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if pid_alive(pid):
        fail(f"runtimed (pid {pid}) was asked to stop but is still running after {timeout:.0f} s")
    return pid


def one_line_warnings() -> None:
    """Warnings (say, an outdated daemon) as one `note:` line on stderr, not Python's
    file-and-line format."""
    import warnings

    def show(message: Warning | str, *args: Any, **kwargs: Any) -> None:
        print(f"note: {message}", file=sys.stderr)

    warnings.showwarning = show  # type: ignore[assignment]
