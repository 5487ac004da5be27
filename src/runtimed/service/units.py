"""The files that make the daemon start with the user's session, as pure functions.

- Linux: a systemd user unit, ``$XDG_CONFIG_HOME/systemd/user/runtimed.service``.
- macOS: a launchd agent, ``~/Library/LaunchAgents/io.runtimed.plist``.
- Windows: a Startup-folder script, ``%APPDATA%\\Microsoft\\Windows\\Start Menu\\Programs\\
  Startup\\runtimed.cmd``.

Each runs ``<this interpreter> -m runtimed run``: the absolute path of the Python that ran
`runtimed install`, so the service runs the runtimed installed there (a venv's python
keeps its venv; it is deliberately not resolved to the base interpreter).
"""

from __future__ import annotations

import os
import plistlib
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtimed.paths import (
    CACHE_DIR_ENV,
    CONFIG_DIR_ENV,
    SERVICE_NAME,
    SOCKET_PATH_ENV,
    default_cache_dir,
    systemd_unit_path,
)

LAUNCHD_LABEL = "io.runtimed"
STARTUP_SCRIPT = "runtimed.cmd"
#: What the service manager's own capture of the daemon's output is written to (the
#: daemon writes ``runtimed.log`` itself); the same file auto-start uses.
STDERR_LOG = "runtimed.stderr.log"
#: Seconds the daemon gets to stop its kernels before the manager kills what is left.
STOP_TIMEOUT_SECS = 30

#: Variables that choose the daemon's files. Set when `runtimed install` runs, they are
#: written into the unit, so the service serves the socket the clients of that shell use.
PASSED_ENV = (CACHE_DIR_ENV, CONFIG_DIR_ENV, SOCKET_PATH_ENV, "RUNTIMED_LOG")


@dataclass(frozen=True)
class ServiceSpec:
    """What a service runs: the command line, extra environment, and the cache dir (for
    the manager's log of the daemon's output)."""

    argv: tuple[str, ...]
    cache_dir: Path
    environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> ServiceSpec:
        """``sys.executable -m runtimed run`` with the RUNTIMED_* variables of this process."""
        env = {name: os.environ[name] for name in PASSED_ENV if os.environ.get(name)}
        return cls(daemon_argv(), default_cache_dir(), env)


def daemon_argv() -> tuple[str, ...]:
    """The daemon's command line: this interpreter (absolute) ``-m runtimed run``."""
    return (os.path.abspath(sys.executable), "-m", "runtimed", "run")


def systemd_wants_link() -> Path:
    """The symlink `systemctl --user enable` makes (the unit is ``WantedBy=default.target``)."""
    return systemd_unit_path().parent / "default.target.wants" / SERVICE_NAME


_SYSTEMD_PLAIN = re.compile(r"^[A-Za-z0-9_@+=:,./-]+$")


def _systemd_word(word: str, *, in_exec: bool) -> str:
    """One word of a unit-file command line or assignment list, quoted as systemd reads it:
    C-style escapes inside double quotes, ``%%`` for a literal ``%`` (specifiers) and, in
    ExecStart, ``$$`` for a literal ``$`` (variable expansion)."""
    if "\n" in word or "\r" in word:
        raise ValueError(f"cannot put a line break into a unit file: {word!r}")
    if not _SYSTEMD_PLAIN.match(word):
        word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    word = word.replace("%", "%%")
    return word.replace("$", "$$") if in_exec else word


def systemd_exec_start(argv: tuple[str, ...]) -> str:
    """The value of ``ExecStart=`` for ``argv``."""
    return " ".join(_systemd_word(arg, in_exec=True) for arg in argv)


