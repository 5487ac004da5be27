"""The launchd agent (macOS)."""

from __future__ import annotations

import shutil
from pathlib import Path

from runtimed.paths import ensure_private_dir
from runtimed.service.service_manager import (
    Report,
    ServiceState,
    ToolResult,
    daemon_answers,
    run_tool,
)
from runtimed.service.units import LAUNCHD_LABEL, ServiceSpec, launchd_plist, launchd_plist_path


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
        if self._loaded().ok or daemon_answers():
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
