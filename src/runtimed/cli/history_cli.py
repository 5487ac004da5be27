"""`runt history` (list, show) and `runt export`: execution history from the daemon."""

from __future__ import annotations

import time

from runtimed.cli.common import echo, fail, one_line, print_json, reporting_errors
from runtimed.cli.runtime_cli import ago

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtimed.client.daemon_client import DaemonClient

#: The most executions one export reads.
EXPORT_LIMIT = 10_000


def _client(socket: str | None) -> DaemonClient:
    from runtimed.client import DaemonClient

    return DaemonClient(socket)


def _duration(started_at: float | None, ended_at: float | None) -> str:
    if started_at is None or ended_at is None:
        return "-"
    return f"{ended_at - started_at:.2f} s"


def history(
    notebook: str | None, runtime: str | None, limit: int, json: bool, socket: str | None
) -> None:
    """Recent executions, newest first; `runt history show ID` for one in full."""
    if limit < 1:
        fail("--limit must be at least 1")
    if notebook is not None and notebook.endswith(".ipynb"):
        import os

        notebook = os.path.realpath(notebook)
    from runtimed.client.control_client import ControlClient

    with reporting_errors(), ControlClient(socket) as client:
        entries = client.executions(notebook=notebook, runtime_id=runtime, limit=limit)
    if json:
        print_json(entries)
        return
    if not entries:
        echo("no executions recorded yet")
        return
    from runtimed.cli.text_table import Column, TextTable, print_table

    table = TextTable(
        Column("id", no_wrap=True), "runtime", "notebook", "[n]", "status", "took", "when",
        "source",
    )  # fmt: skip
    for e in entries:
        status = ("ok", "green") if e.get("success") else (e["status"], "red")
        count = e.get("execution_count")
        table.add_row(
            e["id"], e.get("runtime_id") or "-", one_line(e["notebook_id"], 30),
            "-" if count is None else str(count), status,
            _duration(e.get("started_at"), e.get("ended_at")), ago(e.get("queued_at", 0.0)),
            one_line(e.get("source") or "", 40),
        )  # fmt: skip
    print_table(table)


def history_show(execution_id: str, json: bool, socket: str | None) -> None:
    """One execution: its source, status, timings and outputs."""
    with reporting_errors(), _client(socket) as client:
        entry = client.get_execution(execution_id)
    if json:
        print_json(entry)
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.queued_at))
    echo(f"execution {entry.id} ({entry.execution_id})")
    echo(f"  notebook  {entry.notebook_id}  cell {entry.cell_id}")
    echo(f"  runtime   {entry.runtime_id or '-'} ({entry.kernel_name or '?'})")
    echo(f"  status    {entry.status}  count {entry.execution_count}  at {when}")
    echo(
        f"  took      {_duration(entry.started_at, entry.ended_at)}"
        + (f"  error {entry.error}" if entry.error else "")
    )
    echo("--- source")
    echo(entry.source or "")
    echo("--- outputs")
    for output in entry.outputs or []:
        echo(_output_text(output))


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


def export(runtime_id: str, notebook: bool, output: str | None, socket: str | None) -> None:
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
    echo(f"wrote {path} ({len(nb['cells'])} cells)")
