"""What both CLIs share: socket or URL options, error reporting, JSON and text output.

Every `runt`/`runtimed` command imports this module, so it imports only the standard
library pieces a command needs anyway (no msgspec, rich or typing at import).
"""

from __future__ import annotations

import os
import sys
import time

from runtimed.cli.command_line import flag, opt
from runtimed.errors import RuntimedError, short_message

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import TracebackType
    from typing import Any, NoReturn

one_line = short_message

SOCKET = opt("--socket", help="Daemon socket (default: $RUNTIMED_SOCKET_PATH or cache dir)")
JSON = flag("--json", help="Print JSON instead of text")
URL = opt(
    "--url",
    env="RUNTIMED_URL",
    help="A daemon over HTTP (http://host:port) instead of the socket",
)
TOKEN_FILE = opt(
    "--token-file",
    env="RUNTIMED_TOKEN_FILE",
    help="File holding the token for --url (default for a local URL: the cache dir's)",
)


def use_remote_daemon(url: str | None = None, token_file: str | None = None) -> None:
    """Every client this command makes talks to the daemon at ``url`` (the clients read
    RUNTIMED_URL and RUNTIMED_TOKEN_FILE), unless a command is given --socket."""
    if url:
        os.environ["RUNTIMED_URL"] = url
    if token_file:
        os.environ["RUNTIMED_TOKEN_FILE"] = token_file


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit: what a script expects."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


def echo(text: str = "", err: bool = False) -> None:
    print(text, file=sys.stderr if err else sys.stdout)


_COLOURS = {"red": 31, "green": 32, "yellow": 33, "cyan": 36, "dim": 2, "bold": 1}


def colour_on(stream: Any = None) -> bool:
    """ANSI colours only on a terminal, and never with NO_COLOR set."""
    stream = stream or sys.stdout
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


def styled(text: str, style: str | None, on: bool | None = None) -> str:
    """``text`` in ``style`` (red, green, yellow, cyan, dim, bold) when colours are on."""
    code = _COLOURS.get(style or "")
    if code is None or not (colour_on() if on is None else on):
        return text
    return f"\033[{code}m{text}\033[0m"


class reporting_errors:
    """Daemon and connection errors end the command with one ``error:`` line (exit 2
    when no daemon runs)."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, t: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(exc, RuntimedError):
            fail(exc.message, 2 if exc.code == "not_running" else 1)
        if isinstance(exc, ConnectionError | TimeoutError | OSError):
            fail(f"lost the connection to the daemon: {exc}")


def _to_builtins(value: Any) -> Any:
    """What json cannot encode by itself (msgspec Structs, dataclasses), as plain values."""
    import msgspec

    return msgspec.to_builtins(value)


def print_json(value: Any) -> None:
    """``value`` (JSON values, Structs, dataclasses) as indented JSON."""
    import json

    text = json.dumps(value, indent=2, ensure_ascii=False, default=_to_builtins)
    sys.stdout.write(text + "\n")


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