def systemd_unit(spec: ServiceSpec) -> str:
    """The systemd user unit: restarted after a crash (not after `runt daemon stop`, which
    exits 0), and stopping it takes the kernels and env builds down with the daemon."""
    env_lines = "".join(
        f"Environment={_systemd_word(f'{name}={value}', in_exec=False)}\n"
        for name, value in sorted(spec.environment.items())
    )
    return (
        "# Written by `runtimed install`; `runtimed uninstall` removes it.\n"
        "[Unit]\n"
        "Description=runtimed: prewarmed Python environments and shared Jupyter kernels\n"
        # A daemon that keeps failing at start (say, its venv was deleted) gives up after
        # 5 tries in a minute instead of restarting forever.
        "StartLimitIntervalSec=60\n"
        "StartLimitBurst=5\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={systemd_exec_start(spec.argv)}\n"
        f"{env_lines}"
        "Restart=on-failure\n"
        "RestartSec=2\n"
        # Every process of the unit's cgroup gets the stop signal: kernels and builds too.
        "KillMode=control-group\n"
        f"TimeoutStopSec={STOP_TIMEOUT_SECS}\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


# --- launchd ---------------------------------------------------------------------------


def launchd_plist_path() -> Path:
    """``~/Library/LaunchAgents/io.runtimed.plist``."""
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"


def launchd_plist(spec: ServiceSpec) -> bytes:
    """The launchd agent: started at login, restarted when it did not exit cleanly."""
    log = str(spec.cache_dir / STDERR_LOG)
    agent: dict[str, object] = {
        "Label": LAUNCHD_LABEL,
        "ProgramArguments": list(spec.argv),
        "RunAtLoad": True,
        # Like systemd's Restart=on-failure: `runt daemon stop` (exit 0) stays stopped.
        "KeepAlive": {"SuccessfulExit": False},
        "ExitTimeOut": STOP_TIMEOUT_SECS,
        "StandardOutPath": log,
        "StandardErrorPath": log,
    }
    if spec.environment:
        agent["EnvironmentVariables"] = dict(spec.environment)
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=False)


# --- Windows ---------------------------------------------------------------------------


def windows_startup_path() -> Path:
    """``%APPDATA%\\Microsoft\\Windows\\Start Menu\\Programs\\Startup\\runtimed.cmd``."""
    appdata = os.environ.get("APPDATA")
    base = Path(appdata) if appdata else Path.home() / "AppData" / "Roaming"
    return base / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup" / STARTUP_SCRIPT


_CMD_PLAIN = re.compile(r"^[A-Za-z0-9_.:\\/-]+$")


def _cmd_word(word: str) -> str:
    """A word of a batch-file command: quoted unless plain; ``%`` doubled (batch syntax)."""
    if '"' in word or "\n" in word or "\r" in word:
        raise ValueError(f"cannot put {word!r} into a batch file")
    quoted = word if _CMD_PLAIN.match(word) else f'"{word}"'
    return quoted.replace("%", "%%")


def _cmd_set(name: str, value: str) -> str:
    """``set "NAME=value"``: the quotes keep trailing spaces and ``&`` literal."""
    if any(c in value for c in '"\r\n'):
        raise ValueError(f"cannot put {value!r} into a batch file")
    return f'set "{name}={value}"'.replace("%", "%%")


def windows_startup_command(argv: tuple[str, ...]) -> str:
    """The line that starts the daemon: a minimised console, so logon is not blocked."""
    program = f'"{argv[0]}"'.replace("%", "%%")  # always quoted: "Program Files"
    return " ".join(['start "runtimed" /min', program, *map(_cmd_word, argv[1:])])


def windows_startup_script(spec: ServiceSpec) -> str:
    """The Startup-folder script (CRLF line ends, as cmd.exe expects)."""
    lines = [
        "@echo off",
        "rem Starts runtimed at logon. Written by `runtimed install`; "
        "`runtimed uninstall` removes it.",
        *(_cmd_set(name, value) for name, value in sorted(spec.environment.items())),
        windows_startup_command(spec.argv),
    ]
    return "\r\n".join(lines) + "\r\n"
