"""The MCP server: tool registration, argument checks, errors an agent can act on, and
notebook cells as resources.

``build_server(notebooks)`` returns an ``MCPServer`` (the official SDK) whose tools drive
the notebooks in ``notebooks``. Arguments are checked before anything reaches the daemon:
types and ranges by the tools' schemas, unknown argument names here, the rest by each
tool. Daemon errors (``RuntimedError``) come back as tool errors with their message.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import (
    ResourceNotFoundError,
    ToolError,
    UnexpectedToolError,
)
from mcp.types import CallToolResult, Icon, InputRequiredResult, Resource, ToolAnnotations

import runtimed
from runtimed.errors import RuntimedError
from runtimed.mcp_server.notebooks import Notebooks, OpenNotebook
from runtimed.mcp_server.outputs import Budget
from runtimed.mcp_server.views import cell_blocks, notebook_cells

INSTRUCTIONS = """\
runtimed notebooks are live documents shared with people and other programs: every edit \
and output you make appears to everyone in the notebook at once, and theirs appear to you.
Start with list_notebooks, then open_notebook(path) or create_notebook(). Tools act on the \
current notebook (the last one opened or created) unless you pass notebook=<id or path>.
Cells are addressed by id (get_all_cells lists them). Running a cell uses the notebook's \
kernel, shared with everyone: execute_cell waits up to `timeout` seconds, then answers with \
an execution_id that get_results(execution_id) waits on. Long outputs are cut to their head \
and tail; the note says how to read the rest."""

# What a RuntimedError code means for an agent, added to the daemon's message.
_HINTS = {
    "disconnected": "the connection to the daemon dropped; retry the call (it reconnects)",
    "no_kernel": "the notebook has no kernel yet: execute a cell to start one",
    "kernel_not_running": "call restart_kernel() to get a working kernel",
    "timeout": "the daemon is busy or stuck; kernel_status() shows the kernel's state",
}


def agent_error(exc: RuntimedError) -> ToolError:
    hint = _HINTS.get(exc.code)
    message = exc.message if hint is None or hint in exc.message else f"{exc.message} ({hint})"
    return ToolError(message)


class RuntMCPServer(MCPServer[Any]):
    """An MCPServer that refuses unknown arguments, turns daemon errors into tool errors,
    and lists every cell of the open notebooks as a resource."""

    def __init__(self, notebooks: Notebooks, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.notebooks = notebooks
        self._tool_params: dict[str, list[str]] = {}

    def add_tool(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        annotations: ToolAnnotations | None = None,
        icons: list[Icon] | None = None,
        meta: dict[str, Any] | None = None,
        structured_output: bool | None = None,
    ) -> None:
        super().add_tool(fn, name, title, description, annotations, icons, meta, structured_output)
        params = [
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        self._tool_params[name or fn.__name__] = params

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Any = None
    ) -> CallToolResult | InputRequiredResult:
        accepted = self._tool_params.get(name)
        if accepted is not None:
            unknown = sorted(set(arguments) - set(accepted))
            if unknown:
                raise ToolError(
                    f"{name} has no argument(s) {', '.join(unknown)}; it takes: "
                    + (", ".join(accepted) or "no arguments")
                )
        try:
            return await super().call_tool(name, arguments, context)
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, RuntimedError):
                raise ToolError(f"{name} failed: {agent_error(cause)}") from cause
            if isinstance(cause, ConnectionError | OSError):
                raise ToolError(
                    f"{name} failed: lost the connection to the daemon: {cause}"
                ) from cause
            raise

    async def list_resources(self) -> list[Resource]:
        listed = await super().list_resources()
        for nb in self.notebooks.open_notebooks:
            for index, cell in enumerate(nb.session.document.get_cells()):
                first = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
                listed.append(
                    Resource(
                        uri=f"notebook://cells/{cell.id}",
                        name=f"{nb.label} [{index}] {cell.cell_type}: {first}".rstrip(": "),
                        description=f"cell {index} of {nb.label}: source and outputs",
                        mime_type="text/plain",
                    )
                )
        return listed


def _find_cell(notebooks: Notebooks, cell_id: str) -> tuple[OpenNotebook, int, Any]:
    for nb in notebooks.open_notebooks:
        document = nb.session.document
        try:
            index = document.index_of(cell_id)
        except RuntimedError:
            continue
        return nb, index, document.get_cell(cell_id)
    raise ResourceNotFoundError(f"no open notebook has a cell {cell_id!r}")


def _blocks_text(blocks: list[Any]) -> str:
    return "\n".join(
        getattr(b, "text", f"[{getattr(b, 'mime_type', 'binary')} content]") for b in blocks
    )


def _register_resources(server: RuntMCPServer) -> None:
    notebooks = server.notebooks

    @server.resource(
        "notebook://cells",
        name="cells of the current notebook",
        description="Every cell of the current notebook: source and a text view of outputs",
        mime_type="text/plain",
    )
    async def current_cells() -> str:
        try:
            nb = notebooks.get(None)
        except ToolError as exc:
            return str(exc)
        return _blocks_text(await notebook_cells(nb, 0, None, include_outputs=True))

    @server.resource(
        "notebook://cells/{cell_id}",
        name="notebook cell",
        description="One cell of an open notebook, by id: source and outputs as text",
        mime_type="text/plain",
    )
    async def one_cell(cell_id: str) -> str:
        nb, index, cell = _find_cell(notebooks, cell_id)
        budget = Budget(images=False)
        return _blocks_text(await cell_blocks(nb, index, cell, budget))


def build_server(notebooks: Notebooks) -> RuntMCPServer:
    from runtimed.mcp_server import tools_cells, tools_kernel, tools_notebook

    server = RuntMCPServer(
        notebooks,
        name="runtimed",
        title="runtimed notebooks",
        instructions=INSTRUCTIONS,
        version=runtimed.__version__,
        log_level="WARNING",
    )
    tools_notebook.register(server, notebooks)
    tools_cells.register(server, notebooks)
    tools_kernel.register(server, notebooks)
    _register_resources(server)
    return server
