"""`runt daemon status|start|stop|restart|logs|doctor`: look after the daemon itself.

Only `start` and `restart` ever start a daemon; everything else asks with auto-start off,
so looking at a stopped daemon does not bring it back. Heavy imports wait until a
command runs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from runtimed.cli.common import (
    echo,
    fail,
    one_line,
    print_json,
    reporting_errors,
    stop_daemon,
    styled,
)

if TYPE_CHECKING:
    from runtimed.protocol.control import DaemonInfo, StatusReply
    from runtimed.service.doctor import Check, Facts
    from runtimed.service.install import ServiceState


def _facts(socket: str | None) -> Facts:
    from runtimed.service.doctor import gather

    return gather(socket)


def _not_running(facts: Facts) -> str:
    return (
        f"runtimed is not running (nothing answers on {facts.paths.socket_path}); "
        "start it with `runt daemon start`"
    )


def _service_state() -> ServiceState | None:
    """The user service's state, None where runtimed knows no service manager."""
    from runtimed.errors import RuntimedError
    from runtimed.service.install import current_manager

    try:
        return current_manager().state()
    except RuntimedError:
        return None


def _uptime(secs: float) -> str:
    secs = max(int(secs), 0)
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


# --- status ----------------------------------------------------------------------------


def status(socket: str | None, json: bool) -> None:
    """Version, pid, uptime, socket, service, pools, rooms and disk use.

    Exit 2 when the daemon is not running; this never starts it."""
    from runtimed.client import DaemonClient
    from runtimed.service.cache import disk_use

    facts = _facts(socket)
    if facts.info is None:
        _report_not_running(facts, json)
    with reporting_errors(), DaemonClient(facts.paths.socket_path, autostart=False) as client:
        pools = client.status()
    service, disk = _service_state(), disk_use(facts.paths.cache_dir)
    if json:
        print_json(_status_json(facts, facts.info, pools, service, disk))
        return
    _print_status(facts, facts.info, pools, service, disk)


def _report_not_running(facts: Facts, json: bool) -> NoReturn:
    if facts.error is not None:
        fail(f"the daemon on {facts.paths.socket_path} does not answer: {facts.error}")
    if json:
        print_json(
            {
                "running": False,
                "socket": str(facts.paths.socket_path),
                "error": _not_running(facts),
                "service": _service_state(),
            }
        )
        raise SystemExit(2)
    fail(_not_running(facts), 2)


def _status_json(
    facts: Facts,
    info: DaemonInfo,
    pools: StatusReply,
    service: ServiceState | None,
    disk: dict[str, int],
) -> dict[str, Any]:
    from runtimed.client.core import version_note

    return {
        "running": True,
        "version": info.version,
        "package_version": facts.package_version,
        "version_note": version_note(info.version, facts.package_version),
        "pid": info.pid,
        "uptime_secs": time.time() - info.started_at,
        "socket": info.socket_path,
        "cache_dir": info.cache_dir,
        "log_file": str(facts.paths.log_file),
        "blob_port": info.blob_port,
        "service": service,
        "pools": pools.pools,
        "kernels": pools.kernels,
        "rooms": pools.rooms,
        "disk_bytes": disk,
    }


def _print_status(
    facts: Facts,
    info: DaemonInfo,
    pools: StatusReply,
    service: ServiceState | None,
    disk: dict[str, int],
) -> None:
    from runtimed.client.core import version_note
    from runtimed.service.cache import human_bytes

    up = _uptime(time.time() - info.started_at)
    echo(f"runtimed {info.version} running, pid {info.pid}, up {up}")
    echo(f"socket:     {info.socket_path}")
    echo(f"cache dir:  {info.cache_dir}")
    echo(f"log:        {facts.paths.log_file}  (`runt daemon logs -f`)")
    echo(f"service:    {service.describe() if service else 'none known for this platform'}")
    for name, pool in pools.pools.items():
        line = f"{pool.available} ready, {pool.warming} warming, target {pool.target}"
        if pool.error:
            line += f"  (error: {one_line(pool.error.message, 60)})"
        echo(f"{name + ' pool:':<11} {line}")
    kernels = pools.kernels
    if kernels is not None:
        line = f"{kernels.available} ready, {kernels.warming} warming, target {kernels.target}"
        error = f"  (error: {one_line(kernels.error, 60)})" if kernels.error else ""
        echo(f"kernels:    {line} ({kernels.env_source}){error}")
    echo(f"rooms:      {pools.rooms} open (`runt rooms`)")
    echo("disk:       " + ", ".join(f"{part} {human_bytes(n)}" for part, n in disk.items()))
    note = version_note(info.version, facts.package_version)
    if note:
        echo(styled(f"note: {note}", "yellow"))


# --- start / stop / restart ------------------------------------------------------------


