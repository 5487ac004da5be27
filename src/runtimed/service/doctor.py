"""`runt daemon doctor`: checks of a runtimed installation, each ok / warn / fail with one
line of what to do, and the repairs ``--fix`` can make (stale files only).

``fail`` means something keeps runtimed from working until a person acts; ``warn`` is
worth knowing but runtimed copes (a stale socket is replaced by the next daemon, an
unreachable conda channel only stops conda envs).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from runtimed.paths import RuntimePaths, default_config_dir
from runtimed.service import cache

if TYPE_CHECKING:
    from runtimed.protocol.control import DaemonInfo

Status = Literal["ok", "warn", "fail"]

#: Bound on the whole conda channel check (every channel is probed at once).
CHANNEL_TIMEOUT_SECS = 3.0
#: Bound on asking a daemon that answers the socket (a healthy one answers in ms).
DAEMON_TIMEOUT_SECS = 5.0
DISK_FAIL_BYTES = 500 * 10**6
DISK_WARN_BYTES = 2 * 10**9


@dataclass
class Check:
    """One check's verdict: ``message`` says what was found, ``hint`` what to do."""

    name: str
    status: Status
    message: str
    hint: str = ""
    fixed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Facts:
    """What the checks look at: the daemon's files, and the daemon if one answers."""

    paths: RuntimePaths
    package_version: str
    info: DaemonInfo | None = None
    #: Why a daemon that accepts connections could not be asked (None: it could, or none).
    error: str | None = None


def gather(socket: str | Path | None) -> Facts:
    """Ask the daemon on ``socket`` who it is (never starting one)."""
    from runtimed.client import DaemonClient
    from runtimed.client.core import OutdatedDaemonWarning
    from runtimed.errors import DaemonNotRunningError, RuntimedError
    from runtimed.version import __version__

    paths = cache.paths_for_socket(socket)
    # Asked straight away rather than probed first: a bare connect-and-close probe shows
    # up in the daemon's log as a client with a bad preamble.
    try:
        with (
            warnings.catch_warnings(),
            DaemonClient(paths.socket_path, timeout=DAEMON_TIMEOUT_SECS, autostart=False) as client,
        ):
            # `status` and `doctor` report a version mismatch in their own words.
            warnings.simplefilter("ignore", OutdatedDaemonWarning)
            info = client.daemon_info()
    except DaemonNotRunningError:
        return Facts(paths, __version__)
    except (RuntimedError, OSError) as exc:
        message = exc.message if isinstance(exc, RuntimedError) else str(exc)
        return Facts(paths, __version__, error=message)
    # The daemon knows its cache dir best (it may have been started with --cache-dir).
    own = RuntimePaths(Path(info.cache_dir), paths.socket_path)
    return Facts(own, __version__, info)


def check_socket(facts: Facts, lock: cache.LockState) -> Check:
    sock = facts.paths.socket_path
    if facts.info is not None:
        who = f"runtimed {facts.info.version} (pid {facts.info.pid})"
        return Check("socket", "ok", f"{who} answers on {sock}")
    if facts.error is not None:
        return Check(
            "socket",
            "fail",
            f"something accepts connections on {sock} but does not answer as runtimed: "
            f"{facts.error}",
            "see `runt daemon logs`; `runt daemon restart` if it is a stuck daemon",
        )
    if lock.holder is not None:
        return Check(
            "socket",
            "fail",
            f"runtimed pid {lock.holder} holds the lock of {facts.paths.cache_dir} but nothing "
            f"answers on {sock}",
            f"see `runt daemon logs`; if it is stuck, `kill {lock.holder}` and "
            "`runt daemon start` (or it serves another --socket)",
        )
    return Check(
        "socket",
        "warn",
        f"runtimed is not running (nothing answers on {sock})",
        "`runt daemon start` (clients also start it when they need it)",
    )


