"""`runt history` (list, show) and `runt export`: execution history from the daemon."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from runtimed.cli.common import SocketOption, fail, one_line, print_json, reporting_errors
from runtimed.cli.runtime_cli import ago

if TYPE_CHECKING:
    from runtimed.client import DaemonClient
    from runtimed.protocol.runtimes import ExecutionEntry

history_app = typer.Typer(
    invoke_without_command=True, help="Execution history: every cell run, by anyone."
)

#: The most executions one export reads.
EXPORT_LIMIT = 10_000


def _client(socket: str | None) -> DaemonClient:
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


def _duration(entry: ExecutionEntry) -> str:
    if entry.started_at is None or entry.ended_at is None:
        return "-"
    return f"{entry.ended_at - entry.started_at:.2f} s"


@history_app.callback()
def history(
    ctx: typer.Context,
    notebook: Annotated[
        str | None, typer.Option("--notebook", help="A notebook id or file path")
    ] = None,
    runtime: Annotated[str | None, typer.Option("--runtime", help="A runtime id")] = None,
    limit: Annotated[int, typer.Option("--limit", help="How many (newest first)")] = 20,
    json: Annotated[bool, typer.Option("--json")] = False,
    socket: SocketOption = None,
) -> None:
    """Recent executions, newest first; `runt history show ID` for one in full."""
    if ctx.invoked_subcommand is not None:
        return
    if limit < 1:
        fail("--limit must be at least 1")
    if notebook is not None and notebook.endswith(".ipynb"):
        import os

        notebook = os.path.realpath(notebook)
    with reporting_errors(), _client(socket) as client:
        entries = client.executions(notebook=notebook, runtime_id=runtime, limit=limit)
    if json:
        print_json(entries)
        return
    if not entries:
        typer.echo("no executions recorded yet")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "runtime", "notebook", "[n]", "status", "took", "when", "source")
    table.columns[0].no_wrap = True
    for e in entries:
        status = "[green]ok[/green]" if e.success else f"[red]{e.status}[/red]"
        count = str(e.execution_count) if e.execution_count is not None else "-"
        table.add_row(
            e.id, e.runtime_id or "-", one_line(e.notebook_id, 30), count, status,
            _duration(e), ago(e.queued_at), one_line(e.source or "", 40),
        )  # fmt: skip
    Console().print(table)


@history_app.command("show")
def history_show(
    execution_id: Annotated[str, typer.Argument(help="A history id (ULID) or execution id")],
    json: Annotated[bool, typer.Option("--json")] = False,
    socket: SocketOption = None,
) -> None:
    """One execution: its source, status, timings and outputs."""
    with reporting_errors(), _client(socket) as client:
        entry = client.get_execution(execution_id)
    if json:
        print_json(entry)
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.queued_at))
    typer.echo(f"execution {entry.id} ({entry.execution_id})")
    typer.echo(f"  notebook  {entry.notebook_id}  cell {entry.cell_id}")
    typer.echo(f"  runtime   {entry.runtime_id or '-'} ({entry.kernel_name or '?'})")
    typer.echo(f"  status    {entry.status}  count {entry.execution_count}  at {when}")
    typer.echo(
        f"  took      {_duration(entry)}" + (f"  error {entry.error}" if entry.error else "")
    )
    typer.echo("--- source")
    typer.echo(entry.source or "")
    typer.echo("--- outputs")
    for output in entry.outputs or []:
        typer.echo(_output_text(output))


def _output_text(output: dict[str, Any]) -> str:
    kind = output.get("output_type")
    if kind == "stream":
        text = output.get("text")
        return text if isinstance(text, str) else f"[{output.get('name')}: stored as a blob]"
    if kind == "error":
        return f"{output.get('ename')}: {output.get('evalue')}"
    data = output.get("data") or {}
    plain = data.get("text/plain")
    if isinstance(plain, str):
        return plain
    return f"[{', '.join(data) or kind}]"


def export(
    runtime_id: Annotated[str, typer.Argument(help="The runtime whose session to export")],
    notebook: Annotated[bool, typer.Option("--notebook", help="Write an .ipynb")] = False,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="File (default: runtime-<id>.ipynb)")
    ] = None,
    socket: SocketOption = None,
) -> None:
    """A notebook of a runtime's session (inputs, outputs, counts), from the history."""
    if not notebook:
        fail("say what to export: `runt export <id> --notebook [-o FILE]`")
    from runtimed.cli.export import notebook_from_history, write_notebook

    with reporting_errors(), _client(socket) as client:
        nb = notebook_from_history(client, runtime_id, socket, EXPORT_LIMIT)
    path = output or f"runtime-{runtime_id}.ipynb"
    try:
        write_notebook(nb, path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}")
    typer.echo(f"wrote {path} ({len(nb['cells'])} cells)")


def register(app: typer.Typer) -> None:
    """Add ``history`` and ``export`` to ``runt``."""
    app.add_typer(history_app, name="history")
    app.command("export")(export)
