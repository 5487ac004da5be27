"""`runtimed install` / `uninstall`: write (or remove) this platform's service file and
tell its service manager, when one is reachable; otherwise say what to do by hand.

Nothing here restarts a daemon that is already running: that would kill the user's
kernels. A reinstall over a running daemon enables the new file and says how to switch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from runtimed.errors import RuntimedError
from runtimed.files import atomic_write
from runtimed.paths import default_socket_path, ensure_private_dir
from runtimed.service.units import (
    LAUNCHD_LABEL,
    SERVICE_NAME,
    ServiceSpec,
    launchd_plist,
    launchd_plist_path,
    systemd_unit,
    systemd_unit_path,
    systemd_wants_link,
    windows_startup_path,
    windows_startup_script,
)

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


def _daemon_answers() -> bool:
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


class SystemdUser:
    """A systemd user unit, enabled for ``default.target``."""

    name = "systemd user unit"

    def unit_path(self) -> Path:
        return systemd_unit_path()

    def plan(self) -> str:
        return f"systemctl --user daemon-reload && systemctl --user enable --now {SERVICE_NAME}"

    def render(self, spec: ServiceSpec) -> bytes:
        return systemd_unit(spec).encode()

    def leftovers(self) -> list[Path]:
        return [systemd_wants_link()]

    def _systemctl(self, *args: str) -> ToolResult:
        return run_tool(["systemctl", "--user", *args])

    def active_state(self) -> tuple[str | None, str]:
        """The unit's ActiveState, or None and the reason it cannot be had."""
        if shutil.which("systemctl") is None:
            return None, "systemctl not found"
        shown = self._systemctl("show", "--property=ActiveState", "--value", SERVICE_NAME)
        value = shown.out.strip()
        return (value, "") if shown.ok and value else (None, shown.reason)

    def activate(self, spec: ServiceSpec, report: Report) -> None:
        if shutil.which("systemctl") is None:
            report.warning(
                "systemctl not found: this system does not seem to use systemd; start the "
                "daemon from your session's start-up files with `runtimed run`"
            )
            return
        reload = self._systemctl("daemon-reload")
        if not reload.ok:
            self._unreachable(report, reload)
            return
        state, _ = self.active_state()
        if state in ("active", "activating", "reloading") or _daemon_answers():
            self._enable_only(report, state)
            return
        started = self._systemctl("enable", "--now", SERVICE_NAME)
        if not started.ok:
            report.error(
                f"`systemctl --user enable --now {SERVICE_NAME}` failed: {started.reason}; "
                "see `journalctl --user -u runtimed` and `runt daemon logs`"
            )
            return
        report.info(f"enabled and started {SERVICE_NAME}: `runt daemon status` shows it")

    def _unreachable(self, report: Report, reload: ToolResult) -> None:
        # `enable` works without a manager (it only makes the wants symlink), so the
        # service still starts with the next session that has one.
        enabled = self._systemctl("enable", SERVICE_NAME).ok
        report.warning(
            f"the systemd user manager is not reachable ({reload.reason}): "
            + ("enabled the unit for your next login, " if enabled else "")
            + "but nothing was started"
        )
        report.info(
            "start it by hand: `systemctl --user daemon-reload && systemctl --user enable "
            "--now runtimed` in a login session (`loginctl enable-linger $USER` keeps it "
            "running without one), or run `runt daemon start` / `runtimed run` now"
        )

    def _enable_only(self, report: Report, state: str | None) -> None:
        enabled = self._systemctl("enable", SERVICE_NAME)
        if not enabled.ok:
            report.error(f"`systemctl --user enable {SERVICE_NAME}` failed: {enabled.reason}")
            return
        who = "the service is" if state == "active" else "a daemon is already"
        report.info(
            f"enabled {SERVICE_NAME}; {who} running, left as it is (its kernels keep "
            "running): `runt daemon restart` switches to the new unit"
        )

    def deactivate(self, report: Report) -> None:
        if shutil.which("systemctl") is None:
            return
        stopped = self._systemctl("disable", "--now", SERVICE_NAME)
        if stopped.ok:
            report.info(f"stopped and disabled {SERVICE_NAME}")
            return
        # No manager to stop it: `disable` still removes the symlink offline.
        disabled = self._systemctl("disable", SERVICE_NAME).ok
        report.warning(
            f"could not stop {SERVICE_NAME} ({stopped.reason})"
            + ("; disabled it" if disabled else "")
            + "; a daemon you started yourself keeps running (`runt daemon stop`)"
        )

    def forget(self) -> None:
        """After the unit is gone, so the manager forgets it (when there is one)."""
        if shutil.which("systemctl") is not None:
            self._systemctl("daemon-reload")

    def state(self) -> ServiceState:
        path = self.unit_path()
        if not path.exists():
            return ServiceState(self.name, str(path), False, None, None)
        active, detail = self.active_state()
        enabled = systemd_wants_link().is_symlink() or systemd_wants_link().exists()
        return ServiceState(self.name, str(path), True, enabled, active, detail)


