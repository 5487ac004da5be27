"""Errors raised to users of the runtimed API."""

from __future__ import annotations


class RuntimedError(Exception):
    """An error a person can act on: the message says what went wrong and what to do.

    ``code`` is a short machine-readable tag (``"not_running"``, ``"not_found"``, ...).
    """

    def __init__(self, message: str, code: str = "error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class DaemonNotRunningError(RuntimedError):
    """No daemon answers on the socket."""

    def __init__(self, socket_path: str) -> None:
        super().__init__(
            f"runtimed is not running (no daemon at {socket_path}); start it with `runtimed run`",
            code="not_running",
        )


class ProtocolError(RuntimedError):
    """A peer sent bytes that do not follow the wire protocol."""

    def __init__(self, message: str, code: str = "protocol_error") -> None:
        super().__init__(message, code)


def short_message(message: str, width: int = 60) -> str:
    """The last non-empty line of a (tool's) message, cut at a word to ``width``."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    line = lines[-1] if lines else ""
    if len(line) <= width:
        return line
    cut = line[: width - 1].rsplit(" ", 1)[0] or line[: width - 1]
    return cut.rstrip(" ,;:") + "…"