def check_lock(facts: Facts, lock: cache.LockState) -> Check:
    where = facts.paths.lock_file
    if lock.holder is None:
        left = f"; pid {lock.recorded} recorded in it has exited" if lock.recorded else ""
        return Check("lock", "ok", f"{where} is free{left} (the next daemon takes it)")
    if facts.info is None or facts.info.pid == lock.holder:
        return Check("lock", "ok", f"{where} is held by runtimed pid {lock.holder}")
    return Check(
        "lock",
        "warn",
        f"{where} is held by pid {lock.holder}, not by the daemon answering the socket "
        f"(pid {facts.info.pid})",
        "two daemons on different cache dirs: check --socket and RUNTIMED_CACHE_DIR",
    )


def _describe_stale(found: cache.StaleFiles) -> str:
    parts = []
    if found.socket is not None:
        parts.append(f"stale socket {found.socket} (no daemon listens)")
    if found.daemon_json is not None:
        pid = found.daemon_json_pid
        parts.append(f"{found.daemon_json} of " + (f"exited pid {pid}" if pid else "no pid"))
    if found.temp_files:
        parts.append(f"{len(found.temp_files)} leftover temp file(s)")
    return "; ".join(parts)


def check_stale(facts: Facts, lock: cache.LockState, fix: bool) -> Check:
    found = cache.stale_files(facts.paths, lock)
    if found.empty:
        return Check("stale files", "ok", "no stale socket, daemon.json or temp files")
    if fix:
        done = cache.remove_stale(facts.paths, found)
        return Check("stale files", "ok", "fixed: " + _describe_stale(found), fixed=done)
    return Check(
        "stale files",
        "warn",
        _describe_stale(found),
        "harmless (the next daemon replaces them); `runt daemon doctor --fix` removes them",
    )


def check_service() -> Check:
    from runtimed.errors import RuntimedError
    from runtimed.service.install import current_manager, is_current
    from runtimed.service.units import ServiceSpec

    try:
        manager = current_manager()
    except RuntimedError as exc:
        return Check("service", "ok", exc.message)
    state = manager.state()
    if not state.installed:
        return Check(
            "service", "ok", "not installed", "optional: `runtimed install` starts it at login"
        )
    if not is_current(manager, ServiceSpec.current()):
        return Check(
            "service",
            "warn",
            f"{state.path} does not run this runtimed ({ServiceSpec.current().argv[0]}) "
            "with this environment",
            "`runtimed install` rewrites it",
        )
    if state.active is None:
        return Check(
            "service",
            "warn",
            f"installed ({state.path}); its state is unknown: {state.detail}",
            "ask in a login session: `systemctl --user status runtimed`",
        )
    if state.active == "failed":
        return Check(
            "service",
            "fail",
            f"{state.manager} failed ({state.path})",
            "see `journalctl --user -u runtimed` and `runt daemon logs`, then "
            "`systemctl --user restart runtimed`",
        )
    return Check("service", "ok", f"{state.manager} installed, {state.active}")


def check_uv() -> Check:
    try:
        import uv

        binary = uv.find_uv_bin()
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=True
        )
    except (ImportError, OSError, subprocess.SubprocessError) as exc:
        return Check(
            "uv",
            "fail",
            f"the uv binary does not run: {exc}",
            "reinstall runtimed (`pip install --force-reinstall uv`): uv envs cannot be built",
        )
    return Check("uv", "ok", f"{done.stdout.strip()} ({binary})")


def conda_settings(socket: Path, running: bool) -> tuple[list[str], int]:
    """The conda channels and pool size in effect: the daemon's when one runs (its
    command-line overrides count), else the settings file's, else the defaults."""
    from runtimed.documents.settings import DEFAULTS

    values: dict[str, Any] = {}
    if running:
        from runtimed.client.settings_client import SettingsClient
        from runtimed.errors import RuntimedError

        try:
            with SettingsClient(socket, timeout=DAEMON_TIMEOUT_SECS, autostart=False) as client:
                values = client.get("conda") or {}
        except (RuntimedError, OSError):
            values = {}
    if not values:
        try:
            raw = json.loads((default_config_dir() / "settings.json").read_text())
            values = raw.get("conda", {}) if isinstance(raw, dict) else {}
        except (OSError, ValueError):
            values = {}
    channels = values.get("channels") or DEFAULTS["conda"]["channels"]
    size = values.get("pool_size", DEFAULTS["conda"]["pool_size"])
    return [str(c) for c in channels], int(size)


