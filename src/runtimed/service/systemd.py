"""The systemd user unit (Linux)."""

from __future__ import annotations

import shutil
from pathlib import Path

from runtimed.paths import SERVICE_NAME, systemd_unit_path
from runtimed.service.service_manager import (
    Report,
    ServiceState,
    ToolResult,
    daemon_answers,
    run_tool,
)
from runtimed.service.units import (
    ServiceSpec,
    systemd_unit,
    systemd_wants_link,
)


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
        if state in ("active", "activating", "reloading") or daemon_answers():
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
