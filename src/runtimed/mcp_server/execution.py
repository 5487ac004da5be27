"""Running cells for an agent: queue, wait up to a timeout, or hand back an execution id.

Execution is document-first, as for every client: the daemon runs the source the shared
document holds and writes the outputs into it. An execution that outlives the agent's
timeout keeps running; ``get_results(execution_id)`` waits for it later (the id stays
valid for as long as this server keeps the notebook open).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from runtimed.documents.runtime import FINAL_STATUSES, RuntimeDoc
from runtimed.errors import RuntimedError
from runtimed.mcp_server.input_waits import first_of
from runtimed.mcp_server.notebooks import Notebooks, OpenNotebook


@dataclass(frozen=True)
class Run:
    """Where one execution stands."""

    nb: OpenNotebook
    execution_id: str
    cell_id: str
    status: str  # queued, running, done, error, cancelled
    execution_count: int | None = None
    success: bool | None = None
    message: str | None = None  # why it failed or was cancelled
    ahead: int = 0  # executions before it in the queue
    #: The ``input_request`` it waits on (send_input answers), if any.
    prompt: dict[str, Any] | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def summary(self) -> dict[str, Any]:
        return {
            "notebook_id": self.nb.notebook_id,
            "execution_id": self.execution_id,
            "cell_id": self.cell_id,
            "status": self.status,
            "finished": self.finished,
            "success": self.success,
            "execution_count": self.execution_count,
            "waiting_for_input": self.prompt is not None,
            **({"prompt": self.prompt.get("prompt", "")} if self.prompt else {}),
        }


def code_cell(nb: OpenNotebook, cell_id: str) -> None:
    """Refuse, before asking the daemon, a cell that does not exist or is not code."""
    try:
        cell_type = nb.session.document.cell_type(cell_id)  # no copy of its outputs
    except RuntimedError:
        raise ToolError(
            f"cell {cell_id!r} is not in {nb.label}; get_all_cells() lists the cell ids"
        ) from None
    if cell_type != "code":
        raise ToolError(f"cell {cell_id} is a {cell_type} cell; only code cells run")


async def queue(notebooks: Notebooks, nb: OpenNotebook, cell_id: str) -> str:
    """Queue a code cell; its execution id (the same one if it is already waiting)."""
    session = await nb.ready()
    code_cell(nb, cell_id)
    # The agent answers input(): its prompt ends the wait (waiting_for_input).
    execution_id = await session.queue_cell(cell_id, stdin=True)
    notebooks.remember(execution_id, nb)
    return execution_id


async def run_cell(notebooks: Notebooks, nb: OpenNotebook, cell_id: str, timeout: float) -> Run:
    return await wait(nb, await queue(notebooks, nb, cell_id), timeout)


async def wait(nb: OpenNotebook, execution_id: str, timeout: float) -> Run:
    """Wait up to ``timeout`` seconds for an execution to end; where it stands then."""
    session = await nb.ready()
    known = _record(nb, execution_id)
    if known is not None and known.finished:
        return known
    if known is None:
        known = await _ask_daemon(nb, execution_id)
        if known.finished:
            return known
    done = asyncio.ensure_future(session.wait_for_execution(execution_id, timeout))
    if nb.inputs.prompt(execution_id) is not None or await first_of(done, nb.inputs, execution_id):
        done.cancel()  # the execution goes on; the agent answers with send_input
        run = _record(nb, execution_id) or await _ask_daemon(nb, execution_id)
        return replace(run, status="running", prompt=nb.inputs.prompt(execution_id))
    try:
        result = await done
    except RuntimedError as exc:
        if exc.code != "timeout":
            raise
        return _record(nb, execution_id) or await _ask_daemon(nb, execution_id)
    return Run(
        nb,
        execution_id,
        result.cell_id,
        result.status,
        result.execution_count,
        result.success,
        result.message,
    )


async def wait_all(nb: OpenNotebook, execution_ids: list[str], timeout: float) -> list[Run]:
    """Wait for executions in order, all within one ``timeout``."""
    deadline = time.monotonic() + timeout
    runs = []
    for execution_id in execution_ids:
        left = max(0.0, deadline - time.monotonic())
        runs.append(await wait(nb, execution_id, left))
    return runs


def _record(nb: OpenNotebook, execution_id: str) -> Run | None:
    runtime = RuntimeDoc(nb.session.runtime_doc)
    record = runtime.execution(execution_id)
    if record is None:
        return None
    ahead = 0
    if record.get("status") == "queued":
        queue = runtime.queue()
        queued = list(queue.get("queued") or [])
        ahead = queued.index(execution_id) if execution_id in queued else 0
        ahead += 1 if queue.get("executing") else 0
    return _from_record(nb, execution_id, record, ahead)


async def _ask_daemon(nb: OpenNotebook, execution_id: str) -> Run:
    try:
        record = await nb.session.request("get_execution", execution_id=execution_id)
    except RuntimedError as exc:
        if exc.code == "not_found":
            raise ToolError(
                f"execution {execution_id!r} is not known in {nb.label}; execution ids come "
                "from execute_cell, run_all_cells or create_cell/set_cell with run=true"
            ) from None
        raise
    return _from_record(nb, execution_id, dict(record), 0)


def _from_record(nb: OpenNotebook, execution_id: str, record: dict[str, Any], ahead: int) -> Run:
    count = record.get("execution_count")
    success = record.get("success")
    return Run(
        nb,
        execution_id,
        str(record.get("cell_id", "")),
        str(record.get("status", "queued")),
        int(count) if isinstance(count, int | float) else None,
        bool(success) if success is not None else None,
        record.get("error"),
        ahead,
    )


def running_cells(nb: OpenNotebook) -> dict[str, str]:
    """cell id -> ``running`` or ``queued``, from the runtime document."""
    runtime = RuntimeDoc(nb.session.runtime_doc)
    queue = runtime.queue()
    states: dict[str, str] = {}
    for execution_id in queue.get("queued") or []:
        record = runtime.execution(str(execution_id))
        if record is not None:
            states[str(record.get("cell_id"))] = "queued"
    executing = queue.get("executing")
    if executing:
        record = runtime.execution(str(executing))
        if record is not None:
            states[str(record.get("cell_id"))] = "running"
    return states
