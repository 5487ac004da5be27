"""What every platform's service manager offers `runtimed install`: the ServiceManager
Protocol, its state, the report shown to the user, and running the manager's tools."""

from __future__ import annotations

import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from runtimed.errors import RuntimedError
from runtimed.paths import default_socket_path
from runtimed.service.units import ServiceSpec

TOOL_TIMEOUT_SECS = 30.0

Level = Literal["info", "warning", "error"]


@dataclass
class Report:
    """What install/uninstall did, line by line, for the person who ran it."""

    lines: list[tuple[Level, str]] = field(default_factory=list)

    def info(self, text: str) -> None:
        self.lines.append(("info", text))

    def warning(self, text: str) -> None:
        self.lines.append(("warning", text))

    def error(self, text: str) -> None:
        self.lines.append(("error", text))

    @property
    def failed(self) -> bool:
        return any(level == "error" for level, _ in self.lines)


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one service-manager command."""

    ok: bool
    out: str
    err: str

    @property
    def reason(self) -> str:
        """The tool's complaint, one line (for messages)."""
        lines = [line.strip() for line in self.err.splitlines() if line.strip()]
        return lines[-1] if lines else "no output"


def run_tool(argv: list[str], timeout: float = TOOL_TIMEOUT_SECS) -> ToolResult:
    """Run ``argv``; a missing program or a hang is a failed result, never an exception."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        return ToolResult(False, "", f"{argv[0]} not found")
    except subprocess.TimeoutExpired:
        return ToolResult(False, "", f"`{' '.join(argv)}` did not finish in {timeout:.0f} s")
    except OSError as exc:
        return ToolResult(False, "", f"{argv[0]}: {exc}")
    return ToolResult(done.returncode == 0, done.stdout, done.stderr)


@dataclass(frozen=True)
class ServiceState:
    """Whether the service file is there and what its manager says of it.

    ``active`` is the manager's word ("active", "inactive", "failed", ...), or None when
    it cannot be asked (no manager reachable, or none exists, as on Windows)."""

    manager: str
    path: str
    installed: bool
    enabled: bool | None
    active: str | None
    detail: str = ""

    def describe(self) -> str:
        """One line for `runt daemon status`."""
        if not self.installed:
            return "not installed (`runtimed install` starts runtimed with your session)"
        parts = [f"{self.manager} installed"]
        if self.enabled is not None:
            parts.append("enabled" if self.enabled else "not enabled")
        parts.append(self.active if self.active else f"state unknown ({self.detail})")
        return ", ".join(parts) + f": {self.path}"


class ServiceManager(Protocol):
    """One platform's way of starting the daemon with the user's session."""

    name: str

    def unit_path(self) -> Path: ...

    def plan(self) -> str:
        """What `install` does after writing the file (for --dry-run)."""
        ...

    def render(self, spec: ServiceSpec) -> bytes: ...

    def activate(self, spec: ServiceSpec, report: Report) -> None:
        """Enable and start the written file, or say why not and what to do."""

    def deactivate(self, report: Report) -> None:
        """Stop and disable the service (before its file is removed)."""

    def forget(self) -> None:
        """Tell the manager the file is gone."""

    def leftovers(self) -> list[Path]:
        """Files besides ``unit_path`` that ``deactivate`` may leave behind."""
        ...

    def state(self) -> ServiceState: ...


def daemon_answers() -> bool:
    """Whether a daemon serves the socket the service would use (asked with a ping: a bare
    connect-and-close probe would show up in its log as a bad client)."""
    from runtimed.client import DaemonClient
    from runtimed.client.core import OutdatedDaemonWarning

    try:
        with (
            warnings.catch_warnings(),
            DaemonClient(default_socket_path(), timeout=5, autostart=False) as client,
        ):
            warnings.simplefilter("ignore", OutdatedDaemonWarning)
            client.ping()
    except (RuntimedError, OSError):
        return False
    return True
