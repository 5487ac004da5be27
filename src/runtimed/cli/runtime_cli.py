"""`runt ps / start / kill / interrupt / restart`: the kernels the daemon owns."""

from __future__ import annotations

import sys
import time

from runtimed.cli.common import echo, fail, print_json, reporting_errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtimed.client.daemon_client import DaemonClient

_STATUS_STYLE = {"idle": "green", "busy": "yellow", "dead": "red", "starting": "cyan"}


def _client(socket: str | None) -> DaemonClient:
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


def ago(when: float | None) -> str:
    """``12 s ago``, ``3 min ago``, ``2 h ago``, ``4 d ago`` (``-`` for never)."""
    if when is None:
        return "-"
    secs = max(time.time() - when, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f"{secs / size:.0f} {unit} ago"
    return f"{secs:.0f} s ago"


def _notebook(info: dict[str, Any]) -> str:
    if info.get("notebook_path"):
        return str(info["notebook_path"])
    notebook_id = info.get("notebook_id")
    if notebook_id and notebook_id != f"runtime-{info['runtime_id']}":
        return str(notebook_id)
    return "-" if info.get("owned", True) else "(not ours)"


def ps(socket: str | None, json: bool, all: bool) -> None:
    """Running kernels: id, kernel, pid, status, connection file, notebook, env, activity."""
    from runtimed.client.control_client import ControlClient

    with reporting_errors(), ControlClient(socket) as client:
        runtimes = client.list_runtimes(all=all)
    if json:
        print_json(runtimes)
        return
    if not runtimes:
        echo("no runtimes; start one with `runt start python3` or `runt run`")
        return
    from runtimed.cli.text_table import Column, TextTable, print_table

    table = TextTable(
        Column("id", no_wrap=True), Column("kernel", no_wrap=True), "lang",
        Column("pid", no_wrap=True), Column("status", no_wrap=True), "notebook", "env",
        "started", "active", "transport", "connection file",
    )  # fmt: skip
    for r in runtimes:
        status = r.get("status", "unknown")
        table.add_row(
            r["runtime_id"], r.get("kernel_name") or "-", r.get("language") or "-",
            str(r.get("pid") or "-"), (status, _STATUS_STYLE.get(status)), _notebook(r),
            r.get("env_source") or "-", ago(r.get("started_at")), ago(r.get("last_activity")),
            r.get("transport") or "-", r.get("connection_file") or "-",
        )  # fmt: skip
    print_table(table)


def start(kernel: str, env_source: str, cwd: str | None, socket: str | None) -> None:
    """Start a kernel the daemon owns; prints its id (for run --attach, kill, export)."""
    import os

    directory = None
    if cwd is not None:
        directory = os.path.abspath(os.path.expanduser(cwd))
        if not os.path.isdir(directory):
            fail(f"--cwd {cwd}: no such directory")
    with reporting_errors(), _client(socket) as client:
        info = client.start_runtime(kernel, env_source, directory)
    echo(info.runtime_id)


def kill(runtime_ids: list[str], socket: str | None) -> None:
    """Stop runtimes (their kernels shut down; a notebook's room stays open)."""
    with reporting_errors(), _client(socket) as client:
        killed = client.kill_runtimes(runtime_ids)
    for runtime_id in killed:
        echo(f"killed {runtime_id}")


def interrupt(runtime_id: str, socket: str | None) -> None:
    """Interrupt the cell a runtime is running (and cancel what waits)."""
    with reporting_errors(), _client(socket) as client:
        info = client.interrupt_runtime(runtime_id)
    echo(f"interrupted {info.runtime_id} ({info.status})")


def restart(runtime_id: str, socket: str | None) -> None:
    """Restart a runtime's kernel (its variables are gone; the id stays)."""
    with reporting_errors(), _client(socket) as client:
        info = client.restart_runtime(runtime_id)
    echo(f"restarted {info.runtime_id} (pid {info.pid})")


def run(
    kernel: str, attach: str | None, env_source: str, socket: str | None, sidecar: bool = False
) -> None:
    """An interactive console (In [n]: / Out[n]:) on a new runtime, or --attach to one.

    Every input is a cell of the runtime's notebook: others can watch or join it live,
    and `runt export <id> --notebook` writes it out. Ctrl-C interrupts, Ctrl-D exits.
    --sidecar opens a browser page showing the rich outputs (images, HTML) as they come."""
    import asyncio
    import os

    from runtimed.cli.repl import run_repl

    if not sys.stdin.isatty():
        fail("runt run needs a terminal; use runtimed.Session to run code from a script")
    with reporting_errors():
        message = asyncio.run(
            run_repl(socket, kernel, env_source, attach, os.getcwd(), sidecar=sidecar)
        )
    echo(message)
