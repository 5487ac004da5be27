"""The Startup folder entry (Windows), which no manager supervises."""

from __future__ import annotations

from pathlib import Path

from runtimed.service.service_manager import Report, ServiceState
from runtimed.service.units import ServiceSpec, windows_startup_path, windows_startup_script


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
