"""`runtimed install` / `uninstall`: write (or remove) this platform's service file and
tell its service manager, when one is reachable; otherwise say what to do by hand.

Nothing here restarts a daemon that is already running: that would kill the user's
kernels. A reinstall over a running daemon enables the new file and says how to switch.
"""

from __future__ import annotations

import sys

from runtimed.errors import RuntimedError
from runtimed.files import atomic_write
from runtimed.service.launchd import LaunchdAgent
from runtimed.service.service_manager import Report, ServiceManager, ServiceState
from runtimed.service.startup_folder import StartupFolder
from runtimed.service.systemd import SystemdUser
from runtimed.service.units import ServiceSpec

__all__ = [
    "LaunchdAgent",
    "Report",
    "ServiceManager",
    "ServiceState",
    "StartupFolder",
    "SystemdUser",
    "current_manager",
    "install",
    "uninstall",
]


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