def channel_probe(channel: str) -> str:
    """What to look at for ``channel``: a URL for HTTP channels (names are conda.anaconda.org
    channels, as rattler resolves them), a directory for file:// channels."""
    if "://" not in channel:
        return f"https://conda.anaconda.org/{channel}/noarch/repodata.json"
    if channel.startswith("file://"):
        return channel
    return channel.rstrip("/") + "/noarch/repodata.json"


def probe_channel(channel: str, timeout: float) -> str | None:
    """None when ``channel`` is reachable, else why not."""
    target = channel_probe(channel)
    if target.startswith("file://"):
        folder = Path(urllib.parse.urlparse(target).path)
        return None if folder.is_dir() else f"{folder} is not a directory"
    try:
        request = urllib.request.Request(target, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        # The server answered: reachable. Only "no such channel" is worth a word.
        return f"{target}: HTTP {exc.code}" if exc.code == 404 else None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def probe_channels(channels: list[str], timeout: float = CHANNEL_TIMEOUT_SECS) -> dict[str, str]:
    """Probe every channel at once; returns the unreachable ones with the reason. Name
    resolution is not bounded by a socket timeout, so each probe runs in a daemon thread
    and whatever has not answered by the deadline counts as unreachable."""
    results: dict[str, str | None] = {}

    def run(channel: str) -> None:
        results[channel] = probe_channel(channel, timeout)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in channels]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    failed = {c: r for c, r in results.items() if r is not None}
    for channel in channels:
        if channel not in results:
            failed[channel] = f"no answer within {timeout:.0f} s"
    return failed


def check_conda(facts: Facts) -> Check:
    channels, pool_size = conda_settings(facts.paths.socket_path, facts.info is not None)
    failed = probe_channels(channels)
    if not failed:
        return Check("conda channels", "ok", f"reachable: {', '.join(channels)}")
    detail = "; ".join(f"{c}: {reason}" for c, reason in failed.items())
    effect = "conda envs cannot be built" if pool_size else "the conda pool is off anyway"
    return Check(
        "conda channels",
        "warn",
        f"unreachable: {detail} ({effect}; uv envs are not affected)",
        "check the network or proxy, or set a mirror: `runt config set conda.channels "
        "'[\"https://mirror.example/conda-forge\"]'`",
    )


def check_disk(facts: Facts) -> Check:
    free = cache.free_bytes(facts.paths.cache_dir)
    where = f"{cache.human_bytes(free)} free in {facts.paths.cache_dir}"
    if free < DISK_FAIL_BYTES:
        return Check(
            "disk",
            "fail",
            where,
            "env builds will fail: free space, or `runt pool flush` and remove old inline-envs",
        )
    if free < DISK_WARN_BYTES:
        return Check("disk", "warn", where, "an env takes a few hundred MB: free some space")
    return Check("disk", "ok", where)


def check_version(facts: Facts) -> Check:
    from runtimed.client.core import version_note

    if facts.info is None:
        return Check("version", "ok", f"runtimed {facts.package_version} (no daemon to compare)")
    if version_note(facts.info.version, facts.package_version) is None:
        return Check("version", "ok", f"package and daemon are runtimed {facts.info.version}")
    return Check(
        "version",
        "warn",
        f"runtimed {facts.package_version} is installed but the daemon runs {facts.info.version}",
        "`runt daemon restart` switches to the installed version (open notebooks are kept)",
    )


def run_checks(facts: Facts, fix: bool = False) -> list[Check]:
    """Every check, in the order a person would look."""
    lock = cache.lock_state(facts.paths)
    return [
        check_socket(facts, lock),
        check_lock(facts, lock),
        check_stale(facts, lock, fix),
        check_service(),
        check_uv(),
        check_conda(facts),
        check_disk(facts),
        check_version(facts),
    ]
