"""The MCP server: ``build_server(notebooks)`` makes the ``RuntMCPServer`` (the official
SDK's MCPServer, see ``tool_server``), registers the tools of ``tools_*`` on it, and lists
notebook cells as resources.

Arguments are checked before anything reaches the daemon: types and bounds by the tools'
schemas (``arguments``), unknown argument names by the server, the rest by each tool.
Agents' regular expressions run in worker processes with a time bound (``patterns``).
Daemon errors (``RuntimedError``) come back as tool errors with their message.
"""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

import runtimed
from runtimed.errors import RuntimedError
from runtimed.mcp_server import tools_cells, tools_kernel, tools_notebook, tools_widgets
from runtimed.mcp_server.notebooks import Notebooks, OpenNotebook
from runtimed.mcp_server.outputs import Budget
from runtimed.mcp_server.patterns import PatternRunner
from runtimed.mcp_server.tool_server import RuntMCPServer
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


def build_server(notebooks: Notebooks, patterns: PatternRunner | None = None) -> RuntMCPServer:
    """The server, its tools acting on ``notebooks``; ``patterns`` runs agents' regular
    expressions (the caller closes it; a new one by default)."""
    server = RuntMCPServer(
        notebooks,
        name="runtimed",
        title="runtimed notebooks",
        instructions=INSTRUCTIONS,
        version=runtimed.__version__,
        log_level="WARNING",
    )
    tools_notebook.register(server, notebooks)
    tools_cells.register(server, notebooks, patterns or PatternRunner())
    tools_kernel.register(server, notebooks)
    tools_widgets.register(server, notebooks)
    _register_resources(server)
    return server