@contextmanager
def _autostart_allowed() -> Iterator[None]:
    """RUNTIMED_NO_AUTOSTART keeps clients from starting a daemon on their own; an
    explicit `runt daemon start` is the user asking, so it is lifted for that call."""
    from runtimed.client.autostart import NO_AUTOSTART_ENV

    saved = os.environ.pop(NO_AUTOSTART_ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[NO_AUTOSTART_ENV] = saved


def _start(socket: str | None) -> None:
    from runtimed.client.autostart import ensure_daemon

    before = _facts(socket)
    if before.info is not None:
        echo(
            f"runtimed {before.info.version} is already running (pid {before.info.pid}) "
            f"on {before.paths.socket_path}"
        )
        return
    if before.error is not None:
        fail(f"the daemon on {before.paths.socket_path} does not answer: {before.error}")
    with reporting_errors(), _autostart_allowed():
        ensure_daemon(before.paths.socket_path)
    after = _facts(socket)
    if after.info is None:
        fail(
            f"runtimed started but does not answer on {after.paths.socket_path}; see "
            f"{after.paths.log_file}"
        )
    echo(
        f"started runtimed {after.info.version} (pid {after.info.pid}) {_how_started(after)} "
        f"on {after.paths.socket_path}; log: {after.paths.log_file}"
    )


def _how_started(facts: Facts) -> str:
    """Whether auto-start went through the user service (it does for the default socket
    when the service is installed and its manager answers)."""
    from runtimed.paths import default_socket_path

    service = _service_state()
    if facts.paths.socket_path == default_socket_path() and service and service.active == "active":
        return f"by the {service.manager}"
    return "in the background"


def start(socket: str | None) -> None:
    """Start the daemon unless it runs (through the user service when installed).

    Starts it even with RUNTIMED_NO_AUTOSTART set: that only keeps clients from starting
    one on their own."""
    _start(socket)


def stop(socket: str | None) -> None:
    """Stop the daemon and its kernels; returns once it has exited.

    Exit 2 when it is not running."""
    facts = _facts(socket)
    if facts.info is None:
        if facts.error is None:
            fail(f"runtimed is not running (nothing answers on {facts.paths.socket_path})", 2)
        fail(f"the daemon on {facts.paths.socket_path} does not answer: {facts.error}")
    pid = stop_daemon(socket)
    echo(f"stopped runtimed (pid {pid})")


def restart(socket: str | None) -> None:
    """Stop the daemon (if it runs) and start it again, e.g. after an upgrade.

    Kernels restart; notebooks lose nothing (rooms are stored, sessions reconnect)."""
    if _facts(socket).info is not None:
        pid = stop_daemon(socket)
        echo(f"stopped runtimed (pid {pid})")
    _start(socket)


# --- logs ------------------------------------------------------------------------------


def logs(socket: str | None, lines: int, follow: bool) -> None:
    """The last lines of the daemon's log, <cache dir>/runtimed.log; -f follows it."""
    from runtimed.service.logs import follow as follow_log
    from runtimed.service.logs import tail_lines

    if lines < 0:
        fail(f"-n takes a number of lines, 0 or more (got {lines}): e.g. `runt daemon logs -n 100`")
    log = _facts(socket).paths.log_file
    if not log.exists() and not follow:
        fail(_no_log(log))
    if log.exists():
        try:
            for line in tail_lines(log, lines):
                echo(line)
        except OSError as exc:
            fail(f"cannot read {log}: {exc.strerror or exc}")
    else:
        echo(f"waiting for {log} ...", err=True)
    if follow:
        try:
            follow_log(log, echo, lambda: False)
        except KeyboardInterrupt:
            raise SystemExit(0) from None


def _no_log(log: Path) -> str:
    early = log.with_name("runtimed.stderr.log")
    also = f" (early output of auto-started daemons: {early})" if early.exists() else ""
    return f"no log at {log} yet: the daemon writes it once started (`runt daemon start`){also}"


# --- doctor ----------------------------------------------------------------------------

_MARK = {"ok": ("ok  ", "green"), "warn": ("warn", "yellow")}


def doctor(socket: str | None, fix: bool, json: bool) -> None:
    """Check socket, lock, stale files, service, uv, conda channels, disk, versions.

    Each check is ok, warn or fail with what to do; exit 1 when one fails. Never starts
    the daemon."""
    from runtimed.service.doctor import run_checks

    checks = run_checks(_facts(socket), fix=fix)
    failed = [c for c in checks if c.status == "fail"]
    if json:
        print_json({"ok": not failed, "checks": checks})
    else:
        _print_checks(checks)
    if failed:
        raise SystemExit(1)


def _print_checks(checks: list[Check]) -> None:
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark, colour = _MARK.get(check.status, ("FAIL", "red"))
        echo(f"{styled(mark, colour)}  {check.name:<{width}}  {check.message}")
        for done in check.fixed:
            echo(f"  {'':<{width + 4}}  fixed: {done}")
        if check.hint and check.status != "ok":
            echo(f"  {'':<{width + 4}}  -> {check.hint}")
    warns = sum(c.status == "warn" for c in checks)
    fails = sum(c.status == "fail" for c in checks)
    if not warns and not fails:
        echo("all checks passed")
    else:
        echo(f"{fails} failed, {warns} warning(s)")
