"""Tools for running code and for the kernel: execute, run all, results, interrupt,
restart, status, and the notebook's own dependencies."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ContentBlock
from pydantic import Field

from runtimed.errors import RuntimedError
from runtimed.mcp_server import dependencies
from runtimed.mcp_server.arguments import (
    DEFAULT_TIMEOUT,
    MAX_TIMEOUT,
    CellId,
    ExecTimeout,
    NotebookArg,
    Packages,
)
from runtimed.mcp_server.execution import Run, queue, run_cell, running_cells, wait, wait_all
from runtimed.mcp_server.notebooks import Notebooks, OpenNotebook
from runtimed.mcp_server.outputs import Budget
from runtimed.mcp_server.tool_server import DESTRUCTIVE, READ_ONLY, RuntMCPServer
from runtimed.mcp_server.views import answer, run_blocks, text

SYNC_TIMEOUT = 600.0
MAX_EXECUTION_ID = 100
MAX_INPUT = 1_000_000
_EXECUTION_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def _kernel_text(nb: OpenNotebook, info: dict[str, Any] | None = None) -> str:
    kernel = {**nb.session.kernel, **(info or {})}
    lines = [
        f"kernel of {nb.label}: {kernel.get('lifecycle') or 'not started'}"
        + (f", {kernel['activity']}" if kernel.get("activity") not in (None, "unknown") else "")
    ]
    for key in ("env_source", "name", "python_path", "pid"):
        if kernel.get(key):
            lines.append(f"{key}: {kernel[key]}")
    if kernel.get("error"):
        lines.append(f"error: {kernel['error']}")
    return "\n".join(lines)


def register(server: RuntMCPServer, notebooks: Notebooks) -> None:
    @server.tool(annotations=DESTRUCTIVE)
    async def execute_cell(
        cell_id: CellId,
        timeout: ExecTimeout = DEFAULT_TIMEOUT,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Run a code cell in the notebook's kernel (started on first use) and return its
        outputs. Everyone in the notebook sees them appear. A cell still running after
        `timeout` seconds keeps running: you get its execution_id for get_results."""
        nb = notebooks.get(notebook)
        outcome = await run_cell(notebooks, nb, cell_id, timeout)
        return answer(await run_blocks(outcome, Budget(), timeout), outcome.summary())

    @server.tool(annotations=DESTRUCTIVE)
    async def run_all_cells(
        timeout: Annotated[
            float,
            Field(
                gt=0,
                le=MAX_TIMEOUT,
                description="Seconds to wait for all of them (0 < timeout <= 3600); cells "
                "still running or queued then are listed with their execution_id",
            ),
        ] = 60.0,
        stop_on_error: Annotated[
            bool, Field(description="An error cancels the cells after it (false: all run)")
        ] = True,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Run every code cell from the top, in order, and return their outputs."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        cells = [c.id for c in session.document.get_cells() if c.cell_type == "code"]
        if not cells:
            return answer("the notebook has no code cells to run", {"executions": []})
        if stop_on_error:
            reply = await session.request("run_all_cells")
            execution_ids = [str(e) for e in reply["execution_ids"]]
            for execution_id in execution_ids:
                notebooks.remember(execution_id, nb)
        else:  # each cell queued on its own: no batch, so an error cancels nothing
            execution_ids = [await queue(notebooks, nb, cell_id) for cell_id in cells]
        runs = await wait_all(nb, execution_ids, timeout)
        return answer(
            await _runs_blocks(runs, timeout), {"executions": [r.summary() for r in runs]}
        )

    @server.tool(annotations=READ_ONLY)
    async def get_results(
        execution_id: Annotated[
            str,
            Field(
                max_length=MAX_EXECUTION_ID,
                description="An execution_id from execute_cell, run_all_cells, ...",
            ),
        ],
        timeout: ExecTimeout = DEFAULT_TIMEOUT,
    ) -> CallToolResult:
        """Wait for an execution that was still running, then return its outputs (or, if it
        is still going after `timeout` seconds, the outputs so far)."""
        if not _EXECUTION_ID.match(execution_id):
            raise ToolError(f"{execution_id!r} is not an execution id (like exec-0123abcd…)")
        nb = notebooks.owner(execution_id) or _guess_owner(notebooks, execution_id)
        outcome = await wait(nb, execution_id, timeout)
        return answer(await run_blocks(outcome, Budget(), timeout), outcome.summary())

    @server.tool(annotations=DESTRUCTIVE)
    async def send_input(
        execution_id: Annotated[
            str,
            Field(
                max_length=MAX_EXECUTION_ID,
                description="The execution_id of a cell that is waiting_for_input",
            ),
        ],
        value: Annotated[
            str,
            Field(
                max_length=MAX_INPUT,
                description="What input() returns (no newline needed); for getpass, the "
                "secret. \\u0004 alone means end of input (input() raises EOFError)",
            ),
        ],
        timeout: ExecTimeout = DEFAULT_TIMEOUT,
    ) -> CallToolResult:
        """Answer the input() / getpass() prompt of a cell you ran (its result said
        waiting_for_input), then wait for the cell as get_results does."""
        if not _EXECUTION_ID.match(execution_id):
            raise ToolError(f"{execution_id!r} is not an execution id (like exec-0123abcd…)")
        nb = notebooks.owner(execution_id) or _guess_owner(notebooks, execution_id)
        session = await nb.ready()
        asked = nb.inputs.prompt(execution_id)
        try:
            await session.send_input(execution_id, value)
        except RuntimedError as exc:
            if exc.code == "not_waiting_for_input":
                raise ToolError(
                    f"execution {execution_id} is not waiting for input (it ended, was "
                    "interrupted, or was answered); get_results shows where it stands"
                ) from None
            raise
        nb.inputs.answered(execution_id, asked)
        outcome = await wait(nb, execution_id, timeout)
        return answer(await run_blocks(outcome, Budget(), timeout), outcome.summary())

    @server.tool(annotations=DESTRUCTIVE)
    async def interrupt_kernel(notebook: NotebookArg = None) -> CallToolResult:
        """Stop the running cell (KeyboardInterrupt) and cancel the queued ones. Variables
        are kept."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        states = running_cells(nb)
        if session.kernel.get("lifecycle") in (None, "not_started", "shutdown"):
            return answer(
                "nothing to interrupt: the notebook has no kernel running",
                {"interrupted": [], "cancelled": 0},
            )
        cancelled = await session.interrupt()
        running = [c for c, s in states.items() if s == "running"]
        return answer(
            ("interrupted " + running[0] if running else "nothing was running")
            + f"; {cancelled} queued execution(s) cancelled",
            {"interrupted": running, "cancelled": cancelled},
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def restart_kernel(notebook: NotebookArg = None) -> CallToolResult:
        """Restart the kernel in the same environment: all variables and imports are lost,
        queued cells are cancelled. Starts one if the notebook has none."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        await _settle_start(nb)
        try:
            info = await session.restart_kernel()
        except RuntimedError as exc:
            if exc.code != "no_kernel":
                raise
            info = await session.start_kernel()
        return answer("restarted: the namespace is empty\n" + _kernel_text(nb, info), _plain(info))

    @server.tool(annotations=READ_ONLY)
    async def kernel_status(notebook: NotebookArg = None) -> CallToolResult:
        """The kernel's state (lifecycle, busy/idle, environment, last error), the running
        and queued cells, and the notebook's dependencies."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        info: dict[str, Any] = {}
        if session.kernel.get("lifecycle") not in (None, "not_started", "shutdown"):
            info = await session.request("kernel_info")
        states = running_cells(nb)
        deps = dependencies.current(await session.get_metadata(dependencies.METADATA_KEY))
        lines = [_kernel_text(nb, info)]
        lines += [f"{state}: {cell}" for cell, state in states.items()]
        lines.append("dependencies: " + (", ".join(deps) if deps else "(none)"))
        return answer(
            "\n".join(lines),
            {**_plain({**session.kernel, **info}), "cells": states, "dependencies": deps},
        )

    @server.tool(annotations=READ_ONLY)
    async def untrusted_dependencies(notebook: NotebookArg = None) -> CallToolResult:
        """The packages this notebook's environment would install that the user has not
        approved (a kernel start fails with untrusted_dependencies until they are), with
        warnings (look-alike names, direct URLs, local paths). Agents cannot approve them:
        show the list to the human, who runs `runt trust NOTEBOOK`."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        report = await session.trust(approve=False)
        pending = report["untrusted"]
        if not pending:
            return answer(f"nothing to approve ({report['note']})", report)
        lines = [f"{p['spec']} ({p['origin']})" + "".join(f"; WARNING: {w}" for w in p["warnings"])
                 for p in pending]  # fmt: skip
        where = session.path or "NOTEBOOK"
        lines.append(f"ask the user to review these and run: runt trust {where}")
        return answer("\n".join(lines), report)

    @server.tool(annotations=READ_ONLY)
    async def get_dependencies(notebook: NotebookArg = None) -> CallToolResult:
        """The notebook's own Python dependencies (metadata runt.uv.dependencies)."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        deps = dependencies.current(await session.get_metadata(dependencies.METADATA_KEY))
        return answer(
            "dependencies: " + (", ".join(deps) if deps else "(none)"), {"dependencies": deps}
        )

    @server.tool(annotations=DESTRUCTIVE)
    async def add_dependency(package: Packages, notebook: NotebookArg = None) -> CallToolResult:
        """Add Python packages to the notebook's dependencies (a spec for a package already
        listed replaces it, e.g. to change its version). Then call sync_environment to run
        the kernel in an environment that has them."""
        specs = dependencies.check_specs([package] if isinstance(package, str) else package)
        return await _change_deps(nb=notebooks.get(notebook), add=specs)

    @server.tool(annotations=DESTRUCTIVE)
    async def remove_dependency(package: Packages, notebook: NotebookArg = None) -> CallToolResult:
        """Remove packages (by name, any version) from the notebook's dependencies. Then
        call sync_environment."""
        names = [package] if isinstance(package, str) else package
        for name in names:
            dependencies.package_name(name.strip())
        return await _change_deps(nb=notebooks.get(notebook), remove=names)

    @server.tool(annotations=DESTRUCTIVE)
    async def sync_environment(
        timeout: Annotated[
            float,
            Field(
                ge=1,
                le=MAX_TIMEOUT,
                description="Seconds to wait for the environment (1 <= timeout <= 3600; a "
                "new one is built once, then cached)",
            ),
        ] = SYNC_TIMEOUT,
        notebook: NotebookArg = None,
    ) -> CallToolResult:
        """Restart the kernel in an environment built from the notebook's dependencies (or
        the default one when it has none). Variables are lost; cells must run again."""
        nb = notebooks.get(notebook)
        session = await nb.ready()
        await _settle_start(nb)
        deps = dependencies.current(await session.get_metadata(dependencies.METADATA_KEY))
        await session.shutdown_kernel()
        try:
            info = await asyncio.wait_for(session.start_kernel(), timeout)
        except TimeoutError:
            return answer(
                f"the environment is still being prepared after {timeout:g} s (it goes on); "
                "kernel_status() follows it, and cells you run wait for it",
                {"lifecycle": session.kernel.get("lifecycle"), "dependencies": deps},
            )
        return answer(
            "the kernel restarted in its new environment (the namespace is empty)\n"
            + _kernel_text(nb, info)
            + "\ndependencies: "
            + (", ".join(deps) if deps else "(none)"),
            {**_plain(info), "dependencies": deps},
        )


async def _runs_blocks(runs: list[Run], timeout: float) -> list[ContentBlock]:
    budget = Budget()
    blocks: list[ContentBlock] = []
    for run in runs:
        blocks += await run_blocks(run, budget, timeout)
    pending = [r for r in runs if not r.finished]
    done = len(runs) - len(pending)
    failed = [r for r in runs if r.status == "error"]
    summary = f"{done} of {len(runs)} cell(s) finished"
    if failed:
        summary += f"; {len(failed)} failed (first: {failed[0].cell_id})"
    if pending:
        summary += (
            f"; {len(pending)} still running or queued: get_results(execution_id=...) "
            "waits for each"
        )
    return [text(summary), *blocks]


def _guess_owner(notebooks: Notebooks, execution_id: str) -> OpenNotebook:
    from runtimed.documents.runtime import RuntimeDoc

    for nb in notebooks.open_notebooks:
        if RuntimeDoc(nb.session.runtime_doc).execution(execution_id) is not None:
            return nb
    return notebooks.get(None)


async def _settle_start(nb: OpenNotebook) -> None:
    """Let a background kernel start finish first, so a restart cannot race it."""
    task = nb.kernel_start
    if task is not None and not task.done():
        await asyncio.wait({task}, timeout=SYNC_TIMEOUT)


async def _change_deps(
    nb: OpenNotebook, add: list[str] | None = None, remove: list[str] | None = None
) -> CallToolResult:
    session = await nb.ready()
    runt = await session.get_metadata(dependencies.METADATA_KEY)
    before = dependencies.current(runt)
    missing: list[str] = []
    after = dependencies.add(before, add) if add else before
    if remove:
        after, missing = dependencies.remove(after, remove)
    if after != before:
        await session.set_metadata(
            dependencies.METADATA_KEY, dependencies.with_dependencies(runt, after)
        )
    message = "dependencies: " + (", ".join(after) if after else "(none)")
    if missing:
        message += f"\nnot listed, nothing removed: {', '.join(missing)}"
    if after != before:
        message += "\ncall sync_environment() to restart the kernel with them"
    return answer(message, {"dependencies": after, "changed": after != before})


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if isinstance(v, str | int | float | bool) or v is None}