class LaunchdAgent:
    """A launchd agent in ~/Library/LaunchAgents (loaded with `launchctl load -w`)."""

    name = "launchd agent"

    def unit_path(self) -> Path:
        return launchd_plist_path()

    def plan(self) -> str:
        return f"launchctl load -w {self.unit_path()}"

    def render(self, spec: ServiceSpec) -> bytes:
        return launchd_plist(spec)

    def leftovers(self) -> list[Path]:
        return []

    def _loaded(self) -> ToolResult:
        return run_tool(["launchctl", "list", LAUNCHD_LABEL])

    def activate(self, spec: ServiceSpec, report: Report) -> None:
        path = self.unit_path()
        # launchd opens the log file the plist names, but does not create its directory.
        ensure_private_dir(spec.cache_dir, tighten=False)
        if shutil.which("launchctl") is None:
            report.warning(f"launchctl not found: load the agent with `launchctl load -w {path}`")
            return
        if self._loaded().ok or _daemon_answers():
            report.info(
                "runtimed is already running, left as it is (its kernels keep running); "
                f"the agent starts it from your next login, or now with `runtimed stop && "
                f"launchctl unload {path}; launchctl load -w {path}`"
            )
            return
        loaded = run_tool(["launchctl", "load", "-w", str(path)])
        if not loaded.ok:
            report.error(f"`launchctl load -w {path}` failed: {loaded.reason}")
            return
        report.info(f"loaded {LAUNCHD_LABEL}: runtimed starts now and with every login")

    def deactivate(self, report: Report) -> None:
        if shutil.which("launchctl") is None or not self._loaded().ok:
            return
        unloaded = run_tool(["launchctl", "unload", "-w", str(self.unit_path())])
        if unloaded.ok:
            report.info(f"unloaded {LAUNCHD_LABEL} (the daemon it ran has stopped)")
        else:
            report.warning(f"could not unload {LAUNCHD_LABEL}: {unloaded.reason}")

    def forget(self) -> None:
        pass

    def state(self) -> ServiceState:
        path = self.unit_path()
        if not path.exists():
            return ServiceState(self.name, str(path), False, None, None)
        if shutil.which("launchctl") is None:
            return ServiceState(self.name, str(path), True, None, None, "launchctl not found")
        listed = self._loaded()
        # `launchctl list <label>` shows a "PID" entry only while the agent's process runs.
        active = ("active" if '"PID"' in listed.out else "inactive") if listed.ok else "not loaded"
        return ServiceState(self.name, str(path), True, listed.ok, active)


class StartupFolder:
    """A script in the Windows Startup folder: run at every logon, no manager to ask."""

    name = "Startup-folder entry"

    def unit_path(self) -> Path:
        return windows_startup_path()

    def plan(self) -> str:
        return "nothing: Windows runs the Startup folder at each logon"

    def render(self, spec: ServiceSpec) -> bytes:
        return windows_startup_script(spec).encode()

    def leftovers(self) -> list[Path]:
        return []

    def activate(self, spec: ServiceSpec, report: Report) -> None:
        report.info("it runs at your next logon; start the daemon now with `runt daemon start`")

    def deactivate(self, report: Report) -> None:
        pass

    def forget(self) -> None:
        pass  # Windows reads the folder at each logon

    def state(self) -> ServiceState:
        path = self.unit_path()
        return ServiceState(self.name, str(path), path.exists(), None, None, "no manager to ask")


def current_manager() -> ServiceManager:
    """The service manager of this platform."""
    if sys.platform.startswith("linux"):
        return SystemdUser()
    if sys.platform == "darwin":
        return LaunchdAgent()
    if sys.platform == "win32":
        return StartupFolder()
    raise RuntimedError(
        f"`runtimed install` knows systemd (Linux), launchd (macOS) and the Windows Startup "
        f"folder, not {sys.platform}: start `runtimed run` from your session's start-up files",
        "unsupported_platform",
    )


def render(manager: ServiceManager, spec: ServiceSpec) -> bytes:
    """The file ``manager`` would get; a path it cannot express is a RuntimedError."""
    try:
        return manager.render(spec)
    except ValueError as exc:
        raise RuntimedError(f"cannot write the service file: {exc}", "bad_path") from None


def install(
    manager: ServiceManager,
    spec: ServiceSpec,
    dry_run: bool = False,
) -> Report:
    """Write the service file and enable/start it where the manager is reachable."""
    report = Report()
    path, content = manager.unit_path(), render(manager, spec)
    if dry_run:
        report.info(f"would write {path} ({manager.name}), nothing written:")
        report.info(content.decode().replace("\r\n", "\n").rstrip("\n"))
        report.info(f"then: {manager.plan()}")
        return report
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, content, mode=0o644)
    except OSError as exc:
        report.error(f"cannot write {path}: {exc.strerror or exc}")
        return report
    report.info(f"wrote {path} ({manager.name}: `{' '.join(spec.argv)}`)")
    manager.activate(spec, report)
    return report


def uninstall(manager: ServiceManager) -> Report:
    """Stop and disable the service, remove its file; nothing installed is no error."""
    report = Report()
    path = manager.unit_path()
    files = [p for p in (path, *manager.leftovers()) if p.is_symlink() or p.exists()]
    if not files:
        report.info(f"not installed: nothing at {path}")
        return report
    if path.exists():
        manager.deactivate(report)
    for stale in (path, *manager.leftovers()):
        if stale.is_symlink() or stale.exists():
            try:
                stale.unlink()
            except OSError as exc:
                report.error(f"cannot remove {stale}: {exc.strerror or exc}")
                continue
            report.info(f"removed {stale}")
    manager.forget()
    return report


def is_current(manager: ServiceManager, spec: ServiceSpec) -> bool:
    """Whether the installed file is what `runtimed install` would write now (same
    interpreter, same RUNTIMED_* environment)."""
    try:
        return manager.unit_path().read_bytes() == render(manager, spec)
    except (OSError, RuntimedError):
        return False
