"""`runt ps / start / kill / interrupt / restart`: the kernels the daemon owns."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Annotated

import typer

from runtimed.cli.common import SocketOption, fail, print_json, reporting_errors

if TYPE_CHECKING:
    from runtimed.client import DaemonClient
    from runtimed.protocol.runtimes import RuntimeInfo

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


def _notebook(info: RuntimeInfo) -> str:
    if info.notebook_path:
        return info.notebook_path
    if info.notebook_id and info.notebook_id != f"runtime-{info.runtime_id}":
        return info.notebook_id
    return "-" if info.owned else "(not ours)"


def ps(
    socket: SocketOption = None,
    json: Annotated[bool, typer.Option("--json")] = False,
    all: Annotated[
        bool, typer.Option("--all", help="Also kernels in Jupyter's runtime dir not owned here")
    ] = False,
) -> None:
    """Running kernels: id, kernel, pid, status, connection file, notebook, env, activity."""
    with reporting_errors(), _client(socket) as client:
        runtimes = client.list_runtimes(all=all)
    if json:
        print_json(runtimes)
        return
    if not runtimes:
        typer.echo("no runtimes; start one with `runt start python3` or `runt run`")
        return
    from rich.console import Console
    from rich.table import Column, Table

    table = Table(
        Column("id", no_wrap=True), Column("kernel", no_wrap=True), Column("lang"),
        Column("pid", no_wrap=True),
        Column("status", no_wrap=True), Column("notebook", overflow="fold"), Column("env"),
        Column("started"), Column("active"), Column("transport"),
        Column("connection file", overflow="fold"),
    )  # fmt: skip
    for r in runtimes:
        style = _STATUS_STYLE.get(r.status, "")
        status = f"[{style}]{r.status}[/{style}]" if style else r.status
        table.add_row(
            r.runtime_id, r.kernel_name or "-", r.language or "-", str(r.pid or "-"), status,
            _notebook(r), r.env_source or "-", ago(r.started_at), ago(r.last_activity),
            r.transport or "-", r.connection_file or "-",
        )  # fmt: skip
    Console().print(table)


def start(
    kernel: Annotated[str, typer.Argument(help="A kernelspec name, like python3")] = "python3",
    env_source: Annotated[
        str, typer.Option("--env-source", help="For Python: uv:prewarmed, conda:prewarmed, ...")
    ] = "auto",
    cwd: Annotated[str | None, typer.Option("--cwd", help="The kernel's working directory")] = None,
    socket: SocketOption = None,
) -> None:
    """Start a kernel the daemon owns; prints its id (for run --attach, kill, export)."""
    import os

    directory = None
    if cwd is not None:
        directory = os.path.abspath(os.path.expanduser(cwd))
        if not os.path.isdir(directory):
            fail(f"--cwd {cwd}: no such directory")
    with reporting_errors(), _client(socket) as client:
        info = client.start_runtime(kernel, env_source, directory)
    typer.echo(info.runtime_id)


def kill(
    runtime_ids: Annotated[list[str], typer.Argument(help="Runtime ids (or unique prefixes)")],
    socket: SocketOption = None,
) -> None:
    """Stop runtimes (their kernels shut down; a notebook's room stays open)."""
    with reporting_errors(), _client(socket) as client:
        killed = client.kill_runtimes(runtime_ids)
    for runtime_id in killed:
        typer.echo(f"killed {runtime_id}")


def interrupt(
    runtime_id: Annotated[str, typer.Argument(help="A runtime id (or unique prefix)")],
    socket: SocketOption = None,
) -> None:
    """Interrupt the cell a runtime is running (and cancel what waits)."""
    with reporting_errors(), _client(socket) as client:
        info = client.interrupt_runtime(runtime_id)
    typer.echo(f"interrupted {info.runtime_id} ({info.status})")


def restart(
    runtime_id: Annotated[str, typer.Argument(help="A runtime id (or unique prefix)")],
    socket: SocketOption = None,
) -> None:
    """Restart a runtime's kernel (its variables are gone; the id stays)."""
    with reporting_errors(), _client(socket) as client:
        info = client.restart_runtime(runtime_id)
    typer.echo(f"restarted {info.runtime_id} (pid {info.pid})")


def run(
    kernel: Annotated[str, typer.Argument(help="A kernelspec name, like python3")] = "python3",
    attach: Annotated[
        str | None, typer.Option("--attach", help="Join a running runtime instead")
    ] = None,
    env_source: Annotated[
        str, typer.Option("--env-source", help="For Python: uv:prewarmed, conda:prewarmed, ...")
    ] = "auto",
    socket: SocketOption = None,
) -> None:
    """An interactive console (In [n]: / Out[n]:) on a new runtime, or --attach to one.

    Every input is a cell of the runtime's notebook: others can watch or join it live,
    and `runt export <id> --notebook` writes it out. Ctrl-C interrupts, Ctrl-D exits."""
    import asyncio
    import os

    from runtimed.cli.repl import run_repl

    if not sys.stdin.isatty():
        fail("runt run needs a terminal; use runtimed.Session to run code from a script")
    with reporting_errors():
        message = asyncio.run(run_repl(socket, kernel, env_source, attach, os.getcwd()))
    typer.echo(message)


def register(app: typer.Typer) -> None:
    """Add these commands to ``runt``."""
    for command in (ps, start, kill, interrupt, restart, run):
        app.command(command.__name__)(command)
